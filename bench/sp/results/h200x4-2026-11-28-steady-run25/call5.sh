#!/usr/bin/env bash
# Session 23, call 5 (4 GPUs): the launchers test with mpirun's new port pick, then the steady 1x4 table at Flux
# S=65536 (steady_1x4.sh, no ctest) on the final tree.
set -uo pipefail
cd "$(dirname "$0")/.."
. bench/sp/common.sh
sf_outdir /tmp/sf-s23c5 call5.log "${1:-}"
sf_build_logged "s23 call5" streamfusion-gpu sf_gpu_multi_test
( cd "$BUILD" && timeout 120 ctest -L gpu4 -R launchers --output-on-failure ) > "$OUTDIR/ctest_launchers.log" 2>&1
echo "## launchers rc=$? $(date -u +%T)" >> "$LOG"
SF_STEADY_CTEST=0 bash bench/sp/steady_1x4.sh "$OUTDIR/steady" > /dev/null 2>&1
echo "## steady rc=$? $(date -u +%T)" >> "$LOG"
grep -E "PASS|FAIL|launchers:" "$OUTDIR/ctest_launchers.log"
cat "$LOG"
