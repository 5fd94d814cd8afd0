#!/usr/bin/env bash
# The packages as users install them, and the README's quick starts as they
# are written (extracted from README.md by their <!-- quickstart:... -->
# markers):
#   - the wheel (scripts/build-wheel.sh: manylinux2014, abi3) installed into a
#     fresh venv with no cargo, rustc or C compiler on PATH, then the Python
#     and the Django quick starts run against a real memcached; each one's
#     output must be the README's "what you see" block;
#   - building from source with Rust missing stops with one clear line;
#   - `cargo package` lists every publishable crate's files.
# (The npm tarball's test, the worker quick start bundled by wrangler and
# esbuild and run in workerd, is bindings-wasm/test/packaging/, run by
# scripts/test-wasm.sh.)
# Usage: bash scripts/test-packaging.sh
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"

bash scripts/build-wheel.sh
wheel="$(ls target/wheels/stratacache-*-abi3-*manylinux*.whl | head -1)"

tmp="$(mktemp -d)"
# A PATH with python3 but without cargo, rustc, cc, gcc or clang: a folder of
# links to the few tools the test needs.
mkdir -p "$tmp/bin"
# (python3 as the real executable: a pyenv shim would need pyenv on PATH.)
ln -s "$(python3 -c 'import sys; print(sys.executable)')" "$tmp/bin/python3"
for tool in env sh bash; do ln -s "$(command -v "$tool")" "$tmp/bin/$tool"; done
NO_RUST_PATH="$tmp/bin"
for tool in cargo rustc cc gcc clang; do
  if PATH="$NO_RUST_PATH" command -v "$tool" >/dev/null; then echo "test-packaging.sh: $tool still on PATH" >&2; exit 1; fi
done

# quickstart MARKER: the fenced block right after <!-- quickstart:MARKER --> in README.md.
quickstart() {
  awk -v m="<!-- quickstart:$1 -->" '$0 == m {found = 1; next} found && /^```/ {if (inside) exit; inside = 1; next} inside {print}' README.md
}

step "The wheel in a fresh venv with no Rust or C compiler on PATH: $(basename "$wheel")"
PATH="$NO_RUST_PATH" python3 -m venv "$tmp/venv"
PATH="$NO_RUST_PATH" "$tmp/venv/bin/python" -m pip install -q --no-index "$wheel"

step "The README's Python and Django quick starts against a real memcached"
# The wheel's extension sits in the venv, not in this checkout: run from $tmp.
start_servers memcached1
# run_quickstart NAME: runs the README's NAME block, compares with NAME-output.
run_quickstart() {
  quickstart "$1" >"$tmp/quickstart_$1.py"
  quickstart "$1-output" >"$tmp/$1.expected"
  [ -s "$tmp/quickstart_$1.py" ] && [ -s "$tmp/$1.expected" ] || { echo "README.md: quick start '$1' not found" >&2; exit 1; }
  (cd "$tmp" && PATH="$NO_RUST_PATH" MEMCACHED="${STRATACACHE_MEMCACHED%%,*}" "$tmp/venv/bin/python" "quickstart_$1.py") >"$tmp/$1.got"
  if ! diff -u "$tmp/$1.expected" "$tmp/$1.got"; then
    echo "test-packaging.sh: the $1 quick start's output differs from README.md's" >&2
    exit 1
  fi
  echo "the $1 quick start printed what README.md says"
}
run_quickstart python
# The Django quick start's install line: the [django] extra, pymemcache (pure Python, from the index).
PATH="$NO_RUST_PATH" "$tmp/venv/bin/python" -m pip install -q "$wheel[django]" pymemcache
run_quickstart django

step "Building from source without Rust: one clear line"
ensure_venv build
set +e
out="$(cd "$tmp" && PATH="$NO_RUST_PATH" "$VENV/bin/python" -m pip wheel -q --no-build-isolation --no-deps \
  "$REPO_ROOT/bindings-python" -w "$tmp/src-wheel" 2>&1)"
rc=$?
set -e
line="$(grep -m1 -o 'stratacache: building from source needs Rust.*' <<<"$out" || true)"
if [ "$rc" -eq 0 ] || [ -z "$line" ]; then
  printf 'test-packaging.sh: expected the build to stop with the "needs Rust" line; got (exit %s):\n%s\n' "$rc" "$out" >&2
  exit 1
fi
echo "refused as expected: $line"

step "cargo package --list for every publishable crate"
for crate in $(cargo metadata --no-deps --format-version 1 | python3 -c '
import json, sys
for p in json.load(sys.stdin)["packages"]:
    if p.get("publish") != []:
        print(p["name"])'); do
  files="$(cargo package -p "$crate" --list --allow-dirty --quiet)"
  echo "$crate: $(wc -l <<<"$files") files"
  grep -qx "Cargo.toml" <<<"$files"
done

rm -rf "$tmp"
