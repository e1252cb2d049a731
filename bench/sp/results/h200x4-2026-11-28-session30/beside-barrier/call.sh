#!/usr/bin/env bash
# Session 30 (4 GPUs), second call: the layer's first call beside the scatter's barrier (one SM left to it)
# against the tree before (beb9a94), emulated 2x2 and 4x1, SFU-NVSHMEM, 4 rounds; a short check first (a hang
# there stops the call); the gpu4 layer/exchange test at the end (tree_ab.sh).
set -uo pipefail
cd "$(dirname "$0")/.."
. bench/sp/common.sh
OUT30=${1:-/tmp/sf-s30b}
sf_outdir "$OUT30" check.log "$OUT30"
sf_build_logged "s30 beside barrier" streamfusion-gpu sf_gpu_multi_test
SFG=$(sf_gpu_binary)
timeout 90 "$SFG" launch -n "$NGPU" --grace 10 -- "$SFG" gpu-attention -S 16384 -H 24 -D 128 --topology 2x2,4x1 \
  --gbps 50 --latency-us 5 --schemes sfu --no-single --no-concurrent -w 2 -n 3 --trace > "$OUT30/check.txt" 2>&1
rc=$?; echo "## check rc=$rc" >> "$LOG"; grep -h "^| B=1" "$OUT30/check.txt"
[ "$rc" = 0 ] || { tail -40 "$OUT30/check.txt"; exit 1; }
SF_AB_BASE=devrun/ab_base SF_AB_ROUNDS=4 \
  SF_AB_RUNS="-S 16384 -H 24 -D 128 --topology 2x2,4x1 --gbps 50 --schemes sfu -w 10 -n 30 --no-single --no-concurrent;-S 36864 -H 24 -D 128 --topology 2x2,4x1 --gbps 50 --schemes sfu -w 5 -n 15 --no-single --no-concurrent;-S 81920 -H 48 -D 64 --topology 2x2,4x1 --gbps 50 --schemes sfu -w 1 -n 5 --no-single --no-concurrent" \
  bash bench/sp/tree_ab.sh "$OUT30/ab"
