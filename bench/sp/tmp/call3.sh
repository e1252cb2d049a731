#!/usr/bin/env bash
# Session 17: Torus segments where a one-busy-wave rule would change the automatic choice (6.25 GB/s cells).
set -uo pipefail
cd "$(dirname "$0")/../../.."
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
export SF_BUILD=/tmp/sf-build
O=${OUT:-/tmp/out}
ab() { SF_AB_FLAG=--torus-chunks SF_AB_VALUES="$1" SF_AB_SEQ=$2 SF_AB_TOPOLOGIES=$3 SF_AB_SCHEMES=sfu \
  SF_AB_GBPS=6.25 SF_AB_ROUNDS=2 timeout 150 bash bench/sp/split_ab.sh "$O/$4"; }
ab "1 3" 36864 4x1 c13
ab "3 4" 36864 2x2 c34
ab "2 4" 65536 4x1 c24
cd "$O" && for d in c13 c34 c24; do cp $d/AB.md AB-$d.md; done; tar czf logs.tgz c13 c34 c24 && rm -rf c13 c34 c24
