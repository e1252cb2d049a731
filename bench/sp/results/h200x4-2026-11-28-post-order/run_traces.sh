#!/usr/bin/env bash
# Session 22, call 5 (4 GPUs, little time): why 2x2 at Flux S=16384 under sharing NICs (booked as posted) is slower
# with two side streams than posting one transfer at a time: one traced forward each.
set -uo pipefail
cd "$(dirname "$0")/.."
. bench/sp/common.sh
sf_outdir /tmp/sf-s22c5 call5.log "${1:-}"
sf_build_logged "s22 call5" streamfusion-gpu
SFG=$(sf_gpu_binary)
for pipe in on off; do
  SF_EMULATED_BOOKING=post SF_EMULATED_NIC=fair SF_NVSHMEM_PIPELINE=$pipe timeout 40 "$SFG" launch -n "$NGPU" --grace 5 \
    -- "$SFG" gpu-attention -S 16384 -H 24 -D 128 --topology 2x2 --gbps 50 --latency-us 5 --schemes sfu --trace \
    --no-single -w 2 -n 5 > "$OUTDIR/trace_pipeline_$pipe.log" 2>&1
  echo "## pipeline $pipe rc=$?" >> "$LOG"
done
grep -h "^| B=" "$OUTDIR"/trace_pipeline_*.log
