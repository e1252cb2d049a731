#!/usr/bin/env bash
# Session 23, call 2 (4 GPUs): the stream probe's variants; ctest -L gpu1 (the kernel settings' errors) and
# ctest -L gpu4 on 8519a55.
set -uo pipefail
cd "$(dirname "$0")/.."
. bench/sp/common.sh
sf_outdir /tmp/sf-s23c2 call2.log "${1:-}"
nvcc -O2 -std=c++17 -o /tmp/stream_queue_probe bench/sp/stream_queue_probe.cu -lcuda > "$OUTDIR/probe_build.log" 2>&1 &
PROBE_BUILD=$!
sf_build_logged "s23 call2" streamfusion-gpu sf_gpu_multi_test sf_gpu_kernel_tests
wait $PROBE_BUILD
{
  for args in "--op write" "--op event" "--op kernel" "--op write --order down" "--op event --order down" \
              "--op write --warm 1" "--op write --warm 2" "--op write --order down --warm 2"; do
    timeout 60 /tmp/stream_queue_probe $args
    echo
  done
} > "$OUTDIR/probe.md" 2>&1
echo "## probe done $(date -u +%T)" >> "$LOG"
( cd "$BUILD" && timeout 200 ctest -L gpu1 --output-on-failure ) > "$OUTDIR/ctest_gpu1.log" 2>&1
echo "## gpu1 rc=$? $(date -u +%T)" >> "$LOG"
( cd "$BUILD" && timeout 330 ctest -L gpu4 --output-on-failure ) > "$OUTDIR/ctest_gpu4.log" 2>&1
echo "## gpu4 rc=$? $(date -u +%T)" >> "$LOG"
tail -4 "$OUTDIR/ctest_gpu1.log" "$OUTDIR/ctest_gpu4.log"
cat "$LOG"
