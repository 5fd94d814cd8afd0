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

ensure_venv bench
ensure_extension

step "Servers"
export STRATACACHE_PORT_BASE="${STRATACACHE_PORT_BASE:-21410}"
start_servers memcached

step "Benchmarks"
"$VENV/bin/python" bindings-python/bench/bench_python.py "$@"
