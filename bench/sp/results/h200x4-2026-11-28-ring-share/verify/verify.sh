#!/usr/bin/env bash
# Final check of the tree: the kernel's shared-call, tail-split and lead-piece tests, then the 4-GPU layer tests.
set -uo pipefail
cd "$(dirname "$0")/.."
. bench/sp/common.sh
sf_outdir /tmp/sf-verify verify.log "${1:-}"
sf_build_logged "verify" sf_gpu_multi_test sf_gpu_kernel_tests streamfusion-gpu
echo "## $(date -u +%T) kernel tests" >> "$LOG"
timeout 100 "$(find "$BUILD" -name sf_gpu_kernel_tests -type f -perm -u+x | head -1)" \
  --gtest_filter='CudaAttention.SharedCall*:CudaAttention.TailSplit*:CudaAttention.LeadPieces' \
  > "$OUTDIR/kernel_tests.log" 2>&1
echo "## kernel tests rc=$?" >> "$LOG"
echo "## $(date -u +%T) ctest gpu${NGPU} layers" >> "$LOG"
timeout 90 ctest --test-dir "$BUILD" -L "gpu${NGPU}" -R "layers_and" --output-on-failure > "$OUTDIR/ctest.log" 2>&1
echo "## ctest rc=$? ($(grep -E 'tests passed|tests failed' "$OUTDIR/ctest.log"))" >> "$LOG"
