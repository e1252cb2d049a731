#!/usr/bin/env bash
# Session 17: the fault tests with the NICs shared between the ranks (nic_board.h).
set -uo pipefail
cd "$(dirname "$0")/../../.."
. bench/sp/common.sh
O=${OUT:-/tmp/out}
mkdir -p "$O"
LOG=$O/build.log
sf_build_logged "fault tests" streamfusion-gpu sf_gpu_multi_test
(cd "$BUILD" && timeout 100 ctest -L "gpu$NGPU" -R "fault" --output-on-failure) > "$O/ctest-faults.log" 2>&1
echo "ctest rc=$?" >> "$O/ctest-faults.log"
tail -12 "$O/ctest-faults.log"
