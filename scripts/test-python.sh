#!/usr/bin/env bash
# The Python package's suite: builds the extension once (maturin, release,
# into .venv/), lints (ruff), starts memcached x2, Redis and S3 on loopback
# (scripts/servers.sh), runs pytest over them, and stops the servers.
# Usage: bash scripts/test-python.sh [pytest args]
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"

# The venv with the `test` dependency group of bindings-python/pyproject.toml.
ensure_venv test
ensure_extension

step "Lint (ruff)"
"$VENV/bin/ruff" check --config bindings-python/pyproject.toml bindings-python/python bindings-python/build_backend bindings-python/bench bindings-python/tests
"$VENV/bin/ruff" format --check --config bindings-python/pyproject.toml bindings-python/python bindings-python/build_backend bindings-python/bench bindings-python/tests

step "Servers (memcached x2, Redis, S3) on loopback"
start_servers

# The Debug Toolbar panel test takes a screenshot in headless Chromium.
command -v chromium >/dev/null 2>&1 || apt_install chromium

# pylibmc (tests/test_ketama_compat.py, a real ketama client): built
# against libmemcached's headers.
if ! "$VENV/bin/python" -c 'import pylibmc' 2>/dev/null; then
  dpkg -s libmemcached-dev >/dev/null 2>&1 || apt_install libmemcached-dev
  "$VENV/bin/pip" install -q pylibmc
fi

step "pytest (bindings-python/tests)"
cd bindings-python/tests
"$VENV/bin/python" -m pytest -q "$@"
