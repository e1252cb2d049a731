#!/usr/bin/env bash
# A stand-in for streamfusion-gpu, so that a CPU build runs tests/gpu/multi/launchers.sh's own logic (how each
# launcher is started, with which variables, GPUs and layers, and how its output is judged) before GPU time is
# spent on it: `launch ...` is the built-in launcher (sf_launch_check), and `gpu-attention ...` runs the GPU ranks'
# real bootstrap (sf_store_check: launch_env.cpp, then the store), after which rank 0 prints its rank source and
# an ok row per asked scheme on the asked topology, as gpu-attention would. No GPU work, no attention.
#   env SF_LAUNCH_CHECK=<sf_launch_check> SF_STORE_CHECK=<sf_store_check> stand_in_streamfusion_gpu.sh ...
set -uo pipefail
if [ "${1:-}" = launch ]; then
  shift
  exec "$SF_LAUNCH_CHECK" launch "$@"
fi
out=$("$SF_STORE_CHECK" 20) || { echo "stand-in: the bootstrap failed: $out" >&2; exit 1; }
[ -n "$out" ] || exit 0  # ranks other than 0 print nothing
source=$(sed -E 's/^store ok: rank 0 of [0-9]+ \((.*)\), job.*/\1/' <<<"$out")
world=$(sed -E 's/^store ok: rank 0 of ([0-9]+).*/\1/' <<<"$out")
topology=$(sed -E 's/.*--topology ([^ ]+).*/\1/' <<<"$*")
schemes=$(sed -E 's/.*--schemes ([^ ]+).*/\1/' <<<"$*")
echo "# launch: rank source = $source; world $world (stand-in; CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES:-})"
for s in ${schemes//,/ }; do
  echo "| B=1 S=4096 H=24 D=128 bf16 | $topology | stand-in | $s | - | - | 0 | 0 | 0 | 0 | 0 | 0 | 0 | 0 | ok |"
done
echo "# gpu-attention: all outputs match the one-GPU result"
