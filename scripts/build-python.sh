#!/usr/bin/env bash
# Builds the Python package into the project's venv (.venv/): creates the
# venv and installs the `test` dependency group of
# bindings-python/pyproject.toml (scripts/lib.sh's ensure_venv, shared with
# every script), then `maturin develop --release`.
#
# Usage: bash scripts/build-python.sh [--if-stale] [--examples]
#   --if-stale   keep the built extension if it is newer than every source
#                it is built from (core/, bindings-python/, Cargo.*)
#   --examples   also install the `examples` group (gunicorn, matplotlib, ...)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"

if_stale=0
examples=0
for arg in "$@"; do
  case "$arg" in
    --if-stale) if_stale=1 ;;
    --examples) examples=1 ;;
    *) echo "build-python.sh: unknown option $arg (--if-stale, --examples)" >&2; exit 2 ;;
  esac
done

groups=(test)
[ "$examples" = 1 ] && groups+=(examples)
ensure_venv "${groups[@]}"
if [ "$if_stale" = 1 ]; then ensure_extension --if-stale; else ensure_extension; fi
