#!/usr/bin/env bash
# One GPU call (4 GPUs): the kernel's tail split (src/backends/cuda/tail_split.h) on and off, alternately, on
# the same machine: gpu-attention for the given shapes and topologies, SF_CUDA_SPLIT_TAIL=0 then auto, twice,
# then a table of the medians (split_ab.py). The one-GPU baseline is timed in each run with the same setting.
#   bench/sp/split_ab.sh [OUTDIR]   env: SF_AB_SEQ (default 36864,65536), SF_AB_TOPOLOGIES (default 1x4,4x1),
#                                   SF_AB_SCHEMES (default usp,sfu,ulysses), SF_AB_ROUNDS (default 2)
set -uo pipefail
cd "$(dirname "$0")/../.."
. bench/sp/common.sh
sf_outdir /tmp/sf-split-ab split_ab.log "${1:-}"
sf_build_logged "split A/B" streamfusion-gpu
SFG=$(sf_gpu_binary)
: > "$OUTDIR/ab.jsonl"
for round in $(seq 1 "${SF_AB_ROUNDS:-2}"); do
  for split in 0 auto; do
    echo "## $(date -u +%T) round $round, SF_CUDA_SPLIT_TAIL=$split" >> "$LOG"
    SF_CUDA_SPLIT_TAIL=$split timeout 200 "$SFG" launch -n "$NGPU" --grace 15 -- "$SFG" gpu-attention \
      -S "${SF_AB_SEQ:-36864,65536}" -H 24 -D 128 --topology "${SF_AB_TOPOLOGIES:-1x4,4x1}" --gbps 50 \
      --latency-us 5 --schemes "${SF_AB_SCHEMES:-usp,sfu,ulysses}" -w 3 -n 9 --label "split=$split" \
      --json "$OUTDIR/ab.jsonl" >> "$LOG" 2>&1
    echo "## rc=$?" >> "$LOG"
  done
done
$PY bench/sp/split_ab.py "$OUTDIR/ab.jsonl" "$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1) x$NGPU" \
  | tee "$OUTDIR/SPLIT_AB.md"
