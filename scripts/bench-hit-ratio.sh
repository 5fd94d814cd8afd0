#!/usr/bin/env bash
# Hit ratio of LocalCache's default policy against LRU, quick_cache, moka
# and Belady's optimum on the public traces in ../shared/traces (read in
# place; override with STRATACACHE_TRACES), at 5/20/50% of each trace's
# distinct keys (bytes for sized traces); then the worst and mean gap to the
# best peer. Writes target/hit-ratio/hit-ratio.csv and a plot,
# target/hit-ratio/hit-ratio.png (matplotlib in .venv).
# Usage: bash scripts/bench-hit-ratio.sh [--only <trace name part>]
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"
TRACES="${STRATACACHE_TRACES:-$REPO_ROOT/../shared/traces}"
OUT="$REPO_ROOT/target/hit-ratio"
mkdir -p "$OUT"

step "Build the simulator (release)"
cargo build --release -q -p stratacache-hit-ratio

step "Simulate (traces in $TRACES)"
"$REPO_ROOT/target/release/stratacache-hit-ratio" "$TRACES" --csv "$OUT/hit-ratio.csv" "$@"

step "Plot"
ensure_venv plots
"$VENV/bin/python" bench/hit-ratio/plot.py "$OUT/hit-ratio.csv" "$OUT/hit-ratio.png"
