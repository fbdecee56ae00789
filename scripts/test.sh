#!/bin/sh
# README's test command: builds tlsgate twice (plain, and with ASan+UBSan)
# and runs every test with ctest in both builds.
set -eu
cd "$(dirname "$0")/.."
./scripts/deps.sh
jobs=$(nproc 2>/dev/null || echo 2)

run_build() {
    dir=$1
    shift
    cmake -S . -B "$dir" -DTLSGATE_WERROR=ON "$@" >/dev/null
    cmake --build "$dir" -j "$jobs" >/dev/null
    (cd "$dir" && ctest --output-on-failure -j "$jobs" --timeout 600)
}

run_build build
run_build build-asan -DTLSGATE_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
