#!/usr/bin/env bash
# Per-block timestamps of the three-warpgroup D=128 kernel (SF_CUDA_BLOCK_TRACE, block_trace.cuh) at several S,
# summarized by block_trace.py: where a block of work's time goes, and why short S loses to cuDNN.
#   bench/kernel/block_trace.sh OUTDIR [BUILD]    (BUILD: where sf_kernel_bench is; default /tmp/sf-kernel-build)
#   SF_TRACE_SEQS=4096,16384,65536 (default); SF_TRACE_PATH=hopper_ws3 (default) or hopper_ws3_free
. "$(dirname "$0")/common.sh"
files=()
for s in $(echo "${SF_TRACE_SEQS:-4096,16384,65536}" | tr , ' '); do
  SF_CUDA_ATTENTION_PATH=${SF_TRACE_PATH:-hopper_ws3} SF_CUDA_BLOCK_TRACE="$OUTDIR/trace_$s.csv" timeout 120 \
    "$BUILD/sf_kernel_bench" --heads 24 --dim 128 --seqs "$s" --budget-ms 1 > "$OUTDIR/bench_$s.jsonl" 2>&1
  echo "== S=$s rc $?"
  files+=("$OUTDIR/trace_$s.csv")
done
"$PY" "$(dirname "$0")/block_trace.py" "${files[@]}"
