#!/usr/bin/env bash
# Session 23, call 3 (4 GPUs): the probe's last questions (does a held stream hold others' copies; do host copies and
# memsets count), then host work on a stream of its own against on the compute stream (SF_HOST_WORK_STREAM), 3 rounds,
# and one trace each of 4x1 at Flux S=16384.
set -uo pipefail
cd "$(dirname "$0")/.."
. bench/sp/common.sh
sf_outdir /tmp/sf-s23c3 call3.log "${1:-}"
nvcc -O2 -std=c++17 -o /tmp/stream_queue_probe bench/sp/stream_queue_probe.cu -lcuda > "$OUTDIR/probe_build.log" 2>&1 &
PROBE_BUILD=$!
sf_build_logged "s23 call3" streamfusion-gpu
wait $PROBE_BUILD
{
  for args in "--op hold" "--op hold --warm 1" "--op event --warm h2d" "--op event --warm memset"; do
    timeout 60 /tmp/stream_queue_probe $args
    echo
  done
} > "$OUTDIR/probe.md" 2>&1
echo "## probe done $(date -u +%T)" >> "$LOG"
SFG=$(sf_gpu_binary)
CARD="$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1) x$NGPU"
for round in 1 2 3; do
  for w in compute own; do
    label="SF_HOST_WORK_STREAM=$w"
    SF_HOST_WORK_STREAM=$w timeout 60 "$SFG" launch -n "$NGPU" --grace 5 -- "$SFG" gpu-attention -S 16384 -H 24 -D 128 \
      --topology 1x4,2x2,4x1 --gbps 50 --latency-us 5 --schemes sfu --no-single --no-concurrent -w 3 -n 9 \
      --label "$label" --json "$OUTDIR/ab.jsonl" >> "$LOG" 2>&1
    echo "## $(date -u +%T) 16384 $label rc=$?" >> "$LOG"
    SF_HOST_WORK_STREAM=$w timeout 60 "$SFG" launch -n "$NGPU" --grace 5 -- "$SFG" gpu-attention -S 36864 -H 24 -D 128 \
      --topology 2x2,4x1 --gbps 50 --latency-us 5 --schemes sfu --no-single --no-concurrent -w 3 -n 9 \
      --label "$label" --json "$OUTDIR/ab.jsonl" >> "$LOG" 2>&1
    echo "## $(date -u +%T) 36864 $label rc=$?" >> "$LOG"
  done
done
$PY bench/sp/split_ab.py "$OUTDIR/ab.jsonl" "$CARD" > "$OUTDIR/AB_host_work.md" 2>&1
for w in compute own; do
  SF_HOST_WORK_STREAM=$w timeout 40 "$SFG" launch -n "$NGPU" --grace 5 -- "$SFG" gpu-attention -S 16384 -H 24 -D 128 \
    --topology 4x1 --gbps 50 --latency-us 5 --schemes sfu --trace --no-single -w 2 -n 5 > "$OUTDIR/trace_$w.log" 2>&1
  echo "## trace $w rc=$?" >> "$LOG"
done
cat "$OUTDIR/AB_host_work.md"
grep -E "^## " "$LOG" | tail -4
