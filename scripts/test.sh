#!/usr/bin/env bash
# Runs every test of the project: formatting, lints, the Rust workspace tests
# (unit, property and golden-vector tests), the wasm32 build of the core, and
# the Python and WebAssembly package suites over real servers.
# Installs what it needs. Usage: bash scripts/test.sh
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"

step "Toolchain"
ensure_rust

step "Formatting (cargo fmt --check)"
cargo fmt --all -- --check

step "Lints (cargo clippy -D warnings)"
cargo clippy --workspace --all-targets --quiet -- -D warnings

step "Core builds for wasm32-unknown-unknown"
cargo build -p tiercache --target wasm32-unknown-unknown --quiet

step "Rust tests (cargo test --workspace)"
cargo test --workspace

# The host packages' suites (each builds its package once and starts the
# servers it needs).
for suite in scripts/test-python.sh scripts/test-wasm.sh; do
  if [ -f "$suite" ]; then
    step "$suite"
    bash "$suite"
  fi
done
