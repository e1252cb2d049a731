#!/usr/bin/env bash
# gpu-links on a job that spans two "hosts" of this one (issue 4: nothing assumes one host): the built-in launcher
# once per host (--nnodes 2), each host's ranks seeing only its half of the GPUs, as launchers.sh's builtin2. There
# nothing is emulated and gpu-links only measures the real links, over NCCL and NVSHMEM (which sees one host here,
# one host name, and joins the halves over NVLink: a real second host needs its remote transport). Passes when both
# launches exit 0, rank 0 names the hosts' topology and says the links are real, and every row is measured with
# exact data (each backend's inter row with the --gbps it suggests).
#   tests/gpu/multi/links_two_hosts.sh <streamfusion-gpu binary> <N GPUs, even>
set -uo pipefail
BIN=${1:?usage: links_two_hosts.sh <streamfusion-gpu binary> <N GPUs>}
N=${2:?usage: links_two_hosts.sh <streamfusion-gpu binary> <N GPUs>}
if ! [[ $N =~ ^[0-9]+$ ]] || [ "$N" -lt 2 ] || [ $((N % 2)) -ne 0 ]; then
  echo "links_two_hosts.sh: N must be an even number of GPUs >= 2 (got '$N')" >&2
  exit 2
fi
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1 SF_WATCHDOG_TIMEOUT_S=60
unset RANK WORLD_SIZE LOCAL_RANK LOCAL_WORLD_SIZE MASTER_ADDR MASTER_PORT
half=$((N / 2)) port=$((20000 + RANDOM % 12000)) out=$(mktemp -d /tmp/sf-links-two-hosts.XXXXXX)
pids=()
for k in 1 0; do
  gpus=$(seq -s, $((k * half)) $(((k + 1) * half - 1)))
  CUDA_VISIBLE_DEVICES=$gpus timeout -k 10 240 "$BIN" launch -n "$half" --nnodes 2 --node-rank "$k" \
    --master-addr 127.0.0.1 --port "$port" --grace 10 -- "$BIN" gpu-links --backend nccl,nvshmem --busy-seq 0 \
    > "$out/host$k.log" 2>&1 &
  pids+=($!)
done
rc=0
for p in "${pids[@]}"; do wait "$p" || rc=$?; done
cat "$out/host0.log"
[ "$rc" -eq 0 ] || { echo "FAIL: a launch exited $rc"; cat "$out/host1.log"; exit 1; }
grep -q "topology 2x$half (real links between the hosts: measured, nothing emulated)" "$out/host0.log" ||
  { echo "FAIL: rank 0 did not report the hosts' topology 2x$half with real links"; exit 1; }
for backend in nccl nvshmem; do
  grep -qE "^\| $backend +\| inter .*measured \(gpu-attention --gbps [0-9.]+ for the planner\)" "$out/host0.log" ||
    { echo "FAIL: no measured inter-host row of $backend"; exit 1; }
done
if grep -qE "FAIL|WRONG DATA" "$out/host0.log"; then echo "FAIL: a row failed"; exit 1; fi
echo "PASS: gpu-links measured the real links of a job on two hosts"
