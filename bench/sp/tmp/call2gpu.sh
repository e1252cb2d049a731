#!/usr/bin/env bash
# Session 17, a 2-GPU call: the first call beside the packing (tree A/B on 2x1 and 1x2), then ctest -L gpu2.
set -uo pipefail
cd "$(dirname "$0")/../../.."
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
export SF_BUILD=/tmp/sf-build
O=${OUT:-/tmp/out}
SF_SKIP_TESTS=1 SF_AB_BASE=ab_base SF_AB_ROUNDS=2 \
  SF_AB_RUNS="-S 16384,36864 -H 24 -D 128 --topology 2x1,1x2 --gbps 50 --schemes sfu,usp -w 3 -n 9" \
  timeout 330 bash bench/sp/tree_ab.sh "$O/ab"
(cd /tmp/sf-build && timeout 200 ctest -L gpu2 -E "emulated_links|launchers" --output-on-failure) > "$O/ctest-gpu2.log" 2>&1
echo "ctest rc=$?" >> "$O/ctest-gpu2.log"
tail -5 "$O/ctest-gpu2.log"
cd "$O" && tar czf logs.tgz ab ctest-gpu2.log && cp ab/TREE_AB.md . && rm -rf ab
