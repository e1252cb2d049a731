#!/usr/bin/env bash
# Session 21, call 1 (4 GPUs): kernel tests on the tree (last two commits were compiled only), A/B of where the
# emulated links book a side-stream transfer (SF_EMULATED_BOOKING=lane: old, post: new), a trace, layer tests.
set -uo pipefail
cd "$(dirname "$0")/.."
. bench/sp/common.sh
sf_outdir /tmp/sf-s21c1 call1.log "${1:-}"
T0=$(date +%s)
sf_build_logged "s21 call1" streamfusion-gpu sf_gpu_multi_test sf_gpu_kernel_tests
echo "# built in $(( $(date +%s) - T0 )) s" >> "$LOG"
SFG=$(sf_gpu_binary)
KT=$(find "$BUILD" -name sf_gpu_kernel_tests -type f -perm -u+x | head -1)
timeout 120 "$KT" > "$OUTDIR/kernel_tests.log" 2>&1
echo "## $(date -u +%T) kernel tests rc=$? $(grep -E '^\[  (PASSED|FAILED)' "$OUTDIR/kernel_tests.log" | tr '\n' ' ')" >> "$LOG"
: > "$OUTDIR/ab.jsonl"
for round in 1 2; do
  for v in lane post; do
    echo "## $(date -u +%T) round $round SF_EMULATED_BOOKING=$v" >> "$LOG"
    SF_EMULATED_BOOKING=$v timeout 120 "$SFG" launch -n "$NGPU" --grace 15 -- "$SFG" gpu-attention -S 16384,36864 \
      -H 24 -D 128 --topology 4x1,2x2 --gbps 50,6.25 --latency-us 5 --schemes sfu -w 3 -n 9 \
      --label "SF_EMULATED_BOOKING=$v" --json "$OUTDIR/ab.jsonl" >> "$LOG" 2>&1
    echo "## rc=$?" >> "$LOG"
  done
done
$PY bench/sp/split_ab.py "$OUTDIR/ab.jsonl" "$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1) x$NGPU" \
  > "$OUTDIR/AB.md" 2>&1
echo "## $(date -u +%T) trace" >> "$LOG"
timeout 60 "$SFG" launch -n "$NGPU" --grace 10 -- "$SFG" gpu-attention -S 16384 -H 24 -D 128 --topology 4x1 \
  --gbps 50 --latency-us 5 --schemes sfu --trace --no-single -w 2 -n 5 > "$OUTDIR/trace.log" 2>&1
echo "## rc=$?" >> "$LOG"
timeout 240 ctest --test-dir "$BUILD" -R "gpu4_layers|gpu4_fault_reported_link|gpu4_emulated_links" \
  --output-on-failure > "$OUTDIR/ctest.log" 2>&1
echo "## $(date -u +%T) ctest rc=$? ($(grep -E 'tests passed|tests failed' "$OUTDIR/ctest.log"))" >> "$LOG"
grep -E "^## |^# built" "$LOG"
cat "$OUTDIR/AB.md"
grep -E "^#  compute|^\| B=" "$OUTDIR/trace.log" | head -12
