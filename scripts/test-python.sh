#!/usr/bin/env bash
# The Python package's suite: builds the extension once (maturin, release,
# into .venv/), lints (ruff), starts memcached x2, Redis and S3 on loopback
# (scripts/servers.sh), runs pytest over them, and stops the servers.
# Usage: bash scripts/test-python.sh [pytest args]
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"

VENV="$REPO_ROOT/.venv"
PY_REQUIREMENTS=(
  "maturin>=1.7,<2"
  "django>=4.2,<6"
  "pymemcache>=4,<5"
  "redis>=5,<9"
  "django-storages[s3]>=1.14,<2"
  "boto3>=1.34"
  "moto[server]>=5,<6"
  "pytest>=8"
  "pytest-django>=4.8"
  "tqdm>=4.66"
  "edx-django-utils>=5"
  "cachetools>=5"
  "ruff>=0.6"
  "django-debug-toolbar>=4.4"
  "django-waffle>=4"
  "prometheus-client>=0.20"
  "opentelemetry-api>=1.25"
  "opentelemetry-sdk>=1.25"
)

step "Python environment (.venv)"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
stamp="$VENV/.stratacache-requirements"
want="$(printf '%s\n' "${PY_REQUIREMENTS[@]}")"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  "$VENV/bin/pip" install -q --upgrade pip
  "$VENV/bin/pip" install -q "${PY_REQUIREMENTS[@]}"
  printf '%s\n' "$want" >"$stamp"
fi

step "Build the extension once (maturin develop --release)"
rm -f bindings-python/python/stratacache/_core.*.so
(cd bindings-python && VIRTUAL_ENV="$VENV" PATH="$VENV/bin:$PATH" maturin develop --release -q)

step "Lint (ruff)"
"$VENV/bin/ruff" check --config bindings-python/pyproject.toml bindings-python/python bindings-python/bench bindings-python/tests
"$VENV/bin/ruff" format --check --config bindings-python/pyproject.toml bindings-python/python bindings-python/bench bindings-python/tests

step "Servers (memcached x2, Redis, S3) on loopback"
# A port base of our own, so a concurrent run elsewhere on the machine does
# not share (or stop) our servers.
choose_port_base
cleanup() { bash "$REPO_ROOT/scripts/servers.sh" stop || true; }
trap cleanup EXIT
bash scripts/servers.sh start
eval "$(bash scripts/servers.sh env)"

# The Debug Toolbar panel test takes a screenshot in headless Chromium.
command -v chromium >/dev/null 2>&1 || apt_install chromium

step "pytest (bindings-python/tests)"
cd bindings-python/tests
"$VENV/bin/python" -m pytest -q "$@"
