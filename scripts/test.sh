#!/usr/bin/env bash
# Builds the CPU-only tree and runs the CPU test tier (label "cpu"): every algorithm on thread ranks against
# the float64 reference, byte counts against the closed forms, kernels, Comm semantics and error messages.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DSTREAMFUSION_WERROR=ON >/dev/null
cmake --build "$BUILD" -j "$(nproc)"
ctest --test-dir "$BUILD" -L cpu -j "$(nproc)" --output-on-failure --timeout 600
