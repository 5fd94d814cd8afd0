#!/usr/bin/env bash
# Fault injection against the Django example (issue 7), long runs: the
# course-outline site under gunicorn with 8 concurrent clients, and in the
# middle of each run one fault, then the restore:
#   mc-kill / mc1-kill       memcached killed (SIGKILL; both servers / 1 of 2), restarted
#   mc-freeze / mc1-freeze   memcached frozen (SIGSTOP; both / 1 of 2), thawed
#   redis-kill / redis-freeze  Redis as the shared tier (DEMO_SHARED_CACHE=redis), likewise
#   s3-503 / s3-reset / s3-hang   the S3 server behind a fault-injecting proxy answering
#                            503s, resetting connections, hanging (botocore defaults)
#   s3-hang-timeout          S3 hanging with a 1 s S3 client timeout (DEMO_S3_TIMEOUT=1)
#   edx-mc-kill              edx-django-utils' TieredCache (DEMO_MODE=edx), memcached killed
# Every tier is reached through tests/reliability/faults/faultproxy.py, which
# counts the calls that reach it. Prints progress, then a table: requests
# served, client errors (goal 0), loader calls, hit ratio before/during, time
# to recover after the restore, calls that reached the failing tier vs the
# cool-down bound. JSON and one plot per scenario (hit ratio and latency over
# time, the fault shaded) go to target/reliability/faults/.
# Then runs scripts/faults-edge.sh if it exists (the edge worker's faults).
#
# Usage: bash scripts/faults.sh [--scenarios a,b] [--warmup S] [--before S] [--fault S] [--after S]
#   defaults: every scenario, 8 s warm-up, 10 s baseline, 15 s fault, 15 s after
#   (about 75 s a scenario with the warm pass, ~16 minutes in all, plus the edge part).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"

bash scripts/demo.sh --setup
choose_port_base 22000
start_servers

step "Fault injection against the Django example (port base $STRATACACHE_PORT_BASE)"
.venv/bin/python tests/reliability/faults/faultrig.py --out target/reliability/faults "$@"

if [ -f scripts/faults-edge.sh ]; then
  step "Fault injection against the edge worker (scripts/faults-edge.sh)"
  bash scripts/faults-edge.sh
fi
