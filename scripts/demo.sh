#!/usr/bin/env bash
# Runs the demo: a Rust service using tiercache's request cache, local cache
# and versioned keys, printing what happens at each step.
# Usage: bash scripts/demo.sh
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"
ensure_rust
cargo run --release --quiet -p rust_service
