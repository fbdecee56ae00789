#!/bin/sh
# Builds every libFuzzer target (CMake targets named fuzz_<name>, option
# TLSGATE_FUZZ, clang) in build-fuzz and runs each for SECONDS (default 20)
# on a copy of its seed corpus tests/fuzz/<name>/. Fails when a target
# crashes; the crashing input is kept in build-fuzz/artifacts/.
# Usage: scripts/fuzz.sh [SECONDS]
set -eu
cd "$(dirname "$0")/.."
secs=${1:-20}
dir=build-fuzz
jobs=$(nproc 2>/dev/null || echo 2)

# Optimised, but without NDEBUG: the targets check their invariants with
# assert(), and so does the code under test.
cmake -S . -B "$dir" -DTLSGATE_FUZZ=ON -DCMAKE_C_COMPILER=clang \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O1 -g" >/dev/null
targets=$(cmake --build "$dir" --target help |
    sed -n 's/^\.\.\. \(fuzz_[A-Za-z0-9_]*\).*/\1/p' | sort -u)
if [ -z "$targets" ]; then
    echo "fuzz: no fuzz_* targets found" >&2
    exit 1
fi

mkdir -p "$dir/artifacts"
status=0
for t in $targets; do
    name=${t#fuzz_}
    cmake --build "$dir" --target "$t" -j "$jobs" >/dev/null
    work=$(mktemp -d "${TMPDIR:-/tmp}/tlsgate-fuzz-$name-XXXXXX")
    if [ -d "tests/fuzz/$name" ]; then
        cp -R "tests/fuzz/$name/." "$work/"
    fi
    if "$dir/bin/$t" -max_total_time="$secs" -max_len=8192 \
        -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$dir/artifacts/$t-" \
        "$work" >"$work.log" 2>&1; then
        runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work.log")
        echo "fuzz: $t ok (${secs}s${runs:+, $runs runs})"
    else
        echo "fuzz: $t FAILED; last lines of its log:" >&2
        tail -n 30 "$work.log" >&2
        status=1
    fi
    rm -rf "$work" "$work.log"
done
exit $status
