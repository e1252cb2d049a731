#!/usr/bin/env bash
# Session 32 (4 GPUs), last call: the final tree's start-up paths: every launcher (slurm2's header without emulated
# links), the start-up errors, then the layer and exchange tests.
set -uo pipefail
cd "$(dirname "$0")/.."
. bench/sp/common.sh
sf_outdir /tmp/sf-s32e build.log "${1:-}"
sf_build_logged "s32 final start-up check" streamfusion-gpu sf_gpu_multi_test
SFG=$(sf_gpu_binary)
"$SFG" --version > "$OUTDIR/version.txt" 2>&1
SF_LAUNCHERS_KEEP=$OUTDIR/failed timeout 200 bash tests/gpu/multi/launchers.sh "$SFG" 4 > "$OUTDIR/launchers.log" 2>&1
echo "rc=$?" >> "$OUTDIR/launchers.log"
cp /tmp/sf-launchers.*/slurm2.log "$OUTDIR/" 2>/dev/null
cat "$OUTDIR/version.txt" "$OUTDIR/launchers.log"
grep -E "^# gpu-attention on" "$OUTDIR/slurm2.log" | cut -c1-300
SF_STARTUP_KEEP=$OUTDIR/startup4 timeout 120 bash tests/gpu/multi/startup_errors.sh "$SFG" 4 > "$OUTDIR/startup4.log" 2>&1
echo "rc=$?" >> "$OUTDIR/startup4.log"
cat "$OUTDIR/startup4.log"
cd "$BUILD"
timeout 100 ctest -R gpu4_layers_and_exchange --output-on-failure > "$OUTDIR/ctest_layers.log" 2>&1
echo "layers rc=$?" >> "$OUTDIR/ctest_layers.log"
grep -E 'Test +#|tests passed|rc=' "$OUTDIR/ctest_layers.log"
