#!/usr/bin/env bash
# Runs every fuzz target of fuzz/Cargo.toml for a fixed budget; fails on the first crash.
#
#   .ci/fuzz.sh [seconds-per-target] [target...]     (default: 20 s, every target)
#
# Installs cargo-fuzz if missing. The machines have the stable toolchain only: cargo-fuzz needs
# nightly flags (-Zsanitizer, sancov passes), which RUSTC_BOOTSTRAP=1 unlocks on stable. The
# corpus grows in fuzz/corpus/<target> (git-ignored; kept between runs on one machine), seeded
# from fuzz/seeds/<target> when that exists. A crash leaves its input in fuzz/artifacts/<target>/
# and the reproduction command in the log. The last line per target is libFuzzer's
# "Done N runs in S second(s)", summarised at the end: BENCHMARKS.md "Fuzzing" records them.
set -euo pipefail

cd "$(dirname "$0")/.."

seconds=${1:-20}
shift || true
case "$seconds" in '' | *[!0-9]*) echo "fuzz.sh: seconds must be a number, got '$seconds'" >&2; exit 2 ;; esac

export PATH="$HOME/.cargo/bin:$PATH"
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi
export RUSTC_BOOTSTRAP=1

if [ $# -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cd fuzz && cargo fuzz list)
fi
[ ${#targets[@]} -gt 0 ] || { echo "fuzz.sh: no fuzz targets found" >&2; exit 1; }

logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT

# Build every target once up front, so the budget below is spent fuzzing.
echo "fuzz.sh: building ${#targets[@]} targets"
if ! (cd fuzz && cargo fuzz build) >"$logs/build" 2>&1; then
    tail -n 60 "$logs/build"
    echo "fuzz.sh: the fuzz targets do not build" >&2
    exit 1
fi
summary=()
for t in "${targets[@]}"; do
    corpus="fuzz/corpus/$t"
    mkdir -p "$corpus"
    dirs=("corpus/$t")
    [ -d "fuzz/seeds/$t" ] && dirs+=("seeds/$t")
    echo "fuzz.sh: $t for ${seconds}s"
    # -rss_limit_mb: the decoders must stay bounded on hostile sizes; 2 GiB is well above need.
    if ! (cd fuzz && cargo fuzz run "$t" "${dirs[@]}" -- \
            -max_total_time="$seconds" -rss_limit_mb=2048 -print_final_stats=1) >"$logs/$t" 2>&1; then
        tail -n 60 "$logs/$t"
        echo "fuzz.sh: $t FAILED (input saved under fuzz/artifacts/$t/)" >&2
        exit 1
    fi
    runs=$(grep -o 'Done [0-9]* runs in [0-9]* second(s)' "$logs/$t" | tail -n 1)
    size=$(find "$corpus" -type f | wc -l)
    summary+=("$t: ${runs:-?} (corpus: $size inputs)")
done

echo "fuzz.sh: every target ran ${seconds}s without a crash:"
printf '  %s\n' "${summary[@]}"
