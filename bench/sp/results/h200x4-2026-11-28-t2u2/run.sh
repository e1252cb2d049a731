#!/usr/bin/env bash
# Session 21, call 6 (4 GPUs): Torus across machines with Ulysses inside (T2U2, one-sided) against SFU's T2R2 on
# emulated 2x2, Flux S=16384 and 36864 at 50 GB/s; two rounds.
set -uo pipefail
cd "$(dirname "$0")/.."
. bench/sp/common.sh
sf_outdir /tmp/sf-s21c6 call6.log "${1:-}"
sf_build_logged "s21 call6" streamfusion-gpu
SFG=$(sf_gpu_binary)
for round in 1 2; do
  timeout 60 "$SFG" launch -n "$NGPU" --grace 10 -- "$SFG" gpu-attention -S 16384,36864 -H 24 -D 128 --topology 2x2 \
    --gbps 50 --latency-us 5 --schemes sfu --custom-meshes T2U2 --transports one-sided --no-single --no-concurrent \
    -w 5 -n 15 --json "$OUTDIR/t2u2.jsonl" --label "round=$round" >> "$LOG" 2>&1
  echo "## round $round rc=$?" >> "$LOG"
done
grep -E "^\| B=|^## " "$LOG"
