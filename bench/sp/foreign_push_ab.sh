#!/usr/bin/env bash
# One GPU call (4 GPUs): the Torus foreign output pushed together after one call, or stage by stage
# (SpAttentionConfig::stagger_foreign_push, gpu-attention --foreign-push), alternately, 2 rounds; first the
# multi-GPU layer test. Output: AB.md (split_ab.py), ab.jsonl, ab.log, ctest.log.
#   bench/sp/foreign_push_ab.sh [OUTDIR]
set -uo pipefail
cd "$(dirname "$0")/../.."
. bench/sp/common.sh
sf_outdir /tmp/sf-push-ab build.log "${1:-}"
sf_build_logged "foreign push A/B" streamfusion-gpu sf_gpu_multi_test
SFG=$(sf_gpu_binary)
export SF_WATCHDOG_TIMEOUT_S=60
timeout 100 ctest --test-dir "$BUILD" -R "gpu${NGPU}_layers_and_exchange" --output-on-failure > "$OUTDIR/ctest.log" 2>&1
echo "ctest rc=$?"; tail -4 "$OUTDIR/ctest.log"
: > "$OUTDIR/ab.jsonl"
for round in 1 2; do
  for v in together staggered; do
    timeout 60 "$SFG" launch -n "$NGPU" --grace 10 -- "$SFG" gpu-attention -S 16384,36864 -H 24 -D 128 \
      --topology 4x1 --gbps 50,6.25 --latency-us 5 --schemes sfu -w 5 -n 15 --no-single --no-concurrent \
      --foreign-push $v --label push=$v --json "$OUTDIR/ab.jsonl" >> "$OUTDIR/ab.log" 2>&1
    echo "round $round $v rc=$?"
  done
done
$PY bench/sp/split_ab.py "$OUTDIR/ab.jsonl" "$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1) x$NGPU" \
  | tee "$OUTDIR/AB.md"
