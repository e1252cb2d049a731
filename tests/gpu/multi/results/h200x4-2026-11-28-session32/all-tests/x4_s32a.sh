#!/usr/bin/env bash
# Session 32 (4 GPUs), first call: every GPU test of the tree (session 31's compiled-only host changes: job names in
# the store's greeting, the launcher's signals, the hosts' gather; and the share-reserve setting).
set -uo pipefail
cd "$(dirname "$0")/.."
. bench/sp/common.sh
sf_outdir /tmp/sf-s32a build.log "${1:-}"
sf_build_logged "s32 all GPU tests" streamfusion-gpu sf_gpu_multi_test sf_gpu_kernel_tests
cd "$BUILD"
timeout 400 ctest -L gpu4 --output-on-failure --timeout 300 > "$OUTDIR/ctest_gpu4.log" 2>&1
echo "gpu4 rc=$?" >> "$OUTDIR/ctest_gpu4.log"
timeout 110 ctest -L gpu1 --output-on-failure > "$OUTDIR/ctest_gpu1.log" 2>&1
echo "gpu1 rc=$?" >> "$OUTDIR/ctest_gpu1.log"
grep -E 'Test +#|tests passed|rc=|Total' "$OUTDIR"/ctest_gpu4.log "$OUTDIR"/ctest_gpu1.log
