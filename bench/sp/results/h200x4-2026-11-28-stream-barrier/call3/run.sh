#!/usr/bin/env bash
# Session 22, call 3 (4 GPUs): SF_NVSHMEM_BARRIER kernel / beside / streams, A/B, and traces of 4x1 S=16384.
set -uo pipefail
cd "$(dirname "$0")/.."
. bench/sp/common.sh
sf_outdir /tmp/sf-s22c3 call3.log "${1:-}"
sf_build_logged "s22 call3" streamfusion-gpu
SFG=$(sf_gpu_binary)
CARD="$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1) x$NGPU"
run() {  # label json env... -- args
  local label=$1 json=$2; shift 2
  local envs=()
  while [ "$1" != "--" ]; do envs+=("$1"); shift; done; shift
  env "${envs[@]}" timeout 60 "$SFG" launch -n "$NGPU" --grace 5 -- "$SFG" gpu-attention -H 24 -D 128 --latency-us 5 \
    --schemes sfu --no-single --no-concurrent --label "$label" --json "$OUTDIR/$json" "$@" >> "$LOG" 2>&1
  echo "## $(date -u +%T) $label $* rc=$?" >> "$LOG"
}
for round in 1 2 3; do
  for b in kernel beside streams; do
    run "SF_NVSHMEM_BARRIER=$b" barrier.jsonl SF_NVSHMEM_BARRIER=$b -- -S 16384,36864 --topology 2x2,4x1 --gbps 50 -w 3 -n 9
  done
done
for pair in "kernel beside" "kernel streams"; do
  read -r a b <<< "$pair"
  grep -E "\"label\":\"SF_NVSHMEM_BARRIER=($a|$b)\"" "$OUTDIR/barrier.jsonl" > "$OUTDIR/pair.jsonl"
  $PY bench/sp/split_ab.py "$OUTDIR/pair.jsonl" "$CARD" >> "$OUTDIR/AB_barrier.md" 2>&1
done
rm -f "$OUTDIR/pair.jsonl"
for b in kernel streams beside; do
  SF_NVSHMEM_BARRIER=$b timeout 60 "$SFG" launch -n "$NGPU" --grace 5 -- "$SFG" gpu-attention -S 16384 -H 24 -D 128 \
    --topology 4x1 --gbps 50 --latency-us 5 --schemes sfu --trace --no-single -w 2 -n 5 > "$OUTDIR/trace_$b.log" 2>&1
  echo "## trace $b rc=$?" >> "$LOG"
done
cat "$OUTDIR/AB_barrier.md"
grep -E "^## " "$LOG" | tail -12
