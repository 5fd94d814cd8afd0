#!/usr/bin/env bash
# Fleet benchmarks of the Python package (issue 16, docs/fleet.md), over real
# servers on loopback:
#   bench_fleet.py       one memcached server of four killed or frozen: share of
#                        keys served from memcached in the seconds after, dead
#                        keys "move" and "stay", beside pymemcache's HashClient
#   bench_redis.py       get_many of 100 keys, Redis (one node and a 3-master
#                        cluster) beside memcached and Django's RedisCache
#   bench_coherence.py   how long other processes' local tiers serve an old
#                        value after a set (Redis pub/sub invalidation vs none)
#   bench_first_read.py  the first get_or_load of a 3.3 MiB value over memcached
#                        + S3, writes synchronous vs in the background
# Builds the extension if stale, starts the servers, stops them afterwards.
# Usage: bash scripts/bench-fleet.sh [--quick]
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"
ensure_venv bench
ensure_extension --if-stale
choose_port_base 21610
start_servers

seconds=10
quick=()
if [ "${1:-}" = --quick ]; then seconds=3; quick=(--quick); fi

step "One memcached server of four killed / frozen (bench_fleet.py)"
"$VENV/bin/python" bindings-python/bench/bench_fleet.py "$seconds"
step "Redis get_many of 100 keys (bench_redis.py)"
"$VENV/bin/python" bindings-python/bench/bench_redis.py
step "Coherence of local tiers (bench_coherence.py)"
"$VENV/bin/python" bindings-python/bench/bench_coherence.py "${quick[@]}"
step "First read with writes off the request path (bench_first_read.py)"
"$VENV/bin/python" bindings-python/bench/bench_first_read.py "${quick[@]}"
