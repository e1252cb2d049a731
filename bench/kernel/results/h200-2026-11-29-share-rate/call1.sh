#!/usr/bin/env bash
# Session 34 (one GPU): the share's per-unit cost. Our kernel on S/f rows x S keys against the whole S x S layer,
# interleaved in the same rounds, and cuDNN the same way (bench/kernel/share_rate.py).
set -uo pipefail
cd "$(dirname "$0")/.."
. bench/sp/common.sh
sf_outdir /tmp/sf-s34a build.log "${1:-}"
sf_build_logged "s34 share rate" sf_bench_capi
LIB=$(find "$BUILD" -name libsf_bench_capi.so | head -1)
sf_start_clock_log "$OUTDIR/clocks.csv"
timeout 420 $PY bench/kernel/share_rate.py --lib "$LIB" --seqs 16384,36864,65536 --fractions 2,4 --rounds 5 \
  > "$OUTDIR/share_rate.jsonl" 2> "$OUTDIR/share_rate.err"
echo "rc=$?" >> "$OUTDIR/share_rate.err"
sf_stop_clock_log
cat "$OUTDIR/share_rate.jsonl"; tail -5 "$OUTDIR/share_rate.err"
