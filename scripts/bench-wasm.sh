#!/usr/bin/env bash
# Benchmarks of the WebAssembly package (not part of the test command):
# LocalCache vs npm lru-cache (max 10,000, string keys) in one run with
# ratios printed, then a TieredCache read of 100 local hits, package sizes
# and module instantiation + first call in Node and in workerd.
# Usage: bash scripts/bench-wasm.sh [seconds per case, default 2]
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"

bash scripts/build-wasm.sh
WASM_DIR="$REPO_ROOT/bindings-wasm"
# Resolve `stratacache` to the built package from the bench folder.
mkdir -p "$WASM_DIR/bench/node_modules"
ln -sfn ../../pkg "$WASM_DIR/bench/node_modules/stratacache"

step "LocalCache vs lru-cache"
node "$WASM_DIR/bench/local.mjs" "${1:-2}"

step "TieredCache: a read of 100 local hits"
node "$WASM_DIR/bench/tiered.mjs"

step "Package size and startup"
node "$WASM_DIR/bench/startup.mjs"
