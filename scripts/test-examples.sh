#!/usr/bin/env bash
# The examples' tests, over real servers on loopback:
#  - examples/django_outline: ruff, then its views with Django's test client
#    over memcached and S3 (scripts/servers.sh), and a short run of the demo
#    (the table is printed; stratacache made fewer loader calls and round
#    trips than no caching and edx-django-utils);
#  - examples/edge_worker: the worker in workerd (Miniflare) in front of the
#    Django site, two isolates sharing KV;
#  - examples/rust_service: builds and runs.
# Builds only what is missing or older than its sources (after
# scripts/test-python.sh and scripts/test-wasm.sh it builds nothing), starts
# the servers it needs and stops them. Exits non-zero on any failure.
# Usage: bash scripts/test-examples.sh [pytest args]
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"

# The venv, the packages and the examples' dependencies (reused when current).
bash scripts/demo.sh --setup

step "Lint the Django example (ruff)"
.venv/bin/ruff check examples/django_outline
.venv/bin/ruff format --check examples/django_outline

step "Servers (memcached x2, S3) on loopback"
# A port base of our own, so a concurrent run elsewhere on the machine does
# not share (or stop) our servers.
choose_port_base 21305
start_servers memcached s3

step "Django example: views over memcached and S3, and a short demo run (pytest)"
(cd examples/django_outline && "$REPO_ROOT/.venv/bin/python" -m pytest -q "$@")

step "Edge worker in workerd, in front of the Django example (node --test)"
(cd examples/edge_worker && STRATACACHE_PYTHON="$REPO_ROOT/.venv/bin/python" node --test test/)

step "Rust example (cargo run -p rust_service)"
cargo run --quiet -p rust_service >/dev/null
echo "rust_service ran"
