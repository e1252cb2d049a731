#!/usr/bin/env bash
# Session 29 (4 GPUs), second call: the local diagonal on emulated 2x2 (Flux S=16384, 50 GB/s, SFU-NVSHMEM) by home
# blocks (--ring-heads-per-step 0) and by head blocks with the ring peers' blocks of the first head block pulled in
# steps of 2 (the planner's), 4 and 12 heads (12: the whole block, one flag), traced back to back, then 4 rounds.
set -uo pipefail
cd "$(dirname "$0")/.."
. bench/sp/common.sh
sf_outdir /tmp/sf-s29b ab.log "${1:-}"
sf_build_logged "s29 diagonal steps" streamfusion-gpu
SFG=$(sf_gpu_binary)
J=$OUTDIR/ab.jsonl; : > "$J"
run() { local step=$1; shift; echo "## $(date -u +%T) step $step $*" >> "$LOG"
  timeout 100 "$SFG" launch -n "$NGPU" --grace 15 -- "$SFG" gpu-attention -S 16384 -H 24 -D 128 --topology 2x2 \
    --gbps 50 --latency-us 5 --schemes sfu --no-single --no-concurrent -w 10 -n 30 --ring-heads-per-step "$step" \
    --label "step=$step" "$@" >> "$LOG" 2>&1; echo "## rc=$?" >> "$LOG"; }
sf_start_clock_log "$OUTDIR/clocks.csv"
for step in 0 2 4 12; do
  timeout 100 "$SFG" launch -n "$NGPU" --grace 15 -- "$SFG" gpu-attention -S 16384 -H 24 -D 128 --topology 2x2 \
    --gbps 50 --latency-us 5 --schemes sfu --no-single --no-concurrent -w 10 -n 30 --ring-heads-per-step "$step" \
    --trace > "$OUTDIR/trace_step$step.txt" 2>&1
done
for round in 1 2 3 4; do
  order="0 2 4 12"; [ $((round % 2)) = 0 ] && order="12 4 2 0"
  for step in $order; do run "$step" --json "$J"; done
done
sf_stop_clock_log
$PY bench/sp/clock_summary.py "$OUTDIR/clocks.csv" > "$OUTDIR/clocks.md" 2>> "$LOG"
python3 - "$J" <<'PY'
import json, statistics, sys
from collections import defaultdict
t = defaultdict(list); bad = 0
for l in open(sys.argv[1]):
    r = json.loads(l); bad += 0 if r.get("ok", True) else 1
    t[r["label"]].append(r["ms"])
print("not ok:", bad)
for k in sorted(t): print(k, [round(x, 3) for x in t[k]], "median %.3f" % statistics.median(t[k]))
PY
for s in 0 2 4 12; do echo "== step $s"; grep -h "^| B=1" "$OUTDIR/trace_step$s.txt"
  grep -E "attention q|merge_partials|span" "$OUTDIR/trace_step$s.txt" | awk '{print $2, $4, $6, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20}' | head -24; done
