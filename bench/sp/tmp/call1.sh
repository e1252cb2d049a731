#!/usr/bin/env bash
# Session 17: the multi-GPU tests of tree 5085da0 (after the MeshAttention split), and Torus segments A/B.
set -uo pipefail
cd "$(dirname "$0")/../../.."
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
export SF_BUILD=/tmp/sf-build
O=${OUT:-/tmp/out}
SF_AB_FLAG=--torus-chunks SF_AB_VALUES="1 2" SF_AB_SEQ=16384,36864 SF_AB_TOPOLOGIES=2x2,4x1 SF_AB_SCHEMES=sfu \
  SF_AB_GBPS=50 SF_AB_ROUNDS=2 timeout 230 bash bench/sp/split_ab.sh "$O/c12"
(cd /tmp/sf-build && timeout 200 ctest -L gpu4 -E "emulated_links|launchers" --output-on-failure) > "$O/ctest-gpu4.log" 2>&1
echo "ctest rc=$?" >> "$O/ctest-gpu4.log"
tail -4 "$O/ctest-gpu4.log"
SF_AB_FLAG=--torus-chunks SF_AB_VALUES="0 2" SF_AB_SEQ=16384,36864 SF_AB_TOPOLOGIES=2x2 SF_AB_SCHEMES=sfu \
  SF_AB_GBPS=6.25 SF_AB_ROUNDS=2 timeout 100 bash bench/sp/split_ab.sh "$O/c02"
cd "$O" && tar czf logs.tgz c12 c02 ctest-gpu4.log && cp c12/AB.md AB12.md; cp c02/AB.md AB02.md; rm -rf c12 c02
