#!/usr/bin/env bash
# The Django cache backend (stratacache.django.backend.TieredCacheBackend)
# against PyMemcacheCache, PyLibMCCache (if pylibmc installs), RedisCache and
# django-redis on the same real servers, in one process: get hit, get_many
# of 100, set_many of 100, a 3 MiB value; ratios printed.
# Builds the extension (release), starts and stops the servers.
# Usage: bash scripts/bench-django.sh [--quick]
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"
VENV="$REPO_ROOT/.venv"

[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -c "import maturin" 2>/dev/null || "$VENV/bin/pip" install -q "maturin>=1.7,<2"
"$VENV/bin/pip" install -q "django>=4.2,<6" "pymemcache>=4,<5" "redis>=5,<9" "django-redis>=5.4" \
  "moto[server]>=5,<6"
# PyLibMCCache's client builds against libmemcached (Debian: libmemcached-dev);
# left out of the run, with the reason printed, if it does not install.
if ! "$VENV/bin/python" -c "import pylibmc" 2>/dev/null; then
  apt_install libmemcached-dev zlib1g-dev || echo "bench-django.sh: apt could not install libmemcached-dev" >&2
  "$VENV/bin/pip" install -q pylibmc \
    || echo "bench-django.sh: pylibmc does not install here (see pip's error above); PyLibMCCache is left out" >&2
fi

step "Build the extension (maturin develop --release)"
rm -f bindings-python/python/stratacache/_core.*.so
(cd bindings-python && VIRTUAL_ENV="$VENV" PATH="$VENV/bin:$PATH" maturin develop --release -q)

step "Servers"
choose_port_base 21510
cleanup() { bash "$REPO_ROOT/scripts/servers.sh" stop memcached redis || true; }
trap cleanup EXIT
bash scripts/servers.sh start memcached redis
eval "$(bash scripts/servers.sh env)"

step "Benchmarks"
"$VENV/bin/python" bindings-python/bench/bench_django.py "$@"
