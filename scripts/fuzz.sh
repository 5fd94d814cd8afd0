#!/usr/bin/env bash
# Runs every cargo-fuzz target of fuzz/ for FUZZ_SECONDS seconds each
# (default 600, the issue's ten minutes), then prints a table of executions,
# coverage and corpus per target and writes it as JSON to
# target/reliability/fuzz/summary.json (full libFuzzer logs beside it).
#
#   bash scripts/fuzz.sh                          # every target, 10 min each
#   FUZZ_SECONDS=15 bash scripts/fuzz.sh          # the CI smoke run
#   bash scripts/fuzz.sh envelope_decode tiered_read   # some targets
#
# Environment: FUZZ_SECONDS (per target), FUZZ_TARGET_DIR (cargo's target
# dir for the fuzz build; default fuzz/target). One libFuzzer process per
# target, one target after the other (one core, machine is shared).
#
# Installs cargo-fuzz (pinned, --locked) when missing. cargo-fuzz needs
# nightly-only compiler flags (sanitizers); RUSTC_BOOTSTRAP=1 lets the stable
# toolchain accept them. Exits non-zero if any target crashes, hangs (a unit
# over 60 s), leaks past -rss_limit_mb, or fails to build. A crash input lands
# in fuzz/artifacts/<target>/: reproduce it with
#   (cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run <target> artifacts/<target>/<file>)
# and turn it into a regression test in core/tests/hostile_*.rs.
#
# Corpora: fuzz/seeds/<target>/ holds a few dozen named seeds generated from
# the golden vectors in tests/vectors/ by fuzz/make_seeds.py (this script
# regenerates them first, so they follow the vectors);
# fuzz/corpus/<target>/ is the working corpus, not in git, which grows run
# after run and can be minimised in place:
#   (cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz cmin <target>)
set -euo pipefail

cd "$(dirname "$0")/.."
REPO="$PWD"
seconds="${FUZZ_SECONDS:-600}"
out="$REPO/target/reliability/fuzz"
mkdir -p "$out"
CARGO_FUZZ_VERSION=0.13.2

export PATH="$HOME/.cargo/bin:$PATH"
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz $CARGO_FUZZ_VERSION (a minute or two)" >&2
    cargo install --locked cargo-fuzz --version "$CARGO_FUZZ_VERSION"
fi

export RUSTC_BOOTSTRAP=1
target_dir=()
if [ -n "${FUZZ_TARGET_DIR:-}" ]; then
    target_dir=(--target-dir "$FUZZ_TARGET_DIR")
fi

if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cd fuzz && cargo fuzz list)
fi

# The seeds follow the vectors (a no-op when they are current).
python3 fuzz/make_seeds.py >&2

started=$(date +%s)
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
status=0
rows=()
for target in "${targets[@]}"; do
    log="$out/$target.log"
    mkdir -p "fuzz/corpus/$target" "fuzz/artifacts/$target"
    seeds=()
    if [ -d "fuzz/seeds/$target" ]; then
        seeds=("seeds/$target")
    fi
    echo "== fuzz.sh: $target for ${seconds}s (log: ${log#"$REPO"/})" >&2
    t0=$(date +%s)
    # -rss_limit_mb / -malloc_limit_mb: decoding must not allocate past its
    # limits; -timeout: a unit running for a minute is a hang.
    result=ok
    if ! (cd fuzz && cargo fuzz run "${target_dir[@]}" "$target" "corpus/$target" "${seeds[@]}" -- \
            -max_total_time="$seconds" -rss_limit_mb=1024 -malloc_limit_mb=1024 -timeout=60 \
            -max_len=65536 -print_final_stats=1) >"$log" 2>&1; then
        result=FAILED
        status=1
        echo "fuzz.sh: $target FAILED; see ${log#"$REPO"/} and fuzz/artifacts/$target/" >&2
        grep -a -E "panicked|ERROR|SUMMARY|Test unit written|error(\[|:)" "$log" | head -20 >&2 || true
    fi
    # Progress and the final figures, from libFuzzer's log.
    grep -a -E "INITED|DONE" "$log" | tail -2 >&2 || true
    elapsed=$(($(date +%s) - t0))
    done_line=$(grep -a -E "DONE|INITED" "$log" | tail -1 || true)
    field() { sed -nE "s/.* $1: ([^ ]+).*/\1/p" <<<"$done_line"; }
    stat() { LC_ALL=C sed -nE "s/^stat::$1: +([0-9]+).*/\1/p" "$log" | tail -1; }
    execs=$(stat number_of_executed_units)
    rate=$(stat average_exec_per_sec)
    rss=$(stat peak_rss_mb)
    cov=$(field cov)
    ft=$(field ft)
    corp=$(field corp)
    files=$(find "fuzz/corpus/$target" -type f | wc -l)
    bytes=$(find "fuzz/corpus/$target" -type f -printf '%s\n' | awk '{s += $1} END {print s + 0}')
    rows+=("$target ${execs:-0} ${rate:-0} ${cov:-?} ${ft:-?} ${corp:-?} $files $bytes ${rss:-0} $elapsed $result")
done
total=$(($(date +%s) - started))
load_end=$(cut -d' ' -f1-3 /proc/loadavg)

{
    printf '{"seconds_per_target": %s, "total_seconds": %s, "load_start": "%s", "load_end": "%s", "targets": [' \
        "$seconds" "$total" "$load_start" "$load_end"
    sep=""
    for row in "${rows[@]}"; do
        read -r t e r c f corp n b rss el res <<<"$row"
        printf '%s\n  {"target": "%s", "execs": %s, "execs_per_sec": %s, "cov": "%s", "ft": "%s", "corpus_in_run": "%s", "corpus_files": %s, "corpus_bytes": %s, "peak_rss_mb": %s, "seconds": %s, "result": "%s"}' \
            "$sep" "$t" "$e" "$r" "$c" "$f" "$corp" "$n" "$b" "$rss" "$el" "$res"
        sep=","
    done
    printf '\n]}\n'
} >"$out/summary.json"

echo
printf '%-16s %12s %8s %6s %7s %14s %8s %10s %7s %6s %s\n' \
    target execs exec/s cov ft "corp (units/B)" files bytes rss_mb secs result
for row in "${rows[@]}"; do
    # shellcheck disable=SC2086
    printf '%-16s %12s %8s %6s %7s %14s %8s %10s %7s %6s %s\n' $row
done
echo "total ${total}s for ${#targets[@]} target(s) at ${seconds}s each; load average ${load_start} -> ${load_end}"
echo "summary: ${out#"$REPO"/}/summary.json"
exit "$status"
