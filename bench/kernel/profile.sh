#!/usr/bin/env bash
# Nsight Compute figures of the attention kernel, one launch per case, printed as text:
#   bench/kernel/profile.sh OUTDIR [BUILD]    (BUILD: where sf_kernel_bench is, default /tmp/sf-kernel-build)
# Cases (S=16384): D=128 H=24 hopper_ws3 (the default) and hopper_ws2; D=64 H=48 hopper_ws3. Per case: duration, issue-slot
# use, tensor-pipe and MUFU (XU) activity, and the warp stall reasons (cycles per issued instruction).
# Clocks are left alone (--clock-control none): the machines' clocks must not be touched.
set -uo pipefail
OUTDIR=$1
BUILD=${2:-/tmp/sf-kernel-build}
NCU=$(command -v ncu || echo /usr/local/cuda/bin/ncu)
mkdir -p "$OUTDIR"
METRICS="gpu__time_duration.sum,sm__inst_issued.avg.pct_of_peak_sustained_active,\
sm__pipe_tensor_op_hmma_cycles_active.avg.pct_of_peak_sustained_active,\
sm__inst_executed_pipe_xu.avg.pct_of_peak_sustained_active,sm__inst_executed_pipe_fma.avg.pct_of_peak_sustained_active,\
sm__inst_executed_pipe_alu.avg.pct_of_peak_sustained_active,\
regex:smsp__average_warps_issue_stalled_.*_per_issue_active\.ratio"
prof() {  # name path heads dim
  SF_CUDA_ATTENTION_PATH=$2 timeout 120 "$NCU" --clock-control none -k regex:attention_hopper_ws_kernel -c 1 \
    --metrics "$METRICS" "$BUILD/sf_kernel_bench" --heads "$3" --dim "$4" --seqs 16384 --budget-ms 1 \
    > "$OUTDIR/ncu_$1.txt" 2>&1
  echo "== ncu $1 ($2, H=$3 D=$4) rc $?"
  # Metric lines, stall reasons of at least 0.1 cycles only.
  grep -E "^\s+(gpu__|sm__|smsp__)" "$OUTDIR/ncu_$1.txt" | awk '!/stalled/ || $NF+0 >= 0.1' | sed 's/^ *//'
}
prof d128_ws3 hopper_ws3 24 128
prof d128_ws2 hopper_ws2 24 128
prof d64_ws3 hopper_ws3 48 64
