#!/usr/bin/env bash
# Two jobs of the built-in launcher on one host given the same MASTER_PORT (as two mpiruns with the default would
# be): the second job's rank 0 cannot listen there and fails, and its other ranks, greeted by the first job's store
# with another job's name, must not join it (they end with "a store of another job answered"); the first job runs
# through undisturbed. Before the greeting (2026-11-28) the second job's ranks would have joined the first's store.
#   store_two_jobs.sh <sf_launch_check> <sf_store_check>
set -uo pipefail
LAUNCH=${1:?usage: store_two_jobs.sh <sf_launch_check> <sf_store_check>}
CHECK=${2:?usage: store_two_jobs.sh <sf_launch_check> <sf_store_check>}
port=$((20000 + RANDOM % 12000))  # below the kernel's ephemeral range, as `streamfusion launch` picks its own
out=$(mktemp -d /tmp/sf-two-jobs.XXXXXX)
# Job A's rank 0 keeps its store up for 4 s after its ranks are done; job B starts 0.5 s after A on the same port.
# B's ranks give up on the store after 2 s, inside the launcher's grace, so that they say why.
"$LAUNCH" launch -n 3 --port "$port" --grace 10 -- "$CHECK" 6 4 > "$out/a.log" 2>&1 &
a=$!
sleep 0.5
"$LAUNCH" launch -n 3 --port "$port" --grace 10 -- "$CHECK" 2 > "$out/b.log" 2>&1 &
b=$!
wait "$a"; ra=$?
wait "$b"; rb=$?
echo "job A: exit $ra"; sed 's/^/  A| /' "$out/a.log"
echo "job B: exit $rb"; sed 's/^/  B| /' "$out/b.log"
# Exactly one job ran through; the other failed, its rank 0 on the port, none of its ranks inside the other's store.
ok=0
for pair in "$ra:$out/a.log:$rb:$out/b.log" "$rb:$out/b.log:$ra:$out/a.log"; do
  IFS=: read -r r1 l1 r2 l2 <<<"$pair"
  if [ "$r1" -eq 0 ] && grep -q "store ok: rank 0 of 3" "$l1" && [ "$r2" -ne 0 ] &&
    grep -q "rank 0 cannot listen on port $port" "$l2" && grep -q "a store of another job answered" "$l2"; then
    ok=1
  fi
done
rm -rf "$out"
[ "$ok" -eq 1 ] && echo "PASS: one job ran, the other's ranks kept out of its store" && exit 0
echo "FAIL: expected one job through and the other's ranks refused by the greeting"
exit 1
