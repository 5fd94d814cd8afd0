#!/usr/bin/env bash
# The figures of docs/reports/benchmarks.md: plots and tables, from one set of figures.
#
#   bash scripts/benchmarks.sh          redraws docs/reports/demo/bench-*.png|svg and the
#                                       tables of docs/reports/benchmarks.md from the
#                                       figures in docs/reports/demo/benchmarks.json
#   bash scripts/benchmarks.sh --run    first runs the five benchmarks (a few
#                                       minutes; logs in target/benchmarks/),
#                                       and takes the figures from their output
#   bash scripts/benchmarks.sh --parse  takes the figures from the logs already
#                                       in target/benchmarks/, then redraws
#
# The parsing and drawing is scripts/benchmarks_report.py.
# The benchmarks: cargo bench -p stratacache --bench local_cache | envelope |
# tiered, bash scripts/bench-python.sh, bash scripts/bench-wasm.sh. Each log
# starts and ends with `uptime`, so the page can say how loaded the machine
# was. Run --run when the machine is quiet: the figures are ratios from one
# run, on whatever machine ran it (the page says which).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"

mode=plot
case "${1:-}" in
  "") ;;
  --run) mode=run ;;
  --parse) mode=parse ;;
  -h | --help) sed -n '2,/^set -euo/p' "$0" | sed 's/^# \{0,1\}//; /^set -euo/d'; exit 0 ;;
  *) echo "benchmarks.sh: unknown option $1 (--run, --parse)" >&2; exit 2 ;;
esac

LOGS="$REPO_ROOT/target/benchmarks"
PY="$VENV/bin/python"
ensure_venv plots

# run NAME COMMAND...: runs one benchmark; its output, between two uptimes,
# goes to $LOGS/NAME.txt (and, without criterion's progress lines, here).
run() {
  local name="$1" rc
  shift
  step "$name: $*"
  {
    echo "# commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- core bindings-python bindings-wasm || echo ' + local changes')"
    uptime
    "$@" 2>&1 && rc=0 || rc=$?
    echo "# exit $rc"
    uptime
  } | tee "$LOGS/$name.txt" | { grep -v -e '^Benchmarking' -e '^\s*$' || true; }
  if ! grep -q '^# exit 0$' "$LOGS/$name.txt"; then
    echo "benchmarks.sh: $name failed; see $LOGS/$name.txt" >&2
    exit 1
  fi
}

if [ "$mode" = run ]; then
  mkdir -p "$LOGS"
  ensure_rust
  run local_cache cargo bench -q -p stratacache --bench local_cache
  run envelope cargo bench -q -p stratacache --bench envelope
  run tiered cargo bench -q -p stratacache --bench tiered
  run python bash scripts/bench-python.sh
  run wasm bash scripts/bench-wasm.sh
fi

step "Figures -> docs/reports/demo/bench-*.png|svg and the tables of docs/reports/benchmarks.md"
"$PY" scripts/benchmarks_report.py "$mode" "$LOGS"
