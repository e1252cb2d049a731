#!/usr/bin/env bash
# Session 21, call 2 (4 GPUs): old emulation+code (booking as the lane issues, 2 side streams) against new (booking
# where posted, 8 side streams), alternately; a trace of the new; layer, links and link-fault tests.
set -uo pipefail
cd "$(dirname "$0")/.."
. bench/sp/common.sh
sf_outdir /tmp/sf-s21c2 call2.log "${1:-}"
T0=$(date +%s)
sf_build_logged "s21 call2" streamfusion-gpu sf_gpu_multi_test
echo "# built in $(( $(date +%s) - T0 )) s" >> "$LOG"
SFG=$(sf_gpu_binary)
: > "$OUTDIR/ab.jsonl"
for round in 1 2; do
  for v in old new; do
    if [ $v = old ]; then envset=(SF_EMULATED_BOOKING=lane SF_NVSHMEM_SIDE_STREAMS=2); else envset=(SF_EMULATED_BOOKING=post); fi
    echo "## $(date -u +%T) round $round $v" >> "$LOG"
    env "${envset[@]}" timeout 100 "$SFG" launch -n "$NGPU" --grace 15 -- "$SFG" gpu-attention -S 16384,36864 \
      -H 24 -D 128 --topology 4x1,2x2 --gbps 50,6.25 --latency-us 5 --schemes sfu -w 3 -n 9 \
      --label "tree=$v" --json "$OUTDIR/ab.jsonl" >> "$LOG" 2>&1
    echo "## rc=$?" >> "$LOG"
    env "${envset[@]}" timeout 100 "$SFG" launch -n "$NGPU" --grace 15 -- "$SFG" gpu-attention -S 81920 \
      -H 48 -D 64 --topology 4x1,2x2 --gbps 50,6.25 --latency-us 5 --schemes sfu -w 2 -n 5 \
      --label "tree=$v" --json "$OUTDIR/ab.jsonl" >> "$LOG" 2>&1
    echo "## rc=$?" >> "$LOG"
  done
done
$PY bench/sp/split_ab.py "$OUTDIR/ab.jsonl" "$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1) x$NGPU" \
  > "$OUTDIR/AB.md" 2>&1
echo "## $(date -u +%T) trace" >> "$LOG"
timeout 60 "$SFG" launch -n "$NGPU" --grace 10 -- "$SFG" gpu-attention -S 16384 -H 24 -D 128 --topology 4x1,2x2 \
  --gbps 50 --latency-us 5 --schemes sfu --trace --no-single -w 2 -n 5 > "$OUTDIR/trace.log" 2>&1
echo "## rc=$?" >> "$LOG"
timeout 240 ctest --test-dir "$BUILD" -R "gpu4_layers|gpu4_fault_reported_link|gpu4_emulated_links" \
  --output-on-failure > "$OUTDIR/ctest.log" 2>&1
echo "## $(date -u +%T) ctest rc=$? ($(grep -E 'tests passed|tests failed' "$OUTDIR/ctest.log"))" >> "$LOG"
grep -E "^## |^# built" "$LOG"
cat "$OUTDIR/AB.md"
grep -E "^#  compute|^\| B=" "$OUTDIR/trace.log" | head -12
