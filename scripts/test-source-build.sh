#!/usr/bin/env bash
# The long run behind issue 17's "building from source leaves no build
# output inside the source tree": `pip wheel ./bindings-python` through the
# package's own build backend (what `pip install ./bindings-python` does),
# with a fresh cache folder, then checks that the checkout is exactly as it
# was (`git status --ignored`: no target/, build/, *.egg-info or extension
# left behind), that cargo's output went to $XDG_CACHE_HOME/stratacache/target,
# and that the wheel imports in a fresh venv. A full release build: minutes
# (about 5 on two busy cores), so not part of scripts/test.sh, whose
# scripts/test-packaging.sh checks the refusals and the target folder.
# Usage: bash scripts/test-source-build.sh
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"

ensure_rust
ensure_venv build
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# Untracked and ignored files (what a build leaves), before and after.
left() { git status --porcelain --ignored | grep -E '^(\?\?|!!)' || true; }
before="$(left)"
step "pip wheel ./bindings-python (the build backend, cargo output in a fresh cache folder)"
(cd "$tmp" && env -u CARGO_TARGET_DIR PATH="$VENV/bin:$PATH" XDG_CACHE_HOME="$tmp/cache" \
  "$VENV/bin/python" -m pip wheel -q --no-build-isolation --no-deps "$REPO_ROOT/bindings-python" -w "$tmp/wheel")
after="$(left)"
if [ "$before" != "$after" ]; then
  echo "test-source-build.sh: the source build changed the checkout:" >&2
  diff <(echo "$before") <(echo "$after") >&2 || true
  exit 1
fi
echo "the checkout is as it was (git status --ignored unchanged)"
[ -d "$tmp/cache/stratacache/target/release" ] || { echo "test-source-build.sh: no cargo output in $tmp/cache/stratacache/target" >&2; exit 1; }
echo "cargo's output: $(du -sh "$tmp/cache/stratacache/target" | cut -f1) in \$XDG_CACHE_HOME/stratacache/target"

step "The wheel imports in a fresh venv"
python3 -m venv "$tmp/venv"
"$tmp/venv/bin/python" -m pip install -q --no-index "$tmp"/wheel/stratacache-*.whl
(cd "$tmp" && "$tmp/venv/bin/python" -c 'import stratacache; print("imported", stratacache.__name__, "from", stratacache.__file__)')
