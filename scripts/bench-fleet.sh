#!/usr/bin/env bash
# Fleet benchmarks (issue 16), over real servers on loopback:
#  - bench_fleet.py: one memcached server of four killed or frozen, share of
#    keys served from memcached in the 10 s after, stratacache (dead keys
#    "move" and "stay") beside pymemcache's HashClient;
#  - bench_redis.py: get_many of 100 keys, Redis (one node and a 3-master
#    cluster) beside memcached and Django's RedisCache.
# Builds the extension if stale, starts and stops the servers.
# Usage: bash scripts/bench-fleet.sh [seconds after the fault, default 10]
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"
bash scripts/build-python.sh --if-stale
choose_port_base 21610
cleanup() { bash "$REPO_ROOT/scripts/servers.sh" stop memcached redis || true; }
trap cleanup EXIT
bash scripts/servers.sh start memcached redis
eval "$(bash scripts/servers.sh env)"
step "One memcached server of four killed / frozen (bench_fleet.py)"
.venv/bin/python bindings-python/bench/bench_fleet.py "${1:-10}"
step "Redis get_many of 100 keys (bench_redis.py)"
.venv/bin/python bindings-python/bench/bench_redis.py
