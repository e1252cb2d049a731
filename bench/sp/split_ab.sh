#!/usr/bin/env bash
# One GPU call (4 GPUs): a kernel environment knob in two settings, alternately, on the same machine:
# gpu-attention for the given shapes and topologies with SF_AB_VAR=first value, then second, SF_AB_ROUNDS times,
# then a table of the medians (split_ab.py). The one-GPU baseline is timed in each run with the same setting.
# Default: the kernel's tail split (src/backends/cuda/tail_split.h), SF_CUDA_SPLIT_TAIL=0 against auto.
#   bench/sp/split_ab.sh [OUTDIR]   env: SF_AB_VAR (default SF_CUDA_SPLIT_TAIL), SF_AB_VALUES (default "0 auto"),
#                                   SF_AB_SEQ (default 36864,65536), SF_AB_TOPOLOGIES (default 1x4,4x1),
#                                   SF_AB_SCHEMES (default usp,sfu,ulysses), SF_AB_GBPS (default 50),
#                                   SF_AB_ROUNDS (default 2), SF_AB_SHAPE (default "-H 24 -D 128")
# e.g. SF_AB_VAR=SF_CUDA_COMM_SMS SF_AB_VALUES="0 2": leave two SMs to communication kernels or not.
# SF_AB_FLAG (a gpu-attention option) compares that option's two values instead of an environment variable, e.g.
# SF_AB_FLAG=--foreign-rows SF_AB_VALUES="by-set by-block", --foreign-push "together staggered", or
# --local-diagonal "off on".
set -uo pipefail
cd "$(dirname "$0")/../.."
. bench/sp/common.sh
sf_outdir /tmp/sf-split-ab split_ab.log "${1:-}"
sf_build_logged "split A/B" streamfusion-gpu sf_gpu_multi_test  # the tests too: a call may run them after
SFG=$(sf_gpu_binary)
: > "$OUTDIR/ab.jsonl"
VAR=${SF_AB_VAR:-SF_CUDA_SPLIT_TAIL}
FLAG=${SF_AB_FLAG:-}
read -ra VALUES <<< "${SF_AB_VALUES:-0 auto}"
[ "${#VALUES[@]}" = 2 ] || { echo "SF_AB_VALUES: two settings, found '${SF_AB_VALUES:-}'"; exit 1; }
for round in $(seq 1 "${SF_AB_ROUNDS:-2}"); do
  for value in "${VALUES[@]}"; do
    if [ -n "$FLAG" ]; then setting=("$FLAG" "$value") envset=() label="$FLAG=$value"
    else setting=() envset=("$VAR=$value") label="$VAR=$value"; fi
    echo "## $(date -u +%T) round $round, $label" >> "$LOG"
    env "${envset[@]}" timeout 200 "$SFG" launch -n "$NGPU" --grace 15 -- "$SFG" gpu-attention \
      -S "${SF_AB_SEQ:-36864,65536}" ${SF_AB_SHAPE:--H 24 -D 128} --topology "${SF_AB_TOPOLOGIES:-1x4,4x1}" --gbps "${SF_AB_GBPS:-50}" \
      --latency-us 5 --schemes "${SF_AB_SCHEMES:-usp,sfu,ulysses}" -w 3 -n 9 "${setting[@]}" --label "$label" \
      --json "$OUTDIR/ab.jsonl" >> "$LOG" 2>&1
    echo "## rc=$?" >> "$LOG"
  done
done
$PY bench/sp/split_ab.py "$OUTDIR/ab.jsonl" "$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1) x$NGPU" \
  | tee "$OUTDIR/AB.md"
