#!/usr/bin/env bash
# Session 28 (2 GPUs): the merge of partials in 16-byte accesses: its time in a trace of SFU on emulated 2x1 (Flux
# S=16384 and 36864, 50 GB/s, the local diagonal: one merge of 8192 / 18432 rows x 12 heads), then the gpu2 layer
# tests (the diagonal's merges checked against the one-GPU result, batch 1 and 2).
set -uo pipefail
cd "$(dirname "$0")/.."
. bench/sp/common.sh
sf_outdir /tmp/sf-s28m x2.log "${1:-}"
sf_build_logged "s28 merge" streamfusion-gpu sf_gpu_multi_test
SFG=$(sf_gpu_binary)
echo "## $(date -u +%T) trace" >> "$LOG"
timeout 120 "$SFG" launch -n "$NGPU" --grace 15 -- "$SFG" gpu-attention -S 16384,36864 -H 24 -D 128 --topology 2x1 \
  --gbps 50 --latency-us 5 --schemes sfu -w 10 -n 30 --no-single --no-concurrent --local-diagonal on --trace \
  > "$OUTDIR/trace.txt" 2>&1
echo "## rc=$?" >> "$LOG"
echo "## $(date -u +%T) ctest" >> "$LOG"
timeout 300 ctest --test-dir "$BUILD" -R "gpu${NGPU}_layers" --output-on-failure > "$OUTDIR/ctest.log" 2>&1
echo "## ctest rc=$? ($(grep -E 'tests passed|tests failed' "$OUTDIR/ctest.log")) $(date -u +%T)" >> "$LOG"
grep -E "^## " "$LOG"
grep -E "^\| B=1|merge_partials|all outputs" "$OUTDIR/trace.txt"
