#!/usr/bin/env bash
# The built-in launcher on two "hosts" (two launches on this one, as on two hosts they would run one each): node 1's
# launch starts first, node 0's (whose rank 0 serves the store) a second later, and all four ranks run the GPU
# ranks' bootstrap (launch_env.cpp, tcp_store.cpp: the store on --master-addr, greeted with the job's name, a gather
# in rank order, a barrier). Both launches must exit 0 and rank 0 report a world of 4 spanning two hosts.
#   launch_two_nodes.sh <sf_launch_check> <sf_store_check>
set -uo pipefail
LAUNCH=${1:?usage: launch_two_nodes.sh <sf_launch_check> <sf_store_check>}
CHECK=${2:?usage: launch_two_nodes.sh <sf_launch_check> <sf_store_check>}
port=$((20000 + RANDOM % 12000))  # below the kernel's ephemeral range, as `streamfusion launch` picks its own
out=$(mktemp -d /tmp/sf-two-nodes.XXXXXX)
common=(-n 2 --nnodes 2 --master-addr 127.0.0.1 --port "$port" --grace 5)
"$LAUNCH" launch "${common[@]}" --node-rank 1 -- "$CHECK" 15 > "$out/node1.log" 2>&1 &
n1=$!
sleep 1
"$LAUNCH" launch "${common[@]}" --node-rank 0 -- "$CHECK" 15 > "$out/node0.log" 2>&1 &
n0=$!
wait "$n0"; r0=$?
wait "$n1"; r1=$?
echo "node 0: exit $r0"; sed 's/^/  0| /' "$out/node0.log"
echo "node 1: exit $r1"; sed 's/^/  1| /' "$out/node1.log"
want="store ok: rank 0 of 4 (RANK/WORLD_SIZE), job 'streamfusion launch 127.0.0.1:$port/2x2', ports $port"
ok=0
[ "$r0" -eq 0 ] && [ "$r1" -eq 0 ] && grep -qF "$want" "$out/node0.log" && ok=1
rm -rf "$out"
[ "$ok" -eq 1 ] && echo "PASS: two launches made one job of 4 ranks" && exit 0
echo "FAIL: expected both launches to exit 0 and rank 0 to say: $want"
exit 1
