#!/usr/bin/env bash
# Session 29 (4 GPUs), third call: the local diagonal without its final barrier (two alternating packed sets)
# against the tree before (4242ac3 + test changes), emulated 2x2 and 4x1, SFU-NVSHMEM, 4 rounds; gpu4 layer tests.
set -uo pipefail
cd "$(dirname "$0")/.."
SF_AB_BASE=devrun/ab_base SF_AB_ROUNDS=4 \
  SF_AB_RUNS="-S 16384 -H 24 -D 128 --topology 2x2,4x1 --gbps 50 --schemes sfu -w 10 -n 30 --no-single --no-concurrent;-S 36864 -H 24 -D 128 --topology 2x2,4x1 --gbps 6.25 --schemes sfu -w 5 -n 15 --no-single --no-concurrent" \
  bash bench/sp/tree_ab.sh "${1:-/tmp/sf-s29c}"
