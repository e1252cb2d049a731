#!/usr/bin/env bash
# Session 26 (4 GPUs): the 1x4 steady figure at Flux S=65536 with the one call pulled by heads (planner default),
# the first-wave A/B on 1x4 (0 = the first wave's heads peer by peer, 2 = every step across the peers), then the
# gpu4 tests (layers and exchange, faults, launchers).
set -uo pipefail
cd "$(dirname "$0")/.."
. bench/sp/common.sh
sf_outdir /tmp/sf-s26b x4b.log "${1:-}"
sf_build_logged "s26 x4b" streamfusion-gpu sf_gpu_multi_test sf_gpu_kernel_tests
echo "## $(date -u +%T) steady" >> "$LOG"
SF_STEADY_CTEST=0 timeout 200 bash bench/sp/steady_1x4.sh "$OUTDIR/steady" > /dev/null 2>&1
echo "## steady rc=$? $(date -u +%T)" >> "$LOG"
SF_LEAD_KNOB=ring-first-wave-heads SF_LEAD_SEQ=${SEQ:-16384,65536} SF_LEAD_VALUES=${VALUES:-"0 2"} \
  SF_LEAD_ROUNDS=${ROUNDS:-2} SF_LEAD_TRACE="${TRACE:- }" SF_LEAD_CTEST=skip SF_LEAD_KERNEL_TESTS=${KTESTS:-skip} \
  timeout ${AB_S:-130} bash bench/sp/ring_lead_ab.sh "$OUTDIR/first" > /dev/null 2>&1
echo "## first-wave A/B rc=$? $(date -u +%T)" >> "$LOG"
echo "## $(date -u +%T) ctest gpu4" >> "$LOG"
timeout ${CTEST_S:-170} ctest --test-dir "$BUILD" -L "gpu${NGPU}" -E "${CTEST_E:-emulated_links|launchers}" --output-on-failure \
  > "$OUTDIR/ctest.log" 2>&1
echo "## ctest rc=$? ($(grep -E 'tests passed|tests failed' "$OUTDIR/ctest.log")) $(date -u +%T)" >> "$LOG"
cat "$LOG"; grep -E "^#|efficiency|1x4" "$OUTDIR/steady/steady.log" | tail -25; cat "$OUTDIR/first/LEAD.md" 2>/dev/null
grep -E "Passed|Failed|Timeout" "$OUTDIR/ctest.log"
