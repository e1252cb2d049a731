#!/usr/bin/env bash
# Session 31 (4 GPUs), first call: every GPU test of the tree (session 30's compiled-only changes: the shared ring's
# zeroed workspace, the shared one-call variant of the layer test, the launcher's command after --, launch_env).
set -uo pipefail
cd "$(dirname "$0")/.."
. bench/sp/common.sh
sf_outdir /tmp/sf-s31a build.log "${1:-}"
sf_build_logged "s31 all GPU tests" streamfusion-gpu sf_gpu_multi_test sf_gpu_kernel_tests
cd "$BUILD"
timeout 420 ctest -L gpu4 --output-on-failure --timeout 300 > "$OUTDIR/ctest_gpu4.log" 2>&1
echo "gpu4 rc=$?" >> "$OUTDIR/ctest_gpu4.log"
timeout 120 ctest -L gpu1 --output-on-failure > "$OUTDIR/ctest_gpu1.log" 2>&1
echo "gpu1 rc=$?" >> "$OUTDIR/ctest_gpu1.log"
grep -E 'Test +#|tests passed|rc=|Total' "$OUTDIR"/ctest_gpu4.log "$OUTDIR"/ctest_gpu1.log
