#!/usr/bin/env bash
# Fault injection for the edge worker under workerd (issue 7), long run: the
# edge example's worker (examples/edge_worker/src/worker.js, unchanged) in
# workerd via Miniflare, two isolates sharing one KV namespace, in front of
# the Django example (gunicorn; memcached and S3 on loopback), with the KV
# binding wrapped by a fault-injecting adapter
# (tests/reliability/edge/fault_worker.mjs). One steady load of concurrent
# requests, uniform over more courses than the worker's local tier holds,
# goes through
#   pass -> KV rejects -> pass -> KV hangs (never answers) -> pass -> KV slow -> pass
# and prints progress, then a table per phase: requests served, errors
# returned to clients (goal 0), hit ratio, latency, calls that reached KV
# while it failed vs the cool-down bound, origin calls, time until KV serves
# again and until the hit ratio recovers. JSON (run.json, summary.json,
# series.json), summary.txt and edge-faults.png go to target/reliability/edge/.
#
# Usage: bash scripts/faults-edge.sh
#   EDGE_COURSES (1500), EDGE_CONCURRENCY (16), EDGE_PRE_S (10), EDGE_FAULT_S (20),
#   EDGE_POST_S (20), EDGE_SLOW_MS (300), EDGE_SCENARIOS (reject,hang,slow)
#   About 40 s a scenario after the warm-up (1-2 minutes: Django builds every outline once).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"

bash scripts/demo.sh --setup

step "Servers (memcached x2, S3) on loopback for the Django origin"
choose_port_base 21705
started=0
if ! (exec 3<>"/dev/tcp/127.0.0.1/$STRATACACHE_PORT_BASE") 2>/dev/null; then started=1; fi
cleanup() { [ "$started" = 1 ] && bash "$REPO_ROOT/scripts/servers.sh" stop >/dev/null 2>&1 || true; }
trap cleanup EXIT
bash scripts/servers.sh start memcached s3
eval "$(bash scripts/servers.sh env)"
export STRATACACHE_PYTHON="$REPO_ROOT/.venv/bin/python"

out=target/reliability/edge
mkdir -p "$out"
step "The edge worker under KV faults (port base $STRATACACHE_PORT_BASE, load average $(cut -d' ' -f1-3 /proc/loadavg))"
status=0
EDGE_OUT="$out" node tests/reliability/edge/run.mjs || status=$?
if [ -f "$out/series.json" ]; then
  .venv/bin/python tests/reliability/edge/plot.py "$out" "$out/edge-faults.png"
fi
exit "$status"
