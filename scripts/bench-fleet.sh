#!/usr/bin/env bash
# Fleet benchmarks of the Python package (issue 16, docs/fleet.md):
#   bench_coherence.py   how long other processes' local tiers serve an old
#                        value after a set (Redis pub/sub invalidation vs none)
#   bench_first_read.py  the first get_or_load of a 3.3 MiB value over memcached
#                        + S3, writes synchronous vs in the background
# Builds the extension (release), starts memcached, Redis and S3 (moto) on a
# port base of its own, stops them afterwards.
# Usage: bash scripts/bench-fleet.sh [--quick]
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"
VENV="$REPO_ROOT/.venv"

if [ ! -x "$VENV/bin/maturin" ] || [ ! -f "$VENV/.stratacache-requirements" ]; then
  echo "bench-fleet.sh: setting up .venv with the packages the benches need" >&2
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "maturin>=1.7,<2" "django>=4.2,<6" "redis>=5,<9" \
    "django-storages[s3]>=1.14,<2" "boto3>=1.34" "moto[server]>=5,<6"
fi
step "Build the extension (maturin develop --release)"
rm -f bindings-python/python/stratacache/_core.*.so
(cd bindings-python && VIRTUAL_ENV="$VENV" PATH="$VENV/bin:$PATH" maturin develop --release -q)

step "Servers (memcached, Redis, S3)"
choose_port_base 21510
cleanup() { bash "$REPO_ROOT/scripts/servers.sh" stop || true; }
trap cleanup EXIT
bash scripts/servers.sh start
eval "$(bash scripts/servers.sh env)"

step "Coherence of local tiers (bench_coherence.py)"
"$VENV/bin/python" bindings-python/bench/bench_coherence.py "$@"

step "First read with writes off the request path (bench_first_read.py)"
"$VENV/bin/python" bindings-python/bench/bench_first_read.py "$@"
