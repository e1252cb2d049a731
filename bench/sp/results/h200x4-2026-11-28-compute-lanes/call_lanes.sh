#!/usr/bin/env bash
# Session 27 (4 GPUs): SFU on emulated 2x2 and 4x1 at 50 GB/s with the foreign rows' calls on a second compute lane
# (--compute-lanes 2) against one lane (1), 2 rounds in alternating order; then the gpu4 layer test (lanes variants).
set -uo pipefail
cd "$(dirname "$0")/.."
. bench/sp/common.sh
sf_outdir /tmp/sf-s27 x4.log "${1:-}"
sf_build_logged "s27 lanes" streamfusion-gpu sf_gpu_multi_test
SFG=$(sf_gpu_binary)
J=$OUTDIR/ab.jsonl
: > "$J"
run() {  # label lanes [priority]
  echo "## $(date -u +%T) $1" >> "$LOG"
  SF_LANE1_PRIORITY=${3:-higher} timeout 150 "$SFG" launch -n "$NGPU" --grace 15 -- "$SFG" gpu-attention -H 24 -D 128 -S 16384,36864 \
    --topology 2x2,4x1 --gbps 50 --latency-us 5 --schemes sfu -w 10 -n 30 --compute-lanes "$2" --no-single \
    --no-concurrent --label "$1" --json "$J" >> "$LOG" 2>&1
  echo "## rc=$?" >> "$LOG"
}
for round in 1 2; do
  order="1 2 3"; [ "$round" = 2 ] && order="3 2 1"
  for arm in $order; do
    case $arm in 1) run lanes=1 1 ;; 2) run lanes=2 2 higher ;; 3) run lanes=2same 2 same ;; esac
  done
done
echo "## $(date -u +%T) ctest gpu4 layers" >> "$LOG"
[ "${SKIP_CTEST:-}" ] || timeout 200 ctest --test-dir "$BUILD" -R "gpu${NGPU}_layers_and_exchange" --output-on-failure > "$OUTDIR/ctest.log" 2>&1
echo "## ctest rc=$? ($(grep -E 'tests passed|tests failed' "$OUTDIR/ctest.log")) $(date -u +%T)" >> "$LOG"
grep -E "^## |all outputs|mismatch|error" "$LOG"
grep -E "lanes 2" "$OUTDIR/ctest.log" | head -20
python3 - "$J" <<'PY'
import json, statistics, sys
from collections import defaultdict
t = defaultdict(list)
bad = 0
for l in open(sys.argv[1]):
    r = json.loads(l)
    bad += 0 if r.get("ok", True) else 1
    t[(r["seq"], r["topology"], r["name"], r["label"])].append((r["ms"], r.get("compute_lanes")))
print("not ok:", bad)
for key in sorted({k[:3] for k in t}):
    one = statistics.median(m for m, _ in t[key + ("lanes=1",)])
    out = [*key, "1:", [round(m, 3) for m, _ in t[key + ("lanes=1",)]]]
    for arm in ("lanes=2", "lanes=2same"):
        if t[key + (arm,)]:
            two = statistics.median(m for m, _ in t[key + (arm,)])
            out += [arm, [(round(m, 3), l) for m, l in t[key + (arm,)]], f"{two / one:.4f}"]
    print(*out)
PY
