#!/usr/bin/env bash
# Session 26 (4 GPUs): SFU-NVSHMEM on emulated 2x2 at 50 GB/s, home K/V pulled by heads beside the Torus stages
# (--ring-heads-per-step 2 at D=128, 4 at D=64) against whole blocks (0), 2 rounds in alternating order; then the gpu4
# layer test (the new variant).
set -uo pipefail
cd "$(dirname "$0")/.."
. bench/sp/common.sh
sf_outdir /tmp/sf-s26d x4d.log "${1:-}"
sf_build_logged "s26 x4d" streamfusion-gpu sf_gpu_multi_test
SFG=$(sf_gpu_binary)
J=$OUTDIR/ab.jsonl
: > "$J"
run() {  # label heads dim seqs warmup iters step
  echo "## $(date -u +%T) $1" >> "$LOG"
  timeout 120 "$SFG" launch -n "$NGPU" --grace 15 -- "$SFG" gpu-attention -H "$2" -D "$3" -S "$4" --topology 2x2 \
    --gbps 50 --latency-us 5 --schemes sfu -w "$5" -n "$6" --ring-heads-per-step "$7" --no-single --no-concurrent \
    --label "$1" --json "$J" >> "$LOG" 2>&1
  echo "## rc=$?" >> "$LOG"
}
for round in 1 2; do
  order="0 1"; [ "$round" = 2 ] && order="1 0"
  for arm in $order; do
    run "flux heads=$((arm * 2))" 24 128 36864,65536 10 30 $((arm * 2))
    run "cog heads=$((arm * 4))" 48 64 81920 2 8 $((arm * 4))
  done
done
# Side measurement: CogVideoX S=81920 on 1x4, where Ulysses (NCCL) beat SFU's ring in runs 23-26: the custom
# one-sided U4 beside them.
echo "## $(date -u +%T) cog 1x4" >> "$LOG"
timeout 120 "$SFG" launch -n "$NGPU" --grace 15 -- "$SFG" gpu-attention -H 48 -D 64 -S 81920 --topology 1x4 \
  --schemes ulysses,sfu --custom-meshes U4 -w 3 -n 10 --label cog1x4 --json "$OUTDIR/cog1x4.jsonl" >> "$LOG" 2>&1
echo "## rc=$?" >> "$LOG"
echo "## $(date -u +%T) ctest gpu4 layers" >> "$LOG"
timeout 120 ctest --test-dir "$BUILD" -R "gpu${NGPU}_layers_and_exchange" --output-on-failure > "$OUTDIR/ctest.log" 2>&1
echo "## ctest rc=$? ($(grep -E 'tests passed|tests failed' "$OUTDIR/ctest.log")) $(date -u +%T)" >> "$LOG"
grep -E "^## |all outputs|mismatch|error" "$LOG"
grep -E "^\| B=1 S=81920" "$LOG"
python3 - "$J" <<'PY'
import json, statistics, sys
from collections import defaultdict
t = defaultdict(list)
bad = 0
for l in open(sys.argv[1]):
    r = json.loads(l)
    bad += 0 if r.get("ok", True) else 1
    t[(r["seq"], r["label"].split()[1])].append(r["ms"])
print("not ok:", bad)
for seq in sorted({k[0] for k in t}):
    arms = {a: statistics.median(v) for (s, a), v in t.items() if s == seq}
    ref = [v for a, v in arms.items() if a.endswith("=0")][0]
    for a, v in sorted(arms.items()):
        print(seq, a, [round(x, 3) for x in t[(seq, a)]], round(v, 3), round(v / ref, 4))
PY
