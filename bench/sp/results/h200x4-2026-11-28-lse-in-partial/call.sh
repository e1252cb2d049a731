#!/usr/bin/env bash
# Session 27 (4 GPUs): the local diagonal's partial and its lse in one transfer (working tree) against two transfers
# (devrun/before.tar.gz, the tree before), SFU-NVSHMEM on emulated 4x1 and 2x2, Flux S=16384 and 36864 at 50 and
# 6.25 GB/s, 2 rounds in alternating order, 10 + 30 forwards; then the gpu4 layer test on the working tree.
set -uo pipefail
cd "$(dirname "$0")/.."
. bench/sp/common.sh
sf_outdir /tmp/sf-s27l lse.log "${1:-}"
sf_build_logged "s27 lse in one transfer" streamfusion-gpu sf_gpu_multi_test
SFG=$(sf_gpu_binary)
rm -rf /tmp/sf-before && mkdir -p /tmp/sf-before && tar xzf devrun/before.tar.gz -C /tmp/sf-before
( cd /tmp/sf-before && timeout 120 cmake -S . -B /tmp/sf-build-before -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DSTREAMFUSION_CUDA=ON -DSTREAMFUSION_NCCL=ON -DSTREAMFUSION_NVSHMEM=ON -DSTREAMFUSION_TESTS=OFF >/dev/null &&
  timeout 300 cmake --build /tmp/sf-build-before -j "$(nproc)" --target streamfusion-gpu | tail -1 ) >> "$LOG" 2>&1
SFB=$(find /tmp/sf-build-before -name streamfusion-gpu -type f -perm -u+x | head -1)
[ -x "$SFB" ] || { echo "before build failed"; tail -20 "$LOG"; exit 1; }
J=$OUTDIR/ab.jsonl
: > "$J"
run() {  # label binary
  echo "## $(date -u +%T) $1" >> "$LOG"
  timeout 150 "$2" launch -n "$NGPU" --grace 15 -- "$2" gpu-attention -H 24 -D 128 -S 16384,36864 \
    --topology 4x1,2x2 --gbps 50,6.25 --latency-us 5 --schemes sfu -w 10 -n 30 --no-single --no-concurrent \
    --label "$1" --json "$J" >> "$LOG" 2>&1
  echo "## rc=$?" >> "$LOG"
}
for round in 1 2; do
  if [ "$round" = 1 ]; then run two "$SFB"; run one "$SFG"; else run one "$SFG"; run two "$SFB"; fi
done
echo "## $(date -u +%T) ctest gpu4 layers" >> "$LOG"
timeout 200 ctest --test-dir "$BUILD" -R "gpu${NGPU}_layers_and_exchange" -V > "$OUTDIR/ctest.log" 2>&1
echo "## ctest rc=$? ($(grep -E 'tests passed|tests failed' "$OUTDIR/ctest.log")) $(date -u +%T)" >> "$LOG"
grep -E "^## |all outputs|mismatch|error|failed" "$LOG"
python3 - "$J" <<'PY'
import json, statistics, sys
from collections import defaultdict
t = defaultdict(list)
bad = 0
for l in open(sys.argv[1]):
    r = json.loads(l)
    bad += 0 if r.get("ok", True) else 1
    t[(r["seq"], r["topology"], r["inter_gbps"], r["plan_local_diagonal"], r["label"])].append(r["ms"])
print("not ok:", bad)
for key in sorted({k[:4] for k in t}):
    one, two = t[key + ("one",)], t[key + ("two",)]
    print(*key, "one:", [round(m, 3) for m in one], "two:", [round(m, 3) for m in two],
          f"{statistics.median(one) / statistics.median(two):.4f}")
PY
