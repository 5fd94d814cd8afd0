#!/usr/bin/env bash
# Benchmarks of the Python package against its peers (edx-django-utils,
# functools.lru_cache, cachetools, Django's LocMemCache and PyMemcacheCache),
# side by side in one process over real memcached (ours and the peer
# interleaved round by round, best round kept), with ratios printed.
# Builds the extension (release), starts and stops the servers.
# Usage: bash scripts/bench-python.sh [--quick] [--check]
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"
VENV="$REPO_ROOT/.venv"

if [ ! -x "$VENV/bin/maturin" ] || [ ! -f "$VENV/.stratacache-requirements" ]; then
  echo "bench-python.sh: setting up .venv through scripts/test-python.sh's requirements" >&2
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "maturin>=1.7,<2" "django>=4.2,<6" "pymemcache>=4,<5" "edx-django-utils>=5" \
    "cachetools>=5" "moto[server]>=5,<6" "redis>=5,<9" "django-storages[s3]>=1.14,<2"
fi
step "Build the extension (maturin develop --release)"
rm -f bindings-python/python/stratacache/_core.*.so
(cd bindings-python && VIRTUAL_ENV="$VENV" PATH="$VENV/bin:$PATH" maturin develop --release -q)

step "Servers"
export STRATACACHE_PORT_BASE="${STRATACACHE_PORT_BASE:-21410}"
cleanup() { bash "$REPO_ROOT/scripts/servers.sh" stop memcached || true; }
trap cleanup EXIT
bash scripts/servers.sh start memcached
eval "$(bash scripts/servers.sh env)"

step "Benchmarks"
"$VENV/bin/python" bindings-python/bench/bench_python.py "$@"
