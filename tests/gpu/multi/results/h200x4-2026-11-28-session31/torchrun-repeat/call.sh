#!/usr/bin/env bash
# Session 31 (4 GPUs), second call: torchrun under the launcher check four times (the first call's gpu4_launchers
# failed under torchrun only, rank 0 exit 1; whole logs kept), builtin once; then steady_1x4.sh (S=65536, no ctest).
set -uo pipefail
cd "$(dirname "$0")/.."
. bench/sp/common.sh
sf_outdir /tmp/sf-s31b build.log "${1:-}"
sf_build_logged "s31 torchrun, steady 1x4" streamfusion-gpu sf_gpu_multi_test
SFG=$(sf_gpu_binary)
SF_LAUNCHERS="torchrun torchrun builtin torchrun torchrun" SF_LAUNCHERS_KEEP=$OUTDIR/launchers \
  timeout 300 bash tests/gpu/multi/launchers.sh "$SFG" 4 > "$OUTDIR/launchers.log" 2>&1
echo "launchers rc=$?" >> "$OUTDIR/launchers.log"
cat "$OUTDIR/launchers.log"
SF_STEADY_CTEST=0 SF_SUSTAIN_S=2 timeout 260 bash bench/sp/steady_1x4.sh "$OUTDIR/steady-1x4" > /dev/null 2>&1
echo "steady rc=$?"
grep -E '^## |match|^\| ' "$OUTDIR/steady-1x4/steady.log" | head -30
