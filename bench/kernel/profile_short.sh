#!/usr/bin/env bash
# Why our D=128 kernel loses more at S=4096 than cuDNN (GPU time: 0.85–0.94× cuDNN at 4k, 1.02–1.06× from 16k,
# H200 2026-11-27): Nsight Compute figures of one launch each, ours at S=4096 and 65536 and cuDNN (PyTorch SDPA)
# at S=4096, H=24 D=128 bf16. Per case: duration, SM clock, how much of the elapsed time the SMs and the tensor
# pipes were active (idle SMs at the start and end of a launch show in the first), the tensor pipes' cycles
# (extra work, e.g. padded rows, shows there) and the stall reasons.
#   bench/kernel/profile_short.sh OUTDIR [BUILD]    (BUILD: where sf_kernel_bench is)
# Clocks are left alone (--clock-control none): the machines' clocks must not be touched.
. "$(dirname "$0")/common.sh"
METRICS="gpu__time_duration.sum,smsp__cycles_elapsed.avg.per_second,sm__cycles_elapsed.avg,\
sm__cycles_active.avg.pct_of_peak_sustained_elapsed,\
sm__pipe_tensor_op_hmma_cycles_active.avg.pct_of_peak_sustained_elapsed,\
sm__pipe_tensor_op_hmma_cycles_active.avg.pct_of_peak_sustained_active,sm__pipe_tensor_op_hmma_cycles_active.sum,\
sm__inst_issued.avg.pct_of_peak_sustained_active,launch__grid_size,\
regex:smsp__average_warps_issue_stalled_.*_per_issue_active\.ratio"
show() {  # name file
  echo "== ncu $1"
  grep -E "^\s+(gpu__|sm__|smsp__|launch__)" "$2" | awk '!/stalled/ || $NF+0 >= 0.1' | sed 's/^ *//'
}
ours() {  # name path seq [env...]
  local name=$1 path=$2 seq=$3; shift 3
  env SF_CUDA_ATTENTION_PATH=$path "$@" timeout 120 "$NCU" --clock-control none -k regex:attention_hopper_ws_kernel \
    -c 1 --metrics "$METRICS" "$BUILD/sf_kernel_bench" --heads 24 --dim 128 --seqs "$seq" --budget-ms 1 \
    > "$OUTDIR/ncu_$name.txt" 2>&1
  show "$name ($path S=$seq $*)" "$OUTDIR/ncu_$name.txt"
}
ours ws3_4k hopper_ws3 4096
ours ws2_4k hopper_ws2 4096
ours ws3_64k hopper_ws3 65536
# cuDNN through PyTorch SDPA: only the launch inside the NVTX range "sdpa" is profiled.
sdpa_once "$OUTDIR/sdpa_once.py" 4096
timeout 180 "$NCU" --clock-control none --target-processes all --nvtx --nvtx-include "sdpa/" --metrics "$METRICS" \
  "$PY" "$OUTDIR/sdpa_once.py" > "$OUTDIR/ncu_cudnn_4k.txt" 2>&1
grep -E "^\s+\S+.*\(\d+, \d+, \d+\)x" "$OUTDIR/ncu_cudnn_4k.txt" | head -3
grep -E "^  [a-zA-Z_].*\(" "$OUTDIR/ncu_cudnn_4k.txt" | head -3
show "cudnn_4k (SDPA cuDNN S=4096)" "$OUTDIR/ncu_cudnn_4k.txt"
