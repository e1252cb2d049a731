#!/usr/bin/env bash
# Session 17: one-sided transfers book the peer's NIC too. gpu-links (fan-in), tree A/B against the emulation that
# booked the initiator's side only, and the 4-GPU layer test.
set -uo pipefail
cd "$(dirname "$0")/../../.."
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
export SF_BUILD=/tmp/sf-build
O=${OUT:-/tmp/out}
mkdir -p "$O"
SF_AB_BASE=ab_base SF_AB_ROUNDS=2 \
  SF_AB_RUNS="-S 16384,36864 -H 24 -D 128 --topology 2x2,4x1 --gbps 50,6.25 --schemes sfu,torus -w 3 -n 9" \
  timeout 420 bash bench/sp/tree_ab.sh "$O/ab"
SFG=$(find /tmp/sf-build -name streamfusion-gpu -type f -perm -u+x | head -1)
timeout 100 "$SFG" launch -n 4 --grace 15 -- "$SFG" gpu-links --topology 2x2 --gbps 50,6.25 --sizes-mib 64 \
  --busy-seq 0 --json "$O/links.jsonl" > "$O/links.log" 2>&1
echo "links rc=$?" >> "$O/links.log"
cat "$O/links.log"
cd "$O" && cp ab/TREE_AB.md . && tar czf logs.tgz ab links.log links.jsonl && rm -rf ab
