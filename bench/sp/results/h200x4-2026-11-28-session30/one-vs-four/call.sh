#!/usr/bin/env bash
# Session 30 (4 GPUs), fifth call: the SM clock of one busy GPU against four busy at once. The traced kernel
# (SF_CUDA_BLOCK_TRACE, three warpgroups forced) on Flux S=65536 (H=24, D=128, bf16, the whole layer per GPU) for
# 3 s: GPU 0 alone, then all four at once (one process per GPU), then GPU 0 alone again; the last call's blocks of
# each: clock, cycles per block (bench/sp/rank_clocks.py).
set -uo pipefail
cd "$(dirname "$0")/.."
. bench/sp/common.sh
sf_outdir /tmp/sf-s30d clocks.log "${1:-}"
sf_build_logged "s30 one vs four busy" sf_kernel_bench
KB=$(find "$BUILD" -name sf_kernel_bench -type f -perm -u+x | head -1)
BT=/tmp/sf-bt1; rm -rf "$BT"; mkdir -p "$BT"
export SF_CUDA_ATTENTION_PATH=hopper_ws3
one() { CUDA_VISIBLE_DEVICES=$1 SF_CUDA_BLOCK_TRACE=$2 timeout 60 "$KB" --heads 24 --dim 128 --seqs 65536 \
  --budget-ms 3000 >> "$LOG" 2>&1; }
echo "## $(date -u +%T) GPU 0 alone" >> "$LOG"; one 0 "$BT/alone_a.csv"
echo "## $(date -u +%T) four at once" >> "$LOG"
for g in 0 1 2 3; do one "$g" "$BT/four_$g.csv" & done; wait
echo "## $(date -u +%T) GPU 0 alone again" >> "$LOG"; one 0 "$BT/alone_b.csv"
echo "## $(date -u +%T) done" >> "$LOG"
grep -E "^## " "$LOG"
$PY bench/sp/rank_clocks.py "alone:$BT/alone_a.csv" "four:$BT/four_0.csv,$BT/four_1.csv,$BT/four_2.csv,$BT/four_3.csv" \
  "alone_again:$BT/alone_b.csv" | tee "$OUTDIR/one_vs_four.md"
