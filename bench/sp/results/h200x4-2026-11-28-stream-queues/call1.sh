#!/usr/bin/env bash
# Session 23, call 1: what holds a side stream's first post on 2x2 under sharing NICs (trace with the post points
# of 6b3d6bc), and whether our streams share hardware queues with each other's copies (stream_queue_probe).
set -uo pipefail
cd "$(dirname "$0")/.."
. bench/sp/common.sh
sf_outdir /tmp/sf-s23c1 call1.log "${1:-}"
( nvcc -O2 -std=c++17 -o /tmp/stream_queue_probe bench/sp/stream_queue_probe.cu -lcuda &&
  /tmp/stream_queue_probe 3 25 > "$OUTDIR/probe.md" 2>&1 ) &
PROBE_BUILD=$!
sf_build_logged "s23 call1" streamfusion-gpu
wait $PROBE_BUILD
SFG=$(sf_gpu_binary)
for pipe in on off; do
  SF_EMULATED_BOOKING=post SF_EMULATED_NIC=fair SF_NVSHMEM_PIPELINE=$pipe timeout 40 "$SFG" launch -n "$NGPU" --grace 5 \
    -- "$SFG" gpu-attention -S 16384 -H 24 -D 128 --topology 2x2 --gbps 50 --latency-us 5 --schemes sfu --trace \
    --no-single -w 2 -n 5 > "$OUTDIR/trace_pipeline_$pipe.log" 2>&1
  echo "## pipeline $pipe rc=$?" >> "$LOG"
done
# The probe again with the GPUs idle (it ran beside the build above)
/tmp/stream_queue_probe 3 25 > "$OUTDIR/probe_idle.md" 2>&1
/tmp/stream_queue_probe 1 100 > "$OUTDIR/probe_idle_1x100.md" 2>&1
grep -h "^| B=" "$OUTDIR"/trace_pipeline_*.log
grep -c yes "$OUTDIR"/probe*.md
