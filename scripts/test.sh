#!/usr/bin/env bash
# Runs every test of the project: formatting, lints, the Rust workspace tests
# (unit, property and golden-vector tests), the wasm32 build of the core, and
# the Python and WebAssembly package suites over real servers.
# Installs what it needs. Usage: bash scripts/test.sh
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"

# Everything is also written to a log, so the closing line can add up the
# counts of every runner (cargo test, pytest, node --test).
LOG="$(mktemp)"
exec > >(tee "$LOG") 2>&1

step "Links in the documentation stay inside the repository"
python3 scripts/check_links.py

step "Toolchain"
ensure_rust

step "Formatting (cargo fmt --check)"
cargo fmt --all -- --check

step "Lints (cargo clippy -D warnings)"
cargo clippy --workspace --all-targets --quiet -- -D warnings
cargo clippy -p stratacache-wasm --features tools --all-targets --quiet -- -D warnings

step "Core builds for wasm32-unknown-unknown"
cargo build -p stratacache --target wasm32-unknown-unknown --quiet

step "Rust tests (cargo test --workspace)"
cargo test --workspace

# The host packages' and the examples' suites (each builds what it needs
# once and starts the servers it needs).
for suite in scripts/test-python.sh scripts/test-wasm.sh scripts/test-packaging.sh scripts/test-examples.sh scripts/test-reliability.sh; do
  if [ -f "$suite" ]; then
    step "$suite"
    bash "$suite"
  fi
done

step "Summary"
total_passed=$(sed 's/\x1b\[[0-9;]*m//g' "$LOG" | awk '
  /^test result: ok\./ { for (i = 1; i <= NF; i++) if ($(i+1) ~ /^passed;?/) n += $i }
  /^=+ .*[0-9]+ passed/ || /^[0-9]+ passed/ { for (i = 1; i <= NF; i++) if ($(i+1) ~ /^passed/) n += $i }
  /^# pass [0-9]+/ { n += $3 }
  END { print n + 0 }')
echo "total: ${total_passed} passed, 0 failed"
