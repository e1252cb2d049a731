#!/usr/bin/env bash
# Session 30 (4 GPUs), last call: the shared ring with the one call pulled by heads (every block of our rows' call
# shared; --ring-share on) against the planner's layer (off), SFU-NVSHMEM on 1x4 at Flux S=65536 and 36864,
# alternately, 3 rounds; a watchdog of 30 s so that a hang ends the launch.
set -uo pipefail
cd "$(dirname "$0")/.."
. bench/sp/common.sh
sf_outdir /tmp/sf-s30e share.log "${1:-}"
export SF_WATCHDOG_TIMEOUT_S=30
sf_build_logged "s30 shared one call" streamfusion-gpu
SFG=$(sf_gpu_binary)
J=$OUTDIR/ab.jsonl; : > "$J"
run() { local arm=$1; echo "## $(date -u +%T) share=$arm" >> "$LOG"
  timeout 70 "$SFG" launch -n "$NGPU" --grace 5 -- "$SFG" gpu-attention -S 65536,36864 -H 24 -D 128 --topology 1x4 \
    --schemes sfu --no-single --no-concurrent -w 5 -n 20 --ring-share "$arm" --label "share=$arm" --json "$J" \
    >> "$LOG" 2>&1
  local rc=$?; echo "## rc=$rc" >> "$LOG"; return $rc; }
run on || { tail -30 "$LOG"; exit 1; }
for round in 1 2 3; do
  arms=(off on); [ "$round" = 2 ] && arms=(on off)
  for a in "${arms[@]}"; do run "$a"; done
done
grep -E "^## |^\| B=1|ring_share|match" "$LOG" | tail -40
python3 - "$J" <<'PY'
import json, statistics, sys
from collections import defaultdict
t = defaultdict(list); bad = 0
for l in open(sys.argv[1]):
    r = json.loads(l); bad += 0 if r.get("ok", True) else 1
    t[(r["seq"], r["label"])].append(r["ms"])
print("not ok:", bad)
for k in sorted(t): print(k, [round(x, 3) for x in t[k]], round(statistics.median(t[k]), 3))
for s in sorted({k[0] for k in t}):
    a, b = t.get((s, "share=off")), t.get((s, "share=on"))
    if a and b: print("S=%d: off/on = %.3f" % (s, statistics.median(a) / statistics.median(b)))
PY
