#!/usr/bin/env bash
# The demo: what stratacache does for a Django site and an edge worker, in one
# command. On a fresh machine it first sets up everything (the venv with the
# Python package built by maturin and the examples' requirements, the npm
# package built from the Rust core, the edge worker's npm packages), then:
#
#  1. runs the course-outline site (examples/django_outline) under load three
#     ways: no caching, edx-django-utils' TieredCache, stratacache; prints
#     p50/p95/p99 latency, requests/s, loader calls and remote round trips
#     per request, and writes latency.png / latency.svg (target/demo/);
#  2. puts the edge worker (examples/edge_worker, in workerd) in front of
#     the site and shows a publish in Django reaching the edge.
#
# By default the site's tiers are embedded stand-ins (no server needed).
#   bash scripts/demo.sh --servers     memcached + S3 (moto) started on loopback
#                                      by scripts/servers.sh, stopped after
#   STRATACACHE_MEMCACHED=10.0.0.5:11211 STRATACACHE_S3_ENDPOINT=https://... \
#   STRATACACHE_S3_BUCKET=... AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=... \
#     bash scripts/demo.sh             your own servers
#   DEMO_SHARED_CACHE=redis STRATACACHE_REDIS_URL=redis://... bash scripts/demo.sh
#                                      Redis as the shared tier
#
# Usage: bash scripts/demo.sh [--servers] [--setup] [--no-edge] [--out DIR]
#                             [--requests N] [--concurrency C] [--modes none,edx,stratacache]
#   --setup    only set up (what scripts/test-examples.sh uses)
#   --no-edge  skip step 2
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"

servers=0
setup_only=0
edge=1
out="$REPO_ROOT/target/demo"
load_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --servers) servers=1 ;;
    --setup) setup_only=1 ;;
    --no-edge) edge=0 ;;
    --out) out="$2"; shift ;;
    --requests | --concurrency | --modes | --threads) load_args+=("$1" "$2"); shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed 's/^# \{0,1\}//; /^set -euo/d'; exit 0 ;;
    *) echo "demo.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

# wasm_stale: true if bindings-wasm/pkg is missing or older than a source it is built from.
wasm_stale() {
  local wasm="bindings-wasm/pkg/stratacache_core_bg.wasm"
  [ -f "$wasm" ] || return 0
  [ -n "$(find core/src bindings-wasm/src bindings-wasm/js bindings-wasm/Cargo.toml core/Cargo.toml Cargo.lock \
    -newer "$wasm" -print -quit 2>/dev/null)" ]
}

setup() {
  command -v node >/dev/null || { echo "demo.sh: node not found: install Node 20 or newer" >&2; exit 1; }
  bash scripts/build-python.sh --if-stale --examples
  if wasm_stale; then
    bash scripts/build-wasm.sh
  else
    echo "bindings-wasm/pkg is newer than its sources: not rebuilt"
  fi
  local dir=examples/edge_worker
  if [ ! -f "$dir/node_modules/.package-lock.json" ] || [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ] \
    || [ ! -e "$dir/node_modules/stratacache/package.json" ]; then
    step "npm packages of the edge worker (npm ci)"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
  fi
}

step "Set up (venv, Python package, npm package, the examples' packages)"
setup
[ "$setup_only" = 1 ] && exit 0

if [ "$servers" = 1 ]; then
  step "Servers (memcached x2, S3) on loopback"
  choose_port_base
  start_servers memcached s3
fi

step "1. The course-outline site under load: no caching, edx-django-utils, stratacache"
started=$SECONDS
.venv/bin/python examples/django_outline/loadtest.py --out "$out" "${load_args[@]}"

if [ "$edge" = 1 ]; then
  step "2. The edge worker in front of the site"
  (cd examples/edge_worker && STRATACACHE_PYTHON="$REPO_ROOT/.venv/bin/python" node demo.mjs)
fi

cat <<EOF

The demo ran in $((SECONDS - started)) s. Plots: $out/latency.png and $out/latency.svg.
What to read next:
  examples/django_outline/courses/caching.py   the three ways, side by side
  examples/django_outline/outline_site/settings.py   the tiers: embedded, or real servers
  examples/django_outline/README.md            what the table means
  examples/edge_worker/src/worker.js           the edge worker (same keys, same envelopes)
  docs/reports/benchmarks.md                           the benchmarks of the core, Python and JS packages
Real servers instead of the embedded stand-ins:
  bash scripts/demo.sh --servers               memcached + S3 started on loopback
  STRATACACHE_MEMCACHED=host:port STRATACACHE_S3_ENDPOINT=URL STRATACACHE_S3_BUCKET=NAME bash scripts/demo.sh
  DEMO_SHARED_CACHE=redis STRATACACHE_REDIS_URL=redis://host:port/0 bash scripts/demo.sh
EOF
