#!/usr/bin/env bash
# Session 22, call 2 (4 GPUs): the stream barrier (SF_NVSHMEM_BARRIER) and the scatter's barrier beside the compute,
# in-order posting (SF_NVSHMEM_POST_ORDER): the multi-GPU tests, A/B tables, a trace.
set -uo pipefail
cd "$(dirname "$0")/.."
. bench/sp/common.sh
sf_outdir /tmp/sf-s22c2 call2.log "${1:-}"
sf_build_logged "s22 call2" streamfusion-gpu sf_gpu_multi_test
SFG=$(sf_gpu_binary)
CARD="$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1) x$NGPU"
echo "## $(date -u +%T) ctest -L gpu$NGPU" >> "$LOG"
timeout 300 ctest --test-dir "$BUILD" -L "gpu$NGPU" --output-on-failure > "$OUTDIR/ctest.log" 2>&1
echo "## ctest rc=$? ($(grep -E 'tests passed|tests failed' "$OUTDIR/ctest.log"))" >> "$LOG"
grep -E "Passed|Failed|\*\*\*" "$OUTDIR/ctest.log" >> "$LOG"
run() {  # label env... -- args
  local label=$1 json=$2; shift 2
  local envs=()
  while [ "$1" != "--" ]; do envs+=("$1"); shift; done; shift
  env "${envs[@]}" timeout 60 "$SFG" launch -n "$NGPU" --grace 5 -- "$SFG" gpu-attention -H 24 -D 128 --latency-us 5 \
    --schemes sfu --no-single --no-concurrent -w 3 -n 9 --label "$label" --json "$OUTDIR/$json" "$@" >> "$LOG" 2>&1
  echo "## $(date -u +%T) $label $* rc=$?" >> "$LOG"
}
for round in 1 2 3; do
  for b in kernel streams; do
    run "SF_NVSHMEM_BARRIER=$b" barrier.jsonl SF_NVSHMEM_BARRIER=$b -- -S 16384,36864 --topology 1x4,2x2,4x1 --gbps 50
  done
done
$PY bench/sp/split_ab.py "$OUTDIR/barrier.jsonl" "$CARD" > "$OUTDIR/AB_barrier.md" 2>&1
for nic in fair fifo; do
  for round in 1 2 3; do
    for o in free issue; do
      run "SF_NVSHMEM_POST_ORDER=$o" "post_$nic.jsonl" SF_EMULATED_BOOKING=post SF_EMULATED_NIC=$nic \
        SF_NVSHMEM_POST_ORDER=$o -- -S 16384,36864 --topology 2x2,4x1 --gbps 50
    done
  done
  $PY bench/sp/split_ab.py "$OUTDIR/post_$nic.jsonl" "$CARD" > "$OUTDIR/AB_post_$nic.md" 2>&1
done
timeout 60 "$SFG" launch -n "$NGPU" --grace 5 -- "$SFG" gpu-attention -S 16384 -H 24 -D 128 --topology 2x2,4x1 \
  --gbps 50 --latency-us 5 --schemes sfu --trace --no-single -w 2 -n 5 > "$OUTDIR/trace.log" 2>&1
echo "## trace rc=$?" >> "$LOG"
cat "$OUTDIR"/AB_*.md
grep -E "^## " "$LOG" | tail -40
