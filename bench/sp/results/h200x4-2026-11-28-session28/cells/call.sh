#!/usr/bin/env bash
# Session 28 (4 GPUs, warm machine): the 10 % target's missed cells again with this tree: USP and SFU on emulated
# 2x2 and 4x1 at 50 GB/s, Flux S=16384 and 36864 (10 warm-ups, 30 forwards) and CogVideoX S=81920 on 2x2 (1, 5),
# each with its one-GPU layer and all-4-busy share, as run.sh times them.
set -uo pipefail
cd "$(dirname "$0")/.."
. bench/sp/common.sh
sf_outdir /tmp/sf-s28c cells.log "${1:-}"
sf_build_logged "s28 cells" streamfusion-gpu
SFG=$(sf_gpu_binary)
J=$OUTDIR/cells.jsonl; : > "$J"
echo "## $(date -u +%T) flux" >> "$LOG"
timeout 200 "$SFG" launch -n "$NGPU" --grace 15 -- "$SFG" gpu-attention -S 16384,36864 -H 24 -D 128 --topology 2x2,4x1 \
  --gbps 50 --latency-us 5 --schemes usp,sfu -w 10 -n 30 --label flux --json "$J" >> "$LOG" 2>&1
echo "## rc=$? $(date -u +%T) cogvideox" >> "$LOG"
timeout 200 "$SFG" launch -n "$NGPU" --grace 15 -- "$SFG" gpu-attention -S 81920 -H 48 -D 64 --topology 2x2 \
  --gbps 50 --latency-us 5 --schemes usp,sfu -w 1 -n 5 --label cogvideox --json "$J" >> "$LOG" 2>&1
echo "## rc=$? $(date -u +%T)" >> "$LOG"
grep -E "^## |^\| B=|all outputs" "$LOG"
