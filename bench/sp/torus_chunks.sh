#!/usr/bin/env bash
# One GPU call (4 GPUs): how finely to cut each Torus transfer. Times USP, SFU-NCCL (torus) and SFU-NVSHMEM
# with --torus-chunks 1 (the paper's one chunk per stage), 0 (automatic) and 4, same run, same shapes, on
# emulated 2x2 and 4x1 at 50 and 6.25 GB/s, then prints a table (bench/sp/torus_chunks_report.py). The local
# diagonal (whole Torus blocks) stays off throughout, so that only the segmentation differs.
#   bench/sp/torus_chunks.sh [OUTDIR]
set -uo pipefail
cd "$(dirname "$0")/../.."
. bench/sp/common.sh
sf_outdir /tmp/sf-chunks-out chunks.log "${1:-}"
sf_build_logged "torus chunks" streamfusion-gpu
SFG=$(sf_gpu_binary)
J=$OUTDIR/chunks.jsonl
rm -f "$J"
for c in 1 0 4; do
  timeout 150 "$SFG" launch -n "$NGPU" --grace 15 -- "$SFG" gpu-attention -S 16384,65536 -H 24 -D 128 \
    --topology 2x2,4x1 --gbps 50,6.25 --latency-us 5 --schemes usp,torus,sfu --torus-chunks $c --local-diagonal off --no-single \
    -w 2 -n 5 --json "$J" --label "flux chunks=$c" >> "$LOG" 2>&1
  timeout 150 "$SFG" launch -n "$NGPU" --grace 15 -- "$SFG" gpu-attention -S 81920 -H 48 -D 64 \
    --topology 2x2,4x1 --gbps 50,6.25 --latency-us 5 --schemes usp,torus,sfu --torus-chunks $c --local-diagonal off --no-single \
    -w 1 -n 3 --json "$J" --label "cogvideox chunks=$c" >> "$LOG" 2>&1
done
$PY bench/sp/torus_chunks_report.py "$J" "$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1) x$NGPU" \
  | tee "$OUTDIR/TORUS_CHUNKS.md"
