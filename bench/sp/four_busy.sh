#!/usr/bin/env bash
# One GPU call (any number of GPUs): what loading every GPU of the host at once costs a GPU, apart from any layer.
# Our kernel, one process per GPU and no communication (bench/kernel/sustain_curve.py, 2-s windows), on the whole
# Flux layer and on one rank's share of it (S/N rows against all S keys): GPU 0 alone, then every GPU at once, with
# the clocks logged beside. The 1x4 scaling figure divides the one-GPU time (GPU 0, the others idle) by the layer's
# time on four busy GPUs; gpu-attention's all-P compute share read 104-107 % of the one-GPU time / 4 on 4x H200,
# while one GPU alone runs the share within 1 % of a quarter of the whole (bench/kernel/results/
# h200-2026-11-29-share-rate/). This says how much of the rest is the GPUs being busy together.
#   bench/sp/four_busy.sh [OUTDIR]      env: SF_SEQ (65536), SF_BUSY_S (seconds per phase, 20), SF_ALONE_GPUS (the
#                                       GPUs timed alone on the whole layer, one after another: "0", the default, or
#                                       e.g. "0 1 2 3" to see each GPU's own speed)
set -uo pipefail
cd "$(dirname "$0")/../.."
. bench/sp/common.sh
sf_outdir /tmp/sf-four-busy four_busy.log "${1:-}"
S=${SF_SEQ:-65536}
T=${SF_BUSY_S:-20}
ROWS=$((S / NGPU))
sf_build_logged "four busy ($NGPU GPUs, S=$S, $T s per phase)" sf_bench_capi
LIB=$(find "$BUILD" -name libsf_bench_capi.so | head -1)
sf_start_clock_log "$OUTDIR/clocks.csv"
curve() {  # LABEL ROWS GPU...: one sustain_curve process per GPU, all at once
  local label=$1 rows=$2 gpu pids=()
  shift 2
  echo "## $(date -u +%T) $label on GPUs $*" >> "$LOG"
  for gpu in "$@"; do
    CUDA_VISIBLE_DEVICES=$gpu timeout $((T + 60)) $PY bench/kernel/sustain_curve.py --lib "$LIB" --seq "$S" \
      --rows "$rows" --seconds "$T" --window-s 2 --label "$label gpu$gpu" >> "$OUTDIR/curves.jsonl" 2>> "$LOG" &
    pids+=($!)
  done
  wait "${pids[@]}"  # these only: a bare wait would also wait for the clock log, which runs until stopped
}
ALL=$(seq -s ' ' 0 $((NGPU - 1)))
for g in ${SF_ALONE_GPUS:-0}; do curve "whole alone" "$S" "$g"; done
curve "whole all busy" "$S" $ALL
curve "share all busy" "$ROWS" $ALL
curve "share alone" "$ROWS" 0
sf_stop_clock_log
$PY - "$OUTDIR/curves.jsonl" >> "$LOG" << 'PYEOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print("| phase | GPU | median ms of the last half | windows |")
print("|---|---|---|---|")
phases = list(dict.fromkeys(r["label"].rpartition(" ")[0] for r in rows))  # in the order they ran
labels = sorted(set(r["label"] for r in rows), key=lambda l: (phases.index(l.rpartition(" ")[0]), l))
for label in labels:
    w = [r["median_ms"] for r in rows if r["label"] == label and r["median_ms"]]
    tail = w[len(w) // 2:]
    phase, _, gpu = label.rpartition(" ")
    print(f"| {phase} | {gpu} | {statistics.median(tail):.3f} | {len(w)} |")
PYEOF
$PY bench/sp/clock_summary.py "$OUTDIR/clocks.csv" >> "$LOG" 2>&1
cat "$LOG"
