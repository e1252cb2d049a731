#!/usr/bin/env bash
# Session 31 (4 GPUs), fourth call: the start-up error cases (tests/gpu/multi/startup_errors.sh) on 4 and 2 GPUs,
# every case's whole log kept.
set -uo pipefail
cd "$(dirname "$0")/.."
. bench/sp/common.sh
sf_outdir /tmp/sf-s31d build.log "${1:-}"
sf_build_logged "s31 start-up errors (4)" streamfusion-gpu
SFG=$(sf_gpu_binary)
SF_STARTUP_KEEP=$OUTDIR/n4 timeout 420 bash tests/gpu/multi/startup_errors.sh "$SFG" 4 > "$OUTDIR/startup4.log" 2>&1
echo "rc=$?" >> "$OUTDIR/startup4.log"
cat "$OUTDIR/startup4.log"
