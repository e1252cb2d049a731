#!/usr/bin/env bash
# Session 28 (2 GPUs): the local diagonal's partials merged as their arrival signals come (put_signal /
# wait_signal), before our rows' last call on two machines, against the committed tree (merged after the layer's
# last barrier): SFU on emulated 2x1, Flux S=16384 and 36864, 50 and 6.25 GB/s; then the gpu2 layer/exchange test.
set -uo pipefail
cd "$(dirname "$0")/.."
export SF_AB_BASE=devrun/ab_base SF_AB_ROUNDS=2
export SF_AB_RUNS="-S 16384,36864 -H 24 -D 128 --topology 2x1 --gbps 50 --schemes sfu -w 10 -n 30 --no-single --no-concurrent --local-diagonal on"
export SF_AB_EXTRA=""
bash bench/sp/tree_ab.sh "$1"
