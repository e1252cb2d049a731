#!/usr/bin/env bash
# Session 32 (4 GPUs): the start-up gather of hosts and software on 4 ranks: the start-up error cases (with
# different_builds), the launchers, the layer tests.
set -uo pipefail
cd "$(dirname "$0")/.."
. bench/sp/common.sh
sf_outdir /tmp/sf-s32c build.log "${1:-}"
sf_build_logged "s32 4-GPU start-up" streamfusion-gpu sf_gpu_multi_test
SFG=$(sf_gpu_binary)
SF_STARTUP_KEEP=$OUTDIR/startup4 timeout 300 bash tests/gpu/multi/startup_errors.sh "$SFG" 4 > "$OUTDIR/startup4.log" 2>&1
echo "rc=$?" >> "$OUTDIR/startup4.log"
cat "$OUTDIR/startup4.log"
cd "$BUILD"
timeout 330 ctest -R 'gpu4_(layers_and_exchange|launchers|fault_reported_nvshmem)' --output-on-failure --timeout 300 \
  > "$OUTDIR/ctest_gpu4.log" 2>&1
echo "gpu4 rc=$?" >> "$OUTDIR/ctest_gpu4.log"
grep -E 'Test +#|tests passed|rc=|Total' "$OUTDIR"/ctest_gpu4.log
