#!/usr/bin/env bash
# Where the K/V tiles come from, ours against cuDNN: Nsight Compute's L2 figures of one launch each at H=24 D=128
# bf16, S=4096 and 65536 (ours: the library's default path; cuDNN through PyTorch SDPA), with the launch's cluster
# shape. The question (bench/kernel/NOTES.md, session 9): does our kernel, which reads every K/V tile from L2
# once per 192-row Q tile, run the L2 (and the link between its two partitions) hot enough to slow some blocks,
# where cuDNN's clustered launch could share each tile between thread blocks?
#   bench/kernel/l2_traffic.sh OUTDIR [BUILD]    (BUILD: where sf_kernel_bench is)
# Clocks are left alone (--clock-control none). Metrics this Nsight Compute does not know are left out (listed).
. "$(dirname "$0")/common.sh"
WANT="gpu__time_duration.sum sm__cycles_elapsed.avg sm__pipe_tensor_op_hmma_cycles_active.avg.pct_of_peak_sustained_elapsed \
lts__t_bytes.sum lts__t_sectors_srcunit_tex.sum lts__t_sectors_srcnode_ltcfabric.sum lts__t_sector_hit_rate.pct \
lts__throughput.avg.pct_of_peak_sustained_elapsed lts__t_sectors.avg.pct_of_peak_sustained_elapsed \
dram__bytes_read.sum"
"$NCU" --query-metrics --chip gh100 > "$OUTDIR/known.txt" 2>&1
METRICS=""
for m in $WANT; do
  base=${m%%.*}
  if grep -q "^$base\b" "$OUTDIR/known.txt"; then METRICS="$METRICS,$m"; else echo "unknown metric: $m"; fi
done
METRICS=${METRICS#,}
show() {  # name file
  echo "== ncu $1"
  grep -E "^\s+(gpu__|sm__|lts__|dram__)|Cluster|Grid Size|Block Size|Registers Per|Dynamic Shared" "$2" | sed 's/^ *//'
  grep -m3 -E "==ERR|==WARNING.*metric" "$2"
}
for s in 4096 65536; do
  timeout 120 "$NCU" --clock-control none -k regex:attention_hopper_ws_kernel -c 1 --launch-skip 1 --section LaunchStats --metrics "$METRICS" \
    "$BUILD/sf_kernel_bench" --heads 24 --dim 128 --seqs "$s" --budget-ms 1 > "$OUTDIR/ncu_ours_$s.txt" 2>&1
  show "ours S=$s" "$OUTDIR/ncu_ours_$s.txt"
  sdpa_once "$OUTDIR/sdpa_once.py" "$s"
  timeout 150 "$NCU" --clock-control none --target-processes all --nvtx --nvtx-include "sdpa/" --section LaunchStats --metrics "$METRICS" \
    "$PY" "$OUTDIR/sdpa_once.py" > "$OUTDIR/ncu_cudnn_$s.txt" 2>&1
  grep -m2 -E "^  [a-zA-Z_].*\(" "$OUTDIR/ncu_cudnn_$s.txt"
  show "cudnn S=$s" "$OUTDIR/ncu_cudnn_$s.txt"
done
