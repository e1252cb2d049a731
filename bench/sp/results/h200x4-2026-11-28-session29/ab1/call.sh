#!/usr/bin/env bash
# Session 29 (4 GPUs), one call: the local diagonal by head blocks (default on two machines with a ring inside)
# against by home blocks (--ring-heads-per-step 0, the old schedule) on emulated 2x2, SFU-NVSHMEM, alternately;
# a trace of the new schedule at Flux S=16384 50 GB/s; the gpu4 layer/exchange test.
set -uo pipefail
cd "$(dirname "$0")/.."
. bench/sp/common.sh
sf_outdir /tmp/sf-s29 ab.log "${1:-}"
sf_build_logged "s29 diagonal by head blocks" streamfusion-gpu sf_gpu_multi_test
SFG=$(sf_gpu_binary)
J=$OUTDIR/ab.jsonl; : > "$J"
run() { local label=$1; shift; echo "## $(date -u +%T) $label: $*" >> "$LOG"
  timeout 150 "$SFG" launch -n "$NGPU" --grace 15 -- "$SFG" gpu-attention "$@" --topology 2x2 --latency-us 5 \
    --schemes sfu --no-single --no-concurrent --label "$label" --json "$J" >> "$LOG" 2>&1; echo "## rc=$?" >> "$LOG"; }
sf_start_clock_log "$OUTDIR/clocks.csv"
for round in 1 2 3; do
  for v in blocks homes; do
    [ "$round" = 2 ] && { [ "$v" = blocks ] && v=homes || v=blocks; }
    extra=(); [ "$v" = homes ] && extra=(--ring-heads-per-step 0)
    run "$v" -S 16384 -H 24 -D 128 --gbps 50,6.25 -w 10 -n 30 "${extra[@]}"
    [ "$round" = 3 ] && continue
    run "$v" -S 36864 -H 24 -D 128 --gbps 6.25 -w 5 -n 15 "${extra[@]}"
    run "$v" -S 81920 -H 48 -D 64 --gbps 6.25 -w 1 -n 5 "${extra[@]}"
  done
done
echo "## $(date -u +%T) trace" >> "$LOG"
timeout 120 "$SFG" launch -n "$NGPU" --grace 15 -- "$SFG" gpu-attention -S 16384 -H 24 -D 128 --topology 2x2 \
  --gbps 50 --latency-us 5 --schemes sfu --no-concurrent --trace -w 10 -n 30 > "$OUTDIR/trace16.txt" 2>&1
echo "## rc=$?" >> "$LOG"
sf_stop_clock_log
echo "## $(date -u +%T) ctest gpu4 layers" >> "$LOG"
timeout 240 ctest --test-dir "$BUILD" -R "gpu${NGPU}_layers_and_exchange" --output-on-failure > "$OUTDIR/ctest.log" 2>&1
echo "## ctest rc=$? ($(grep -E 'tests passed|tests failed' "$OUTDIR/ctest.log")) $(date -u +%T)" >> "$LOG"
$PY bench/sp/clock_summary.py "$OUTDIR/clocks.csv" > "$OUTDIR/clocks.md" 2>> "$LOG"
grep -E "^## |^# s29" "$LOG" | tail -40
python3 - "$J" <<'PY'
import json, statistics, sys
from collections import defaultdict
t = defaultdict(list); bad = 0
for l in open(sys.argv[1]):
    r = json.loads(l); bad += 0 if r.get("ok", True) else 1
    t[(r["seq"], r["inter_gbps"], r["label"])].append(r["ms"])
print("not ok:", bad)
for k in sorted(t): print(k, [round(x, 3) for x in t[k]], round(statistics.median(t[k]), 3))
keys = sorted({k[:2] for k in t})
for k in keys:
    b, h = t.get(k + ("blocks",)), t.get(k + ("homes",))
    if b and h: print("S=%d %.2f GB/s: homes/blocks = %.3f" % (k[0], k[1], statistics.median(h) / statistics.median(b)))
PY
grep -h "^| B=1" "$OUTDIR/trace16.txt"
grep -E "FAIL|FATAL" "$OUTDIR/ctest.log" | head -5
