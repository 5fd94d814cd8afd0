#!/usr/bin/env bash
# Builds the Python package into the project's venv (.venv/): creates the
# venv, installs the requirements of the Python suite (the PY_REQUIREMENTS
# list of scripts/test-python.sh, read from there so the two never drift,
# with the same stamp file, so neither script reinstalls what the other
# installed), then `maturin develop --release`.
#
# Usage: bash scripts/build-python.sh [--if-stale] [--examples]
#   --if-stale   keep the built extension if it is newer than every source
#                it is built from (core/, bindings-python/, Cargo.*)
#   --examples   also install examples/django_outline/requirements.txt
#                (gunicorn, matplotlib, ...)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"

VENV="$REPO_ROOT/.venv"
if_stale=0
examples=0
for arg in "$@"; do
  case "$arg" in
    --if-stale) if_stale=1 ;;
    --examples) examples=1 ;;
    *) echo "build-python.sh: unknown option $arg (--if-stale, --examples)" >&2; exit 2 ;;
  esac
done

# pip_stamped STAMP REQUIREMENT...: installs the requirements unless STAMP
# already lists exactly them.
pip_stamped() {
  local stamp="$1" want
  shift
  want="$(printf '%s\n' "$@")"
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    "$VENV/bin/pip" install -q --upgrade pip
    "$VENV/bin/pip" install -q "$@"
    printf '%s\n' "$want" >"$stamp"
  fi
}

step "Python environment (.venv)"
command -v python3 >/dev/null || { echo "build-python.sh: python3 not found: install Python 3.9+" >&2; exit 1; }
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
eval "$(sed -n '/^PY_REQUIREMENTS=(/,/^)/p' scripts/test-python.sh)"
if [ "${#PY_REQUIREMENTS[@]}" -eq 0 ]; then
  echo "build-python.sh: no PY_REQUIREMENTS list found in scripts/test-python.sh" >&2
  exit 1
fi
pip_stamped "$VENV/.stratacache-requirements" "${PY_REQUIREMENTS[@]}"
if [ "$examples" = 1 ]; then
  mapfile -t example_reqs < <(grep -v '^\s*#' examples/django_outline/requirements.txt | grep -v '^\s*$')
  pip_stamped "$VENV/.stratacache-examples-requirements" "${example_reqs[@]}"
fi

so="$(ls bindings-python/python/stratacache/_core.*.so 2>/dev/null | head -1 || true)"
if [ "$if_stale" = 1 ] && [ -n "$so" ] && "$VENV/bin/python" -c 'import stratacache' 2>/dev/null; then
  newer="$(find core/src bindings-python/src bindings-python/Cargo.toml bindings-python/pyproject.toml \
    core/Cargo.toml Cargo.toml Cargo.lock -newer "$so" -print -quit 2>/dev/null || true)"
  if [ -z "$newer" ]; then
    echo "the extension ($so) is newer than its sources: not rebuilt"
    exit 0
  fi
  echo "rebuilding: $newer is newer than $so"
fi

step "Build the extension (maturin develop --release)"
ensure_rust
rm -f bindings-python/python/stratacache/_core.*.so
(cd bindings-python && VIRTUAL_ENV="$VENV" PATH="$VENV/bin:$PATH" maturin develop --release -q)
