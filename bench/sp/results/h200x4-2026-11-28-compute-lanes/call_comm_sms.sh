#!/usr/bin/env bash
# Session 27 (4 GPUs): does the ring's barrier for a pulled set wait for the running call? SF_CUDA_COMM_SMS 0 and 1
# (one SM left free by every call) on emulated 2x2 and 4x1 at 50 GB/s, Flux S=16384 and 36864 (split_ab.sh, 2
# rounds); then the gpu4 layer test on the final tree (compute-lanes variants).
set -uo pipefail
cd "$(dirname "$0")/.."
OUTDIR=${1:-$OUT}
SF_AB_VAR=SF_CUDA_COMM_SMS SF_AB_VALUES="0 1" SF_AB_SEQ=16384,36864 SF_AB_TOPOLOGIES=2x2,4x1 SF_AB_SCHEMES=sfu \
  bench/sp/split_ab.sh "$OUTDIR/comm-sms"
. bench/sp/common.sh
echo "## $(date -u +%T) ctest gpu4 layers"
timeout 240 ctest --test-dir "$BUILD" -R "gpu${NGPU}_layers_and_exchange" -V > "$OUTDIR/ctest.log" 2>&1
echo "## ctest rc=$? ($(grep -E 'tests passed|tests failed' "$OUTDIR/ctest.log")) $(date -u +%T)"
