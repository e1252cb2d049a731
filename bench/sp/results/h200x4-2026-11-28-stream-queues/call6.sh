#!/usr/bin/env bash
# Session 23, call 6 (4 GPUs): why host work on a stream of its own made Flux S=16384 on 2x2 slower: one trace per
# arm, then the A/B again on that cell alone (3 rounds).
set -uo pipefail
cd "$(dirname "$0")/.."
. bench/sp/common.sh
sf_outdir /tmp/sf-s23c6 call6.log "${1:-}"
sf_build_logged "s23 call6" streamfusion-gpu
SFG=$(sf_gpu_binary)
CARD="$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1) x$NGPU"
for w in compute own; do
  SF_HOST_WORK_STREAM=$w timeout 40 "$SFG" launch -n "$NGPU" --grace 5 -- "$SFG" gpu-attention -S 16384 -H 24 -D 128 \
    --topology 2x2 --gbps 50 --latency-us 5 --schemes sfu --trace --no-single -w 2 -n 5 > "$OUTDIR/trace2x2_$w.log" 2>&1
  echo "## trace $w rc=$?" >> "$LOG"
done
for round in 1 2 3; do
  for w in own compute; do
    SF_HOST_WORK_STREAM=$w timeout 60 "$SFG" launch -n "$NGPU" --grace 5 -- "$SFG" gpu-attention -S 16384 -H 24 -D 128 \
      --topology 2x2 --gbps 50 --latency-us 5 --schemes sfu --no-single --no-concurrent -w 3 -n 9 \
      --label "SF_HOST_WORK_STREAM=$w" --json "$OUTDIR/ab2x2.jsonl" >> "$LOG" 2>&1
    echo "## $(date -u +%T) $w rc=$?" >> "$LOG"
  done
done
$PY bench/sp/split_ab.py "$OUTDIR/ab2x2.jsonl" "$CARD" > "$OUTDIR/AB_2x2.md" 2>&1
cat "$OUTDIR/AB_2x2.md"; grep -h "^| B=" "$OUTDIR"/trace2x2_*.log
