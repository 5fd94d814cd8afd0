#!/usr/bin/env bash
# The load test of issue 7 (docs/reports/reliability/load.md): locust against the
# Django course-outline example over real memcached (two instances) and S3
# (moto) on loopback, stratacache (DEMO_MODE=stratacache) against the
# edx-django-utils configuration (DEMO_MODE=edx) on the same servers, with a
# fixed number of users (all started at once, no think time) for a fixed
# time per run. The configurations alternate in rounds (edx, stratacache,
# stratacache, edx, ...) so that a noisy neighbour weighs on both alike; every
# run has a fresh modulestore copy and fresh key prefixes.
#
# Prints a progress line every 30 s, then a table per run and per
# configuration (req/s, p50/p95/p99, errors, loader calls, memcached / S3 /
# modulestore round trips per request, memcached's own key and byte counts,
# load average) with the ratios stratacache/edx. Writes results.json,
# table.txt, samples-*.json and load-timeline.png (throughput and p99 over
# time) to target/reliability/load/. Exits non-zero if any request failed.
#
# Starts and stops its own servers (memcached x2, S3) on a free port base
# from 22100 up, unless STRATACACHE_MEMCACHED and STRATACACHE_S3_ENDPOINT are
# already set (eval "$(bash scripts/servers.sh env)").
#
# Usage: bash scripts/loadtest.sh [--minutes M] [--users U] [--rounds R] [--threads T]
#   --minutes  minutes per run (default 3)
#   --users    locust users (default 8)
#   --rounds   runs per configuration (default 2: edx, stratacache, stratacache, edx)
#   --threads  gunicorn threads of the site (default 8)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"

args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --minutes | --users | --rounds | --threads)
      [ $# -ge 2 ] || { echo "loadtest.sh: $1 needs a value" >&2; exit 2; }
      args+=("$1" "$2"); shift 2 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed 's/^# \{0,1\}//; /^set -euo/d'; exit 0 ;;
    *) echo "loadtest.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done

# The venv with the package and the example's requirements; locust.
bash scripts/demo.sh --setup
ensure_venv reliability

if [ -z "${STRATACACHE_MEMCACHED:-}" ] || [ -z "${STRATACACHE_S3_ENDPOINT:-}" ]; then
  step "Servers (memcached x2, S3) on loopback"
  choose_port_base 22100
  start_servers memcached s3
fi

step "Load test: stratacache vs edx-django-utils"
.venv/bin/python tests/reliability/load/loadrun.py --out target/reliability/load "${args[@]}"
