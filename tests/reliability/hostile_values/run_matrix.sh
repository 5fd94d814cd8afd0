#!/usr/bin/env bash
# The hostile-values matrix on its own: starts the servers (its own port
# base, from 22300 up), runs the Python and JS hostile-value tests with JUnit
# output, and prints the corruption x tier table (also written to
# target/reliability/hostile_values/matrix.md and matrix.json). The same
# tests run in `bash scripts/test-reliability.sh -k hostile_values`.
# Usage: bash tests/reliability/hostile_values/run_matrix.sh
set -euo pipefail
source "$(dirname "$0")/../../../scripts/lib.sh"
cd "$REPO_ROOT"

bash scripts/demo.sh --setup
choose_port_base 22300
start_servers

out="$REPO_ROOT/target/reliability/hostile_values"
mkdir -p "$out"
status=0
step "Python tiers (pytest)"
(cd tests/reliability && "$REPO_ROOT/.venv/bin/python" -m pytest -q hostile_values --junitxml="$out/py.xml") || status=1
step "JS tiers: Node (memoryTier, Redis adapter) and workerd (kvTier, cacheApiTier)"
node --test --test-reporter=spec --test-reporter-destination=stdout \
  --test-reporter=junit --test-reporter-destination="$out/node.xml" \
  tests/reliability/hostile_values/hostile_values_node.test.mjs || status=1
node --test --test-reporter=spec --test-reporter-destination=stdout \
  --test-reporter=junit --test-reporter-destination="$out/workerd.xml" \
  tests/reliability/hostile_values/hostile_values_workerd.test.mjs || status=1
step "The matrix (load average: $(cut -d' ' -f1-3 /proc/loadavg))"
(cd tests/reliability/hostile_values && "$REPO_ROOT/.venv/bin/python" matrix.py "$out/py.xml" "$out/node.xml" "$out/workerd.xml") || status=1
exit $status
