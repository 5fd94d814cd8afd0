#!/usr/bin/env bash
# The packages as users install them, and the README's quick starts as they
# are written (extracted from README.md by their <!-- quickstart:... -->
# markers):
#   - the wheel (scripts/build-wheel.sh: manylinux2014, abi3) installed into a
#     fresh venv with no cargo, rustc or C compiler on PATH, then the Python
#     and the Django quick starts run against a real memcached; each one's
#     output must be the README's "what you see" block;
#   - building from source: the Rust minimum stated in the docs is the one
#     Cargo.toml and the build backend use; with Rust missing, with no C
#     compiler, or with an old Rust, it stops at once with one clear line
#     and writes nothing into the source tree;
#   - the wheel's long description is bindings-python/README.md;
#   - `cargo package` packs and builds every publishable crate.
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

step "Building from source: requirements stated, checked up front, one clear line each"
ensure_venv build
# The minimum Rust the docs state is the workspace's rust-version and the
# build backend's RUST_MINIMUM.
rust_version="$(awk -F'"' '/^rust-version = /{print $2; exit}' Cargo.toml)"
backend_minimum="$(python3 -c 'import re, sys; m = re.search(r"RUST_MINIMUM = \((\d+), (\d+)\)", open(sys.argv[1]).read()); print(f"{m[1]}.{m[2]}")' \
  bindings-python/build_backend/stratacache_build.py)"
[ "$backend_minimum" = "$rust_version" ] || { echo "test-packaging.sh: build backend wants Rust $backend_minimum, Cargo.toml says $rust_version" >&2; exit 1; }
for doc in README.md docs/python.md bindings-python/README.md; do
  grep -q "Rust $rust_version+" "$doc" || { echo "test-packaging.sh: $doc does not state Rust $rust_version+" >&2; exit 1; }
  grep -q "C compiler" "$doc" || { echo "test-packaging.sh: $doc does not state the C compiler" >&2; exit 1; }
done
echo "Rust $rust_version+ and a C compiler stated in README.md, docs/python.md, bindings-python/README.md"
# expect_refusal PATH PATTERN: a source build (pip wheel) with PATH stops
# at once with the line PATTERN, and writes nothing into the source tree.
expect_refusal() {
  local before after out rc line
  before="$(git status --porcelain --ignored bindings-python)"
  set +e
  out="$(cd "$tmp" && PATH="$1" "$VENV/bin/python" -m pip wheel -q --no-build-isolation --no-deps \
    "$REPO_ROOT/bindings-python" -w "$tmp/src-wheel" 2>&1)"
  rc=$?
  set -e
  line="$(grep -m1 -o "stratacache: $2.*" <<<"$out" || true)"
  if [ "$rc" -eq 0 ] || [ -z "$line" ]; then
    printf 'test-packaging.sh: expected the build to stop with "stratacache: %s"; got (exit %s):\n%s\n' "$2" "$rc" "$out" >&2
    exit 1
  fi
  after="$(git status --porcelain --ignored bindings-python)"
  [ "$before" = "$after" ] || { printf 'test-packaging.sh: the refused build left files in bindings-python:\n%s\n' "$after" >&2; exit 1; }
  echo "refused as expected: $line"
}
# No Rust at all.
expect_refusal "$NO_RUST_PATH" "building from source needs Rust $rust_version+ (cargo and rustc on PATH"
# Rust but no C compiler (mimalloc needs one): cargo and rustc linked in.
mkdir -p "$tmp/bin-no-cc"
for tool in python3 env sh bash; do ln -s "$(readlink -f "$NO_RUST_PATH/$tool")" "$tmp/bin-no-cc/$tool"; done
for tool in cargo rustc; do ln -s "$(command -v "$tool")" "$tmp/bin-no-cc/$tool"; done
expect_refusal "$tmp/bin-no-cc" "building from source needs a C compiler"
# A Rust older than the minimum (a rustc that says 1.70).
mkdir -p "$tmp/bin-old-rust"
for tool in python3 env sh bash cc; do ln -s "$(command -v "$tool")" "$tmp/bin-old-rust/$tool"; done
printf '#!/bin/sh\necho "rustc 1.70.0 (90c541806 2023-05-31)"\n' >"$tmp/bin-old-rust/rustc"
printf '#!/bin/sh\nexit 1\n' >"$tmp/bin-old-rust/cargo"
chmod +x "$tmp/bin-old-rust/rustc" "$tmp/bin-old-rust/cargo"
expect_refusal "$tmp/bin-old-rust" "building from source needs Rust $rust_version+, found rustc 1.70.0"
# Where a source build puts cargo's output: outside the checkout (a full
# source build, checked to leave the tree as it was, is the long run
# scripts/test-source-build.sh).
target_dir="$(cd "$tmp" && env -u CARGO_TARGET_DIR -u XDG_CACHE_HOME HOME="$tmp/home" "$VENV/bin/python" -c '
import os, sys
sys.path.insert(0, sys.argv[1])
import stratacache_build
stratacache_build._outside_the_tree()
print(os.environ["CARGO_TARGET_DIR"])' "$REPO_ROOT/bindings-python/build_backend")"
case "$target_dir" in
  "$tmp/home/.cache/stratacache/target") echo "a source build writes cargo's output to ~/.cache/stratacache/target" ;;
  *) echo "test-packaging.sh: a source build would write cargo's output to $target_dir" >&2; exit 1 ;;
esac

step "The package page's long description: the wheel's METADATA carries bindings-python/README.md"
python3 - "$wheel" bindings-python/README.md <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as wheel:
    meta = wheel.read(next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))).decode()
headers, _, body = meta.partition("\n\n")
readme = open(sys.argv[2], encoding="utf-8").read()
assert "Description-Content-Type: text/markdown" in headers, headers
assert body.strip() == readme.strip(), "the wheel's long description is not bindings-python/README.md"
assert len(readme.splitlines()) >= 40, "bindings-python/README.md is too short for a package page"
print(f"long description: bindings-python/README.md, {len(readme.splitlines())} lines, text/markdown")
PY

step "cargo package (built from the packaged files) for every publishable crate"
for crate in $(cargo metadata --no-deps --format-version 1 | python3 -c '
import json, sys
for p in json.load(sys.stdin)["packages"]:
    if p.get("publish") != []:
        print(p["name"])'); do
  # Packs the crate and builds it from the .crate's files alone (what crates.io gets).
  cargo package -p "$crate" --allow-dirty --quiet
  files="$(cargo package -p "$crate" --list --allow-dirty --quiet)"
  echo "$crate: $(wc -l <<<"$files") files"
  grep -qx "Cargo.toml" <<<"$files"
done

rm -rf "$tmp"
