#!/usr/bin/env bash
# Installs what the build needs (Debian/Ubuntu), builds, and runs the main job: one Flux-shaped attention
# layer (H=24, D=128, S=520 — not divisible by 8) on 2 machines x 4 GPUs emulated by CPU threads, every
# scheme, checked against the float64 reference, as a table. Pass other `streamfusion attention` flags.
set -euo pipefail
cd "$(dirname "$0")/.."
if command -v apt-get >/dev/null && [ "$(id -u)" -eq 0 ]; then
  need=()
  for pkg in cmake ninja-build g++ libgtest-dev libcli11-dev nlohmann-json3-dev; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
  done
  if [ ${#need[@]} -gt 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"; fi
fi
BUILD=${BUILD:-build}
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD" -j "$(nproc)" --target streamfusion
"$BUILD"/tools/streamfusion/streamfusion plan --topology 2x4 --seq 520
"$BUILD"/tools/streamfusion/streamfusion attention --topology 2x4 --seq 520 "$@"
