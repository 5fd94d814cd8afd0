#!/usr/bin/env bash
# Builds the Python package for distribution into target/wheels/: one
# manylinux2014 abi3 wheel (CPython 3.9+, one file for every version; linked
# against glibc 2.17 through zig, from the `ziglang` PyPI package, so it
# installs on any Linux of the last decade) and the sdist.
# Usage: bash scripts/build-wheel.sh
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"

ensure_rust
ensure_venv packaging
OUT="$REPO_ROOT/target/wheels"
rm -f "$OUT"/stratacache-*.whl "$OUT"/stratacache-*.tar.gz

step "maturin build --release --zig (manylinux2014, abi3) -> target/wheels/"
# maturin finds zig through the ziglang package of the venv it runs from.
(cd bindings-python && PATH="$VENV/bin:$PATH" maturin build --release --zig --compatibility manylinux2014 \
  --out "$OUT" --quiet)

step "maturin sdist -> target/wheels/"
(cd bindings-python && PATH="$VENV/bin:$PATH" maturin sdist --out "$OUT")

ls -l "$OUT"/stratacache-*
