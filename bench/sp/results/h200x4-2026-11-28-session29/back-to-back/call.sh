#!/usr/bin/env bash
# Session 29 (4 GPUs), last call: the multi-GPU layer/exchange test with each layer's first forward on sign-flipped
# inputs (no barrier between a layer's two forwards, so a buffer reused too soon shows in one of them).
set -uo pipefail
cd "$(dirname "$0")/.."
. bench/sp/common.sh
sf_outdir /tmp/sf-s29d ctest.log "${1:-}"
sf_build_logged "s29 back-to-back gpu4 test" streamfusion-gpu sf_gpu_multi_test
timeout 300 ctest --test-dir "$BUILD" -R "gpu${NGPU}_layers_and_exchange" -V > "$OUTDIR/ctest_v.log" 2>&1
echo "ctest rc=$?" | tee -a "$LOG"
grep -E "tests passed|tests failed|FAIL|FATAL" "$OUTDIR/ctest_v.log" | head -20
grep -c "ok so far" "$OUTDIR/ctest_v.log"
