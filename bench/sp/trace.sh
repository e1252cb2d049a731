#!/usr/bin/env bash
# One GPU call (4 GPUs): where a distributed layer's time goes. Prints every rank's timeline of one forward
# (gpu-attention --trace: attention calls, copies, gaps, transfer completions) for the cells that miss their
# targets in RESULTS.md, while logging the GPUs' clocks and power (clock_summary.py compares the one-GPU
# baseline, GPU 0 alone busy, with all four busy). Then the multi-GPU tests.
#   bench/sp/trace.sh [OUTDIR]     env: SF_TRACE_ARGS="gpu-attention arguments" for other cells; SF_SKIP_TESTS=1
set -uo pipefail
cd "$(dirname "$0")/../.."
. bench/sp/common.sh
sf_outdir /tmp/sf-trace-out trace.log "${1:-}"
T0=$(date +%s)
sf_build_logged "trace" streamfusion-gpu sf_gpu_multi_test
echo "# built in $(( $(date +%s) - T0 )) s" >> "$LOG"
SFG=$(sf_gpu_binary)
run() { echo "## $(date -u +%T) $*" >> "$LOG"; timeout 150 "$SFG" launch -n "$NGPU" --grace 15 -- "$SFG" gpu-attention "$@" >> "$LOG" 2>&1; }
sf_start_clock_log "$OUTDIR/clocks.csv"
if [ -n "${SF_TRACE_ARGS:-}" ]; then  # one custom run instead of the default cells, e.g. "-S 81920 -H 48 -D 64 --topology 2x2 --gbps 6.25 --schemes usp,sfu"
  run $SF_TRACE_ARGS --trace --no-single -w 2 -n 5
else
# 1x4 at S=65536 (target 95 % of one GPU): longer runs so that the clock log sees each phase.
run -S 65536 -H 24 -D 128 --topology 1x4 --schemes ulysses,sfu --custom-meshes T4 --transports auto --trace -w 10 -n 30
# Compute-bound emulated cells where SFU is 10-20 % over its compute.
run -S 81920 -H 48 -D 64 --topology 2x2 --gbps 50 --schemes usp,sfu --trace --no-single -w 2 -n 5
run -S 36864 -H 24 -D 128 --topology 2x2,4x1 --gbps 50 --schemes usp,sfu --trace --no-single -w 2 -n 5
fi
sf_stop_clock_log
$PY bench/sp/clock_summary.py "$OUTDIR/clocks.csv" >> "$LOG" 2>&1
if [ "${SF_SKIP_TESTS:-0}" != 1 ]; then
  echo "## $(date -u +%T) ctest -L gpu$NGPU" >> "$LOG"
  timeout 330 ctest --test-dir "$BUILD" -L "gpu$NGPU" -E "emulated_links" --output-on-failure > "$OUTDIR/ctest.log" 2>&1
  echo "## ctest rc=$? ($(grep -E 'tests passed|tests failed' "$OUTDIR/ctest.log"))" >> "$LOG"
fi
grep -vE "^#   " "$LOG" | tail -60
