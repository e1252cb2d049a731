#!/usr/bin/env bash
# Session 27 (4 GPUs): traces of SFU-NVSHMEM at Flux S=16384 on emulated 4x1 and 2x2 at 50 GB/s with SF_CUDA_COMM_SMS
# 0 and 1 (one SM left free by every call): where 4x1 gains 4 % with the free SM, and what stalls 2x2 with it.
set -uo pipefail
cd "$(dirname "$0")/.."
. bench/sp/common.sh
sf_outdir /tmp/sf-s27t trace.log "${1:-}"
sf_build_logged "s27 trace comm sms" streamfusion-gpu
SFG=$(sf_gpu_binary)
for sms in 0 1 0 1; do
  echo "## $(date -u +%T) SF_CUDA_COMM_SMS=$sms" >> "$LOG"
  SF_CUDA_COMM_SMS=$sms timeout 150 "$SFG" launch -n "$NGPU" --grace 15 -- "$SFG" gpu-attention -H 24 -D 128 -S 16384 \
    --topology 4x1,2x2 --gbps 50 --latency-us 5 --schemes sfu -w 10 -n 30 --no-single --no-concurrent --trace \
    --label "sms=$sms" --json "$OUTDIR/trace.jsonl" > "$OUTDIR/trace_sms$sms.$(date +%s).txt" 2>&1
  echo "## rc=$?" >> "$LOG"
done
python3 - "$OUTDIR/trace.jsonl" <<'PY'
import json, sys
for l in open(sys.argv[1]):
    r = json.loads(l)
    print(r["label"], r["topology"], round(r["ms"], 3), r["ok"])
PY
