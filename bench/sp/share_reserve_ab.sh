#!/usr/bin/env bash
# One GPU call (4 GPUs): the shared ring (--ring-share on) with helpers admitted later into the owner's last round
# (SF_CUDA_SHARE_RESERVE, percent of the owner's thread blocks left to it; shared_work.h) against the planner's
# layer (off), SFU-NVSHMEM on 1x4 at Flux S=65536 and 36864, arms in rotating order, 3 rounds, every timing after
# 1 s of its own load. Each run prints how many blocks helpers took from each rank in its last forward.
#   bench/sp/share_reserve_ab.sh [OUTDIR]     env: SF_ARMS (default "off r100 r25 r0"): off, or rP for a reserve of P %,
#                                             rP@W:N also with the tail in W:N (SF_CUDA_SHARE_TAIL; default 1:4)
set -uo pipefail
cd "$(dirname "$0")/../.."
. bench/sp/common.sh
sf_outdir /tmp/sf-share-reserve share.log "${1:-}"
export SF_WATCHDOG_TIMEOUT_S=30
sf_build_logged "share reserve A/B" streamfusion-gpu
SFG=$(sf_gpu_binary)
J=$OUTDIR/ab.jsonl; : > "$J"
read -r -a ARMS <<< "${SF_ARMS:-off r100 r25 r0}"
run() {
  local arm=$1 share=on pct=100 tail=1:4
  if [ "$arm" = off ]; then share=off; else pct=${arm%%@*}; pct=${pct#r}; [[ $arm == *@* ]] && tail=${arm#*@}; fi
  echo "## $(date -u +%T) $arm" >> "$LOG"
  SF_CUDA_SHARE_RESERVE=$pct SF_CUDA_SHARE_TAIL=$tail timeout 90 "$SFG" launch -n "$NGPU" --grace 5 -- \
    "$SFG" gpu-attention -S 65536,36864 -H 24 -D 128 --topology 1x4 --schemes sfu --no-single --no-concurrent \
    -w 5 -n 20 --sustain-s 1 --ring-share "$share" --label "$arm" --json "$J" >> "$LOG" 2>&1
  echo "## rc=$?" >> "$LOG"
}
for round in 0 1 2; do
  for i in "${!ARMS[@]}"; do run "${ARMS[$(((i + round) % ${#ARMS[@]}))]}"; done
done
grep -E "^## |ring_share|not match|error" "$LOG" | tail -60
$PY - "$J" <<'PY'
import json, statistics, sys
from collections import defaultdict
t = defaultdict(list); bad = 0
for l in open(sys.argv[1]):
    r = json.loads(l); bad += 0 if r.get("ok", True) else 1
    t[(r["seq"], r["label"])].append(r["ms"])
print("not ok:", bad)
for k in sorted(t): print(k, [round(x, 3) for x in t[k]], "median", round(statistics.median(t[k]), 3))
for s in sorted({k[0] for k in t}):
    base = t.get((s, "off"))
    for k in sorted(t):
        if k[0] == s and base: print("S=%d %s: off/arm = %.3f" % (s, k[1], statistics.median(base) / statistics.median(t[k])))
PY
