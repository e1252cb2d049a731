#!/usr/bin/env bash
# Session 22, call 1 (4 GPUs): the multi-GPU tests on the tree with fb64013/3b9a26d/da818f2, then SFU-NVSHMEM
# under the NIC models (refined fair: a connection's flows in order), then a trace of 4x1 S=16384 under post+fair.
set -uo pipefail
cd "$(dirname "$0")/.."
. bench/sp/common.sh
sf_outdir /tmp/sf-s22c1 call1.log "${1:-}"
sf_build_logged "s22 call1" streamfusion-gpu sf_gpu_multi_test
SFG=$(sf_gpu_binary)
echo "## $(date -u +%T) ctest -L gpu$NGPU" >> "$LOG"
timeout 280 ctest --test-dir "$BUILD" -L "gpu$NGPU" --output-on-failure > "$OUTDIR/ctest.log" 2>&1
echo "## ctest rc=$? ($(grep -E 'tests passed|tests failed' "$OUTDIR/ctest.log"))" >> "$LOG"
for cfg in "lane fifo on" "post fifo on" "lane fair on" "post fair on" "post fair off" "lane fair off"; do
  read -r booking nic pipe <<< "$cfg"
  SF_EMULATED_BOOKING=$booking SF_EMULATED_NIC=$nic SF_NVSHMEM_PIPELINE=$pipe timeout 45 "$SFG" launch -n "$NGPU" \
    --grace 5 -- "$SFG" gpu-attention -S 16384,36864 -H 24 -D 128 --topology 4x1,2x2 --gbps 50 --latency-us 5 \
    --schemes sfu --no-single --no-concurrent -w 3 -n 9 --label "nic=$booking+$nic+pipeline-$pipe" \
    --json "$OUTDIR/nic.jsonl" >> "$LOG" 2>&1
  echo "## $(date -u +%T) $booking+$nic+pipeline-$pipe rc=$?" >> "$LOG"
done
SF_EMULATED_BOOKING=post SF_EMULATED_NIC=fair timeout 45 "$SFG" launch -n "$NGPU" --grace 5 -- "$SFG" gpu-attention \
  -S 16384 -H 24 -D 128 --topology 4x1 --gbps 50 --latency-us 5 --schemes sfu --trace --no-single -w 2 -n 5 \
  > "$OUTDIR/trace_post_fair.log" 2>&1
echo "## trace rc=$?" >> "$LOG"
grep -E "^\| B=|^## |gpu-attention on" "$LOG" | cut -c1-170
