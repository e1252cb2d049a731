#!/usr/bin/env bash
# One GPU call (4 GPUs): the emulated links' two clocks (src/backends/gpu_runtime/emulated_link.h).
#   1. gpu-links under each clock: achieved bandwidth against the setting, and transfers beside an attention call
#      that holds every SM (one-sided transfers must land during the call; NCCL's are reported);
#   2. the multi-GPU tests (host clock);
#   3. the layers under each clock, alternately (split_ab.sh with SF_AB_VAR=SF_EMULATED_LINK_CLOCK).
#   bench/sp/link_clock_ab.sh [OUTDIR]   env: SF_AB_SEQ, SF_AB_TOPOLOGIES, SF_AB_GBPS, SF_AB_SCHEMES, SF_AB_ROUNDS
#                                        (split_ab.sh's), SF_SKIP_TESTS=1
set -uo pipefail
cd "$(dirname "$0")/../.."
. bench/sp/common.sh
sf_outdir /tmp/sf-link-clock link_clock.log "${1:-}"
sf_build_logged "link clock A/B" streamfusion-gpu sf_gpu_multi_test
SFG=$(sf_gpu_binary)
for clock in kernel host; do
  echo "## $(date -u +%T) gpu-links, SF_EMULATED_LINK_CLOCK=$clock" | tee -a "$LOG"
  SF_EMULATED_LINK_CLOCK=$clock timeout 150 "$SFG" launch -n "$NGPU" --grace 15 -- "$SFG" gpu-links \
    --topology "2x$((NGPU / 2))" --gbps 50,6.25 --sizes-mib 64,256 --json "$OUTDIR/links_$clock.jsonl" \
    > "$OUTDIR/links_$clock.md" 2>&1
  echo "## rc=$?" | tee -a "$LOG"
  cat "$OUTDIR/links_$clock.md"
done
if [ "${SF_SKIP_TESTS:-0}" != 1 ]; then
  echo "## $(date -u +%T) ctest -L gpu$NGPU" | tee -a "$LOG"
  timeout 300 ctest --test-dir "$BUILD" -L "gpu$NGPU" -E "emulated_links|launchers" --output-on-failure \
    > "$OUTDIR/ctest.log" 2>&1
  echo "## rc=$?" | tee -a "$LOG"
  tail -8 "$OUTDIR/ctest.log"
fi
SF_AB_VAR=SF_EMULATED_LINK_CLOCK SF_AB_VALUES="kernel host" bash bench/sp/split_ab.sh "$OUTDIR/layers"
