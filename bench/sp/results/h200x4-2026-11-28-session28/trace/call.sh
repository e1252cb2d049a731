#!/usr/bin/env bash
# Session 28 (4 GPUs): traces of SFU-NVSHMEM on the cells that miss the 10 % target (emulated 2x2 and 4x1 at
# 50 GB/s): Flux S=36864 and 16384, CogVideoX S=81920, with the clocks logged.
set -uo pipefail
cd "$(dirname "$0")/.."
. bench/sp/common.sh
sf_outdir /tmp/sf-s28t trace.log "${1:-}"
sf_build_logged "s28 trace" streamfusion-gpu
SFG=$(sf_gpu_binary)
run() { local name=$1; shift; echo "## $(date -u +%T) $name: $*" >> "$LOG";
  timeout 150 "$SFG" launch -n "$NGPU" --grace 15 -- "$SFG" gpu-attention "$@" --schemes sfu --no-concurrent --trace \
    --json "$OUTDIR/trace.jsonl" > "$OUTDIR/$name.txt" 2>&1; echo "## rc=$?" >> "$LOG"; }
sf_start_clock_log "$OUTDIR/clocks.csv"
run f36 -S 36864 -H 24 -D 128 --topology 1x4,2x2,4x1 --gbps 50 --latency-us 5 -w 5 -n 15
run f16 -S 16384 -H 24 -D 128 --topology 2x2,4x1 --gbps 50 --latency-us 5 -w 10 -n 30
run c82 -S 81920 -H 48 -D 64 --topology 2x2 --gbps 50 --latency-us 5 -w 3 -n 8
sf_stop_clock_log
$PY bench/sp/clock_summary.py "$OUTDIR/clocks.csv" >> "$LOG" 2>&1
grep -h "^| B=1" "$OUTDIR"/*.txt
