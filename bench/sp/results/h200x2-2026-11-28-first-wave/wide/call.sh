#!/usr/bin/env bash
# Session 26 (2 GPUs): kernel tests of late chunks, first-step A/B on 1x2 (0 = first wave peer by peer, 2 = as
# before), then the gpu2 layer tests (new first-step variants).
set -uo pipefail
cd "$(dirname "$0")/.."
export SF_LEAD_KNOB=ring-first-step-heads SF_LEAD_SEQ=${SEQ:-16384,65536} SF_LEAD_VALUES=${VALUES:-"0 2"}
export SF_LEAD_ROUNDS=${ROUNDS:-2} SF_LEAD_TRACE="${TRACE:- }" SF_LEAD_CTEST=skip SF_LEAD_KERNEL_TESTS=${KTESTS:-run}
bash bench/sp/ring_lead_ab.sh "$OUT/first"
. bench/sp/common.sh
echo "## $(date -u +%T) ctest gpu${NGPU} layers" >> "$OUT/first/lead_ab.log"
timeout ${CTEST_S:-200} ctest --test-dir "$BUILD" -L "gpu${NGPU}" -R "${CTEST_R:-layers}" --output-on-failure > "$OUT/first/ctest.log" 2>&1
echo "## ctest rc=$? ($(grep -E 'tests passed|tests failed' "$OUT/first/ctest.log"))" >> "$OUT/first/lead_ab.log"
cat "$OUT/first/lead_ab.log" | grep "^#"; cat "$OUT/first/LEAD.md"
