#!/usr/bin/env bash
# Session 32 (2 GPUs): the start-up gather of every rank's host and software (rank_software.h) and --version, run by
# every 2-GPU test; the start-up error cases with different_builds, their logs kept.
set -uo pipefail
cd "$(dirname "$0")/.."
. bench/sp/common.sh
sf_outdir /tmp/sf-s32b build.log "${1:-}"
sf_build_logged "s32 2-GPU tests" streamfusion-gpu sf_gpu_multi_test
SFG=$(sf_gpu_binary)
"$SFG" --version > "$OUTDIR/version.txt" 2>&1
SF_STARTUP_KEEP=$OUTDIR/startup2 timeout 300 bash tests/gpu/multi/startup_errors.sh "$SFG" 2 > "$OUTDIR/startup2.log" 2>&1
echo "rc=$?" >> "$OUTDIR/startup2.log"
cat "$OUTDIR/version.txt" "$OUTDIR/startup2.log"
cd "$BUILD"
timeout 330 ctest -L gpu2 -E startup_errors --output-on-failure --timeout 300 > "$OUTDIR/ctest_gpu2.log" 2>&1
echo "gpu2 rc=$?" >> "$OUTDIR/ctest_gpu2.log"
grep -E 'Test +#|tests passed|rc=|Total' "$OUTDIR"/ctest_gpu2.log
