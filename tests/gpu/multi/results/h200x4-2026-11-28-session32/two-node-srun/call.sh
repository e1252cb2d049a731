#!/usr/bin/env bash
# Session 32 (4 GPUs): the multi-host path on one host (launchers.sh slurm2: srun's variables of two nodes, no
# MASTER_ADDR, each node's ranks seeing their half of the GPUs), beside slurm, builtin and env.
set -uo pipefail
cd "$(dirname "$0")/.."
. bench/sp/common.sh
sf_outdir /tmp/sf-s32d build.log "${1:-}"
sf_build_logged "s32 two-node srun on one host" streamfusion-gpu
SFG=$(sf_gpu_binary)
SF_LAUNCHERS="slurm2 slurm builtin env" SF_LAUNCHERS_KEEP=$OUTDIR/failed timeout 240 bash tests/gpu/multi/launchers.sh \
  "$SFG" 4 > "$OUTDIR/launchers.log" 2>&1
echo "rc=$?" >> "$OUTDIR/launchers.log"
cp /tmp/sf-launchers.*/slurm2.log "$OUTDIR/" 2>/dev/null
cat "$OUTDIR/launchers.log"
grep -E "launch: rank source|\| B=" "$OUTDIR/slurm2.log" | cut -c1-240
