#!/usr/bin/env bash
# The fast part of the reliability suite (issue 7), over real servers on
# loopback: fault injection against the Django example and the edge worker,
# short soaks, hostile input in every tier, a short load run, and a short
# cargo-fuzz run of every fuzz target. The long versions have their own
# commands (see docs/reports/reliability.md):
#   bash scripts/faults.sh   bash scripts/soak.sh   bash scripts/loadtest.sh
#   bash scripts/fuzz.sh     (FUZZ_SECONDS, default 600 per target)
# Builds only what is missing or stale (after scripts/test-python.sh and
# scripts/test-wasm.sh it builds nothing), starts the servers it needs and
# stops them. Exits non-zero on any failure.
# Usage: bash scripts/test-reliability.sh [pytest args]
#   FUZZ_SMOKE_SECONDS=N   seconds per fuzz target (default 15; 0 skips)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"

# The venv with the package and the examples' requirements, the npm package.
bash scripts/demo.sh --setup
ensure_venv reliability

step "Lint the reliability suite (ruff)"
.venv/bin/ruff check --config bindings-python/pyproject.toml tests/reliability
.venv/bin/ruff format --check --config bindings-python/pyproject.toml tests/reliability

step "Servers (memcached x2, Redis, S3) on loopback"
choose_port_base 21405
start_servers

step "Reliability: Python parts (pytest tests/reliability)"
(cd tests/reliability && "$REPO_ROOT/.venv/bin/python" -m pytest -q "$@")

mapfile -t js_tests < <(find tests/reliability -name '*.test.mjs' -not -path '*/node_modules/*' | sort)
if [ ${#js_tests[@]} -gt 0 ]; then
  step "Reliability: JS parts (node --test)"
  STRATACACHE_PYTHON="$REPO_ROOT/.venv/bin/python" node --test "${js_tests[@]}"
fi

seconds="${FUZZ_SMOKE_SECONDS:-15}"
if [ "$seconds" != 0 ]; then
  step "Fuzz smoke: every cargo-fuzz target for ${seconds}s"
  FUZZ_SECONDS="$seconds" bash scripts/fuzz.sh
fi
