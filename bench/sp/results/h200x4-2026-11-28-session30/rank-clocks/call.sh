#!/usr/bin/env bash
# Session 30 (4 GPUs), fourth call: is the slowest GPU slower by its clock or by its cycles? Block traces of every
# rank's last attention call (SF_CUDA_BLOCK_TRACE per rank; the traced three-warpgroup kernel, forced), SFU-NVSHMEM
# on 1x4 (one call per rank) at Flux S=65536 and 16384, three launches each, and on emulated 2x2 at 50 GB/s
# (S=16384, 36864); bench/sp/rank_clocks.py per rank: span, SM clock of its blocks, cycles per block.
set -uo pipefail
cd "$(dirname "$0")/.."
. bench/sp/common.sh
sf_outdir /tmp/sf-s30c clocks.log "${1:-}"
sf_build_logged "s30 rank clocks" streamfusion-gpu
SFG=$(sf_gpu_binary)
BT=/tmp/sf-bt; rm -rf "$BT"; mkdir -p "$BT"
export SF_CUDA_ATTENTION_PATH=hopper_ws3
ARGS=()
run() { local tag=$1; shift; echo "## $(date -u +%T) $tag: $*" >> "$LOG"
  # shellcheck disable=SC2016  # $RANK and $0/$@ expand in each rank's shell
  timeout 150 "$SFG" launch -n "$NGPU" --grace 10 -- bash -c 'SF_CUDA_BLOCK_TRACE='"$BT/$tag"'_$RANK.csv exec "$0" "$@"' \
    "$SFG" gpu-attention -H 24 -D 128 --schemes sfu --no-single --no-concurrent --latency-us 5 "$@" >> "$LOG" 2>&1
  echo "## rc=$?" >> "$LOG"
  ARGS+=("$tag:$BT/${tag}_0.csv,$BT/${tag}_1.csv,$BT/${tag}_2.csv,$BT/${tag}_3.csv"); }
for rep in 1 2 3; do
  run "1x4_S65536_$rep" -S 65536 --topology 1x4 -w 2 -n 3
  run "1x4_S16384_$rep" -S 16384 --topology 1x4 -w 5 -n 10
done
run "2x2at50_S16384" -S 16384 --topology 2x2 --gbps 50 -w 5 -n 10
run "2x2at50_S36864" -S 36864 --topology 2x2 --gbps 50 -w 3 -n 5
grep -E "^## |^\| B=1" "$LOG" | tail -40
$PY bench/sp/rank_clocks.py "${ARGS[@]}" | tee "$OUTDIR/rank_clocks.md"
