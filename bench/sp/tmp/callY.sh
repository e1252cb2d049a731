#!/usr/bin/env bash
# Session 17: CogVideoX S=81920 at 6.25 GB/s, emulation booking the initiator's side only (base) vs flows through
# both NICs (new).
set -uo pipefail
cd "$(dirname "$0")/../../.."
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
export SF_BUILD=/tmp/sf-build
O=${OUT:-/tmp/out}
SF_SKIP_TESTS=1 SF_AB_BASE=ab_base SF_AB_ROUNDS=2 \
  SF_AB_RUNS="-S 81920 -H 48 -D 64 --topology 4x1,2x2 --gbps 6.25 --schemes sfu,usp --no-single --no-concurrent -w 1 -n 5" \
  timeout 400 bash bench/sp/tree_ab.sh "$O/ab"
cd "$O" && cp ab/TREE_AB.md . && tar czf logs.tgz ab && rm -rf ab
