#!/usr/bin/env bash
# Session 21, call 7 (4 GPUs, little time): SFU-NVSHMEM under three NIC models: lane booking + FIFO (default),
# post booking + fair sharing (the code's two posted transfers per lane on NICs that share), lane booking + fair.
set -uo pipefail
cd "$(dirname "$0")/.."
. bench/sp/common.sh
sf_outdir /tmp/sf-s21c7 call7.log "${1:-}"
sf_build_logged "s21 call7" streamfusion-gpu
SFG=$(sf_gpu_binary)
for cfg in "lane fifo" "post fair" "lane fair"; do
  read -r booking nic <<< "$cfg"
  SF_EMULATED_BOOKING=$booking SF_EMULATED_NIC=$nic timeout 40 "$SFG" launch -n "$NGPU" --grace 5 -- "$SFG" \
    gpu-attention -S 16384,36864 -H 24 -D 128 --topology 4x1,2x2 --gbps 50 --latency-us 5 --schemes sfu \
    --no-single --no-concurrent -w 3 -n 9 --label "nic=$booking+$nic" --json "$OUTDIR/nic.jsonl" >> "$LOG" 2>&1
  echo "## $booking+$nic rc=$?" >> "$LOG"
done
grep -E "^\| B=|^## |gpu-attention on" "$LOG" | cut -c1-160
