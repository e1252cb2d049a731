#!/usr/bin/env bash
# Session 30 (4 GPUs), one call: the local diagonal on against the planner's choice (off) on the compute-bound
# emulated cells at 50 GB/s (2x2 and 4x1): Flux S=36864 and 65536, CogVideoX S=81920; SFU-NVSHMEM, alternately,
# 3 rounds (the arms' order flips each round).
set -uo pipefail
cd "$(dirname "$0")/.."
. bench/sp/common.sh
sf_outdir /tmp/sf-s30a ab.log "${1:-}"
sf_build_logged "s30 diagonal at 50 GB/s" streamfusion-gpu
SFG=$(sf_gpu_binary)
J=$OUTDIR/ab.jsonl; : > "$J"
run() { local label=$1; shift; echo "## $(date -u +%T) $label: $*" >> "$LOG"
  timeout 200 "$SFG" launch -n "$NGPU" --grace 15 -- "$SFG" gpu-attention "$@" --topology 2x2,4x1 --gbps 50 \
    --latency-us 5 --schemes sfu --no-single --no-concurrent --label "diag=$label" --json "$J" >> "$LOG" 2>&1
  echo "## rc=$?" >> "$LOG"; }
sf_start_clock_log "$OUTDIR/clocks.csv"
for round in 1 2 3; do
  arms=(auto on); [ "$round" = 2 ] && arms=(on auto)
  for v in "${arms[@]}"; do
    run "$v" -S 36864 -H 24 -D 128 -w 5 -n 15 --local-diagonal "$v"
    run "$v" -S 81920 -H 48 -D 64 -w 1 -n 5 --local-diagonal "$v"
    run "$v" -S 65536 -H 24 -D 128 -w 2 -n 8 --local-diagonal "$v"
  done
done
sf_stop_clock_log
$PY bench/sp/clock_summary.py "$OUTDIR/clocks.csv" > "$OUTDIR/clocks.md" 2>> "$LOG"
grep -E "^## " "$LOG" | tail -40
python3 - "$J" <<'PY'
import json, statistics, sys
from collections import defaultdict
t = defaultdict(list); bad = 0
for l in open(sys.argv[1]):
    r = json.loads(l); bad += 0 if r.get("ok", True) else 1
    t[(r["seq"], r["topology"], r["label"])].append(r["ms"])
print("not ok:", bad)
for k in sorted(t): print(k, [round(x, 3) for x in t[k]], round(statistics.median(t[k]), 3))
for k in sorted({k[:2] for k in t}):
    a, o = t.get(k + ("diag=auto",)), t.get(k + ("diag=on",))
    if a and o: print("S=%d %s: on/auto = %.3f" % (k[0], k[1], statistics.median(o) / statistics.median(a)))
PY
