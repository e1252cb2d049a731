#!/usr/bin/env bash
# One GPU call (4 GPUs): does timing the one-GPU baseline just before the layers slow the layers? The baseline
# loads GPU 0 alone for seconds (10 warm-ups and 30 calls of 82 ms at Flux S=65536), and under the power cap a GPU
# that was just loaded clocks lower, so GPU 0 may be the slowest rank of the layer that follows. SFU-NVSHMEM on
# 1x4 NVLink, each in turn, SF_HEAT_ROUNDS rounds: the layer right after the baseline and the compute share, the
# same after a pause, the layer alone, and the layer after every other scheme as run.sh times it (the NCCL schemes
# first, then SFU-NVSHMEM); the last forward of each traced (every rank's calls), the clocks logged throughout.
#   bench/sp/baseline_heat.sh [OUTDIR]   env: SF_HEAT_SEQ (default 65536), SF_HEAT_ROUNDS (default 2),
#                                        SF_HEAT_PAUSE_S (default 5)
set -uo pipefail
cd "$(dirname "$0")/../.."
. bench/sp/common.sh
sf_outdir /tmp/sf-baseline-heat heat.log "${1:-}"
sf_build_logged "baseline heat" streamfusion-gpu
SFG=$(sf_gpu_binary)
SEQ=${SF_HEAT_SEQ:-65536}
: > "$OUTDIR/heat.jsonl"
run() {  # label, then gpu-attention options
  local label=$1
  shift
  echo "## $(date -u +%T) $label" >> "$LOG"
  timeout 200 "$SFG" launch -n "$NGPU" --grace 15 -- "$SFG" gpu-attention -S "$SEQ" -H 24 -D 128 --topology 1x4 \
    --schemes "${SCHEMES:-sfu}" -w 10 -n 30 --trace --label "$label" --json "$OUTDIR/heat.jsonl" "$@" >> "$LOG" 2>&1
  echo "## rc=$?" >> "$LOG"
}
sf_start_clock_log "$OUTDIR/clocks.csv"
for round in $(seq 1 "${SF_HEAT_ROUNDS:-2}"); do
  run "order=after-baseline"
  run "order=after-pause" --pause-s "${SF_HEAT_PAUSE_S:-5}"
  run "order=alone" --no-single --no-concurrent
  SCHEMES=ring,ulysses,usp,tas,torus,sfu run "order=after-all-schemes"
done
sf_stop_clock_log
$PY bench/sp/clock_summary.py "$OUTDIR/clocks.csv" > "$OUTDIR/clocks.md" 2>&1
$PY bench/sp/baseline_heat.py "$LOG" "$OUTDIR/heat.jsonl" | tee "$OUTDIR/HEAT.md"
