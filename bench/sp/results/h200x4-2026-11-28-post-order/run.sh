#!/usr/bin/env bash
# Session 22, call 4 (4 GPUs), the final tree: multi-GPU tests, then in-order posting (SF_NVSHMEM_POST_ORDER
# issue / free) under the three booking/NIC models, alternately, 3 rounds each.
set -uo pipefail
cd "$(dirname "$0")/.."
. bench/sp/common.sh
sf_outdir /tmp/sf-s22c4 call4.log "${1:-}"
sf_build_logged "s22 call4" streamfusion-gpu sf_gpu_multi_test
SFG=$(sf_gpu_binary)
CARD="$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1) x$NGPU"
echo "## $(date -u +%T) ctest -L gpu$NGPU" >> "$LOG"
timeout 300 ctest --test-dir "$BUILD" -L "gpu$NGPU" --output-on-failure > "$OUTDIR/ctest.log" 2>&1
echo "## ctest rc=$? ($(grep -E 'tests passed|tests failed' "$OUTDIR/ctest.log"))" >> "$LOG"
for model in "lane fifo" "post fifo" "post fair"; do
  read -r booking nic <<< "$model"
  for round in 1 2 3; do
    for o in free issue; do
      label="SF_NVSHMEM_POST_ORDER=$o"
      SF_EMULATED_BOOKING=$booking SF_EMULATED_NIC=$nic SF_NVSHMEM_POST_ORDER=$o timeout 60 "$SFG" launch -n "$NGPU" \
        --grace 5 -- "$SFG" gpu-attention -S 16384,36864 -H 24 -D 128 --topology 2x2,4x1 --gbps 50 --latency-us 5 \
        --schemes sfu --no-single --no-concurrent -w 3 -n 9 --label "$label" --json "$OUTDIR/$booking-$nic.jsonl" \
        >> "$LOG" 2>&1
      echo "## $(date -u +%T) $booking+$nic $label rc=$?" >> "$LOG"
    done
  done
  { echo "## booking $booking, NIC $nic"; $PY bench/sp/split_ab.py "$OUTDIR/$booking-$nic.jsonl" "$CARD"; echo; } \
    >> "$OUTDIR/AB_post_order.md" 2>&1
done
cat "$OUTDIR/AB_post_order.md"
grep -E "^## " "$LOG" | tail -5
