#!/usr/bin/env bash
# Session 34 (one GPU): the one-GPU layer's time under 60 s of sustained load, then the 1x4 share's, with clocks.
set -uo pipefail
cd "$(dirname "$0")/.."
. bench/sp/common.sh
sf_outdir /tmp/sf-s34b build.log "${1:-}"
sf_build_logged "s34 sustain curve" sf_bench_capi
LIB=$(find "$BUILD" -name libsf_bench_capi.so | head -1)
sf_start_clock_log "$OUTDIR/clocks.csv"
timeout 100 $PY bench/kernel/sustain_curve.py --lib "$LIB" --seq 65536 --seconds 70 --window-s 2 --label whole \
  > "$OUTDIR/curve.jsonl" 2> "$OUTDIR/curve.err"
timeout 60 $PY bench/kernel/sustain_curve.py --lib "$LIB" --seq 65536 --rows 16384 --seconds 30 --window-s 2 \
  --label share >> "$OUTDIR/curve.jsonl" 2>> "$OUTDIR/curve.err"
sf_stop_clock_log
cat "$OUTDIR/curve.jsonl" | cut -c1-200; tail -3 "$OUTDIR/curve.err"
