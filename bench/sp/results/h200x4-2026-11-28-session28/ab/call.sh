#!/usr/bin/env bash
# Session 28 (4 GPUs), one call: (1) this tree (partials merged on arrival signals, the merge in 16-byte accesses)
# against d44df14 on emulated 2x2 and 4x1 at 50 GB/s, Flux S=16384 and 36864, SFU, 2 rounds; (2) the ring groups'
# barriers as NVSHMEM teams against signal barriers on 2x2, 2 rounds; (3) the gpu4 layer/exchange test.
set -uo pipefail
cd "$(dirname "$0")/.."
OUTD=${1:-/tmp/sf-s28-x4}
mkdir -p "$OUTD/tree" "$OUTD/teams"
SF_SKIP_TESTS=1 SF_AB_BASE=devrun/ab_base SF_AB_ROUNDS=2 \
  SF_AB_RUNS="-S 16384,36864 -H 24 -D 128 --topology 2x2,4x1 --gbps 50 --schemes sfu -w 10 -n 30 --no-single --no-concurrent" \
  bash bench/sp/tree_ab.sh "$OUTD/tree" > "$OUTD/tree/out.txt" 2>&1
. bench/sp/common.sh
sf_outdir /tmp/x "$OUTD/teams/teams.log" "$OUTD/teams"
LOG=$OUTD/teams/teams.log
SFG=$(sf_gpu_binary)
J=$OUTD/teams/ab.jsonl; : > "$J"
for round in 1 2; do
  for v in signals team; do
    [ "$round" = 2 ] && { [ "$v" = signals ] && v=team || v=signals; }
    echo "## $(date -u +%T) $v" >> "$LOG"
    SF_NVSHMEM_GROUP_BARRIER=$v timeout 120 "$SFG" launch -n "$NGPU" --grace 15 -- "$SFG" gpu-attention -H 24 -D 128 \
      -S 16384,36864 --topology 2x2 --gbps 50,6.25 --latency-us 5 --schemes sfu -w 10 -n 30 --no-single --no-concurrent \
      --label "barrier=$v" --json "$J" >> "$LOG" 2>&1
    echo "## rc=$?" >> "$LOG"
  done
done
echo "## $(date -u +%T) ctest gpu4 layers" >> "$LOG"
timeout 200 ctest --test-dir "$BUILD" -R "gpu${NGPU}_layers_and_exchange" --output-on-failure > "$OUTD/ctest.log" 2>&1
echo "## ctest rc=$? ($(grep -E 'tests passed|tests failed' "$OUTD/ctest.log")) $(date -u +%T)" >> "$LOG"
grep -E "^## " "$LOG"; grep -E "^## " "$OUTD/tree/tree_ab.log" | tail -4
cat "$OUTD/tree/TREE_AB.md"
python3 - "$J" <<'PY'
import json, statistics, sys
from collections import defaultdict
t = defaultdict(list); bad = 0
for l in open(sys.argv[1]):
    r = json.loads(l); bad += 0 if r.get("ok", True) else 1
    t[(r["seq"], r["inter_gbps"], r["label"])].append(r["ms"])
print("not ok:", bad)
for k in sorted(t): print(k, [round(x, 3) for x in t[k]], round(statistics.median(t[k]), 3))
PY
grep -E "FAIL|FATAL" "$OUTD/ctest.log" | head -5
