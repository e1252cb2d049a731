#!/usr/bin/env bash
# Session 31 (4 GPUs), third call: the bootstrap store's new greeting and port list (210ac63) under every launcher,
# torchrun five times (one start in about ten failed on MASTER_PORT+1); the fault tests and the layer test (every
# launch goes through the store); then steady_1x4.sh (S=65536, no ctest) on this host.
set -uo pipefail
cd "$(dirname "$0")/.."
. bench/sp/common.sh
sf_outdir /tmp/sf-s31c build.log "${1:-}"
sf_build_logged "s31 store, launchers, steady 1x4" streamfusion-gpu sf_gpu_multi_test
SFG=$(sf_gpu_binary)
SF_LAUNCHERS="torchrun builtin mpirun torchrun slurm env torchrun torchrun torchrun" \
  SF_LAUNCHERS_KEEP=$OUTDIR/launchers timeout 330 bash tests/gpu/multi/launchers.sh "$SFG" 4 \
  > "$OUTDIR/launchers.log" 2>&1
echo "launchers rc=$?" >> "$OUTDIR/launchers.log"
cat "$OUTDIR/launchers.log"
(cd "$BUILD" && timeout 200 ctest -L gpu4 -R 'fault|layers_and_exchange' --output-on-failure > "$OUTDIR/ctest.log" 2>&1;
 echo "ctest rc=$?" >> "$OUTDIR/ctest.log")
grep -E 'Test +#|tests passed|rc=' "$OUTDIR/ctest.log"
SF_STEADY_CTEST=0 SF_SUSTAIN_S=2 timeout 200 bash bench/sp/steady_1x4.sh "$OUTDIR/steady-1x4" > /dev/null 2>&1
echo "steady rc=$?"
grep -E 'SFU-NVSHMEM|match' "$OUTDIR/steady-1x4/steady.log" | head; cat "$OUTDIR/steady-1x4/torch.jsonl"
