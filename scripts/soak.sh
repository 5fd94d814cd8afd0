#!/usr/bin/env bash
# Soak and memory (issue 7): LocalCache under ten million mixed operations
# (TTL churn, fresh keys never read again, a hot set, values of 16 B-16 KiB,
# 50,000 entries / 32 MiB bounds, a fake clock) in each host, each contender
# in its own process, with RSS sampled over the run:
#   Rust    stratacache::LocalCache            (core/examples/soak_local.rs, --release)
#   Python  stratacache.LocalCache, Django's LocMemCache, cachetools.TTLCache
#   JS      stratacache LocalCache (npm package), npm lru-cache
# then a long RequestCache run across threads and asyncio tasks (Python) and
# concurrent async tasks (JS): no cross-request visibility, nothing left after
# a request, no memory growth. Prints progress, then the tables; writes the
# JSON of every run, summary.json and the plots (soak-local.png,
# soak-request.png) under target/reliability/soak/. Exits non-zero if a
# request saw another's value or a value outlived its request.
#
# Usage: bash scripts/soak.sh [--ops N] [--requests N] [--js-requests N] [--only LIST]
#   --ops N           operations per LocalCache contender (default 10,000,000)
#   --requests N      Python RequestCache requests (default 1,000,000)
#   --js-requests N   JS RequestCache requests (default 500,000)
#   --only LIST       comma-separated subset of: rust,python,js,request
# The fast version is tests/reliability/soak/test_soak_short.py (and
# soak_short.test.mjs), run by scripts/test-reliability.sh.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"

ops=10000000
requests=1000000
js_requests=500000
only="rust,python,js,request"
while [ $# -gt 0 ]; do
  case "$1" in
    --ops) ops="$2"; shift ;;
    --requests) requests="$2"; shift ;;
    --js-requests) js_requests="$2"; shift ;;
    --only) only="$2"; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed 's/^# \{0,1\}//; /^set -euo/d'; exit 0 ;;
    *) echo "soak.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
want() { [[ ",$only," == *",$1,"* ]]; }

out="$REPO_ROOT/target/reliability/soak"
mkdir -p "$out"
# A full run starts clean; a partial one (--only) replaces its own files.
[ "$only" = "rust,python,js,request" ] && rm -f "$out"/*.json
soak="$REPO_ROOT/tests/reliability/soak"
py="$REPO_ROOT/.venv/bin/python"

bash scripts/demo.sh --setup >/dev/null
ensure_venv reliability
[ -d bindings-wasm/node_modules/lru-cache ] || (cd bindings-wasm && npm ci --no-audit --no-fund --loglevel=error)
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)  (ops per contender: $ops)"

if want rust; then
  step "Rust: stratacache::LocalCache ($ops ops)"
  cargo build --release -q -p stratacache --example soak_local
  target/release/examples/soak_local --ops "$ops" --progress >"$out/rust-stratacache.json"
fi
if want python; then
  for c in stratacache django-locmem cachetools-ttl; do
    step "Python: $c ($ops ops)"
    (cd "$soak" && "$py" soak_local.py "$c" --ops "$ops" --progress) >"$out/python-$c.json"
  done
fi
if want js; then
  for c in stratacache lru-cache; do
    step "JS: $c ($ops ops)"
    # --gc: a full GC before each of the 200 samples, so the heap and
    # ArrayBuffer figures are what is retained, not garbage awaiting the GC.
    node --expose-gc "$soak/soak_local.mjs" "$c" --ops "$ops" --progress --gc >"$out/js-$c.json"
  done
fi
if want request; then
  step "Python RequestCache: $requests requests, 8 threads + 200 asyncio tasks"
  (cd "$soak" && "$py" soak_request.py --requests "$requests" --progress) >"$out/python-request.json"
  step "JS RequestCache: $js_requests requests, 200 async tasks"
  node --expose-gc "$soak/soak_request.mjs" --requests "$js_requests" --progress >"$out/js-request.json"
fi

step "Results (target/reliability/soak/)"
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
"$py" "$soak/soak_report.py" "$out"   # exits 1 on a request-cache leak
