#!/usr/bin/env bash
# Runs every cargo-fuzz target of fuzz/ for FUZZ_SECONDS seconds each
# (default 600). A short smoke run: FUZZ_SECONDS=20 bash scripts/fuzz.sh
# Pick targets: bash scripts/fuzz.sh envelope_decode manifest_decode
#
# cargo-fuzz needs nightly-only compiler flags; RUSTC_BOOTSTRAP=1 lets the
# stable toolchain accept them. Crashes land in fuzz/artifacts/<target>/;
# turn each into a regression test in core/tests/envelope_*.rs.
set -euo pipefail

cd "$(dirname "$0")/.."
seconds="${FUZZ_SECONDS:-600}"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz" >&2
    cargo install --locked cargo-fuzz
fi

if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz list)
fi

export RUSTC_BOOTSTRAP=1
status=0
for target in "${targets[@]}"; do
    echo "== fuzz.sh: $target for ${seconds}s" >&2
    mkdir -p "fuzz/corpus/$target"
    # -rss_limit_mb: decoding must not allocate past its limits.
    if ! (cd fuzz && cargo fuzz run "$target" -- \
            -max_total_time="$seconds" -rss_limit_mb=1024 -max_len=65536 -print_final_stats=1); then
        echo "fuzz.sh: $target FAILED; see fuzz/artifacts/$target/" >&2
        status=1
    fi
done
exit "$status"
