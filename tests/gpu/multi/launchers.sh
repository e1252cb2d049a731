#!/usr/bin/env bash
# Launcher check (issue 4): one small correctness-checked gpu-attention layer (usp and sfu on an emulated
# 2x(N/2) topology) under every way of starting ranks that launch_env.cpp reads:
#   builtin   streamfusion-gpu launch -n N --             (RANK/WORLD_SIZE/LOCAL_RANK/..., MASTER_ADDR/PORT)
#   mpirun    mpirun --allow-run-as-root -np N            (OMPI_COMM_WORLD_*)
#   torchrun  python -m torch.distributed.run --no-python (RANK/..., TORCHELASTIC_*; torchrun's agent store)
#   slurm     SLURM_PROCID/SLURM_NTASKS/SLURM_LOCALID/SLURM_NNODES set by hand for N background processes
#   slurm2    srun's variables of a step on two nodes by hand, no MASTER_ADDR (the store is found on the step's first
#             node, SLURM_STEP_NODELIST: this host): each half of the ranks sees its own half of the GPUs
#             (CUDA_VISIBLE_DEVICES) as a node would, so the job spans two "hosts" (the host's name told apart by
#             the node's number) and runs the multi-host path: machines = hosts, nothing emulated. Its layers are
#             usp, tas and sfu. NVSHMEM itself sees one host here (one host name) and joins the halves over NVLink,
#             so sfu runs our multi-host path one-sided, not NVSHMEM's remote transport (a real second host needs
#             one: InfiniBand or RoCE)
#   builtin2  streamfusion-gpu launch once per "host" (--nnodes 2 --node-rank K --master-addr 127.0.0.1), each
#             launch's ranks seeing their half of the GPUs as slurm2's do; usp, tas and sfu
#   env       RANK/WORLD_SIZE/LOCAL_RANK/LOCAL_WORLD_SIZE set by hand for N background processes
# A launcher passes when rank 0 alone reports itself (one "launch: rank source" line, the expected source, a
# world of N), every layer matches the one-GPU result, and every process exits 0. A missing tool is SKIPPED, not
# passed. Every launch runs under a timeout, so ranks that never meet end in FAIL, not a hang.
#   tests/gpu/multi/launchers.sh <streamfusion-gpu binary> <N GPUs>
# Env: SF_LAUNCHER_TIMEOUT_S (default 45, per launcher), SF_LAUNCHERS (default "builtin mpirun torchrun slurm
# slurm2 builtin2 env"), SF_MPIRUN (default: mpirun on PATH), SF_PYTHON (default /opt/torch/.venv/bin/python3, else python3),
# SF_LAUNCHERS_KEEP (a folder for the whole logs of failed launchers).
set -uo pipefail

BIN=${1:?usage: launchers.sh <streamfusion-gpu binary> <N GPUs>}
N=${2:?usage: launchers.sh <streamfusion-gpu binary> <N GPUs>}
if ! [[ $N =~ ^[0-9]+$ ]] || [ "$N" -lt 2 ] || [ $((N % 2)) -ne 0 ]; then
  echo "launchers.sh: N must be an even number of GPUs >= 2 (got '$N'): the layer runs on 2x(N/2)" >&2
  exit 2
fi
[ -x "$BIN" ] || { echo "launchers.sh: '$BIN' is not an executable" >&2; exit 2; }
T=${SF_LAUNCHER_TIMEOUT_S:-45}
TOPO=2x$((N / 2))
ARGS=(gpu-attention -S 4096 -H 24 -D 128 --topology "$TOPO" --gbps 50 --schemes "usp,sfu" -w 0 -n 1)
# The jobs that span two "hosts" (slurm2, builtin2) add TAS, whose Ulysses level then crosses the hosts.
ARGS_TWO_HOSTS=("${ARGS[@]/#usp,sfu/usp,tas,sfu}")
LOGDIR=$(mktemp -d /tmp/sf-launchers.XXXXXX)

# Start every launcher from the same clean slate: variables of an outer launcher (a Slurm allocation, a torchrun
# around ctest) would otherwise decide the rank instead of the launcher under test.
unset RANK WORLD_SIZE LOCAL_RANK LOCAL_WORLD_SIZE GROUP_RANK MASTER_ADDR MASTER_PORT \
  OMPI_COMM_WORLD_RANK OMPI_COMM_WORLD_SIZE OMPI_COMM_WORLD_LOCAL_RANK OMPI_COMM_WORLD_LOCAL_SIZE \
  SLURM_PROCID SLURM_NTASKS SLURM_LOCALID SLURM_NNODES TORCHELASTIC_RUN_ID TORCHELASTIC_USE_AGENT_STORE \
  SF_LAUNCH_ID PMIX_NAMESPACE OMPI_MCA_ess_base_jobid SLURM_JOB_ID SLURM_STEP_ID SLURM_NODEID \
  SLURM_STEP_TASKS_PER_NODE SLURM_TASKS_PER_NODE SLURM_STEP_NODELIST SLURM_JOB_NODELIST SLURM_NODELIST SLURMD_NODENAME
# NVLink multicast stays off on shared machines (GPU-MACHINES.md); `launch` sets these itself, the others don't.
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
# A small layer needs a small symmetric heap (the default 24 GiB only slows NVSHMEM's start-up).
export NVSHMEM_SYMMETRIC_SIZE=${NVSHMEM_SYMMETRIC_SIZE:-2147483648}
# The program's watchdog names the blocked operation before the launch timeout kills it.
export SF_WATCHDOG_TIMEOUT_S=${SF_WATCHDOG_TIMEOUT_S:-$((T > 20 ? T - 10 : T))}

# Every process this check starts carries this marker in its environment, so whatever a launcher leaves behind
# (ranks orphaned by a killed launcher) is found and killed before the next launcher needs the GPUs.
export SF_LAUNCHER_CHECK="$$-$RANDOM"
kill_leftovers() {
  local e p killed=0
  for e in /proc/[0-9]*/environ; do
    p=${e#/proc/}
    p=${p%/environ}
    [ "$p" = "$$" ] && continue
    if grep -qzx "SF_LAUNCHER_CHECK=$SF_LAUNCHER_CHECK" "$e" 2>/dev/null && kill -KILL "$p" 2>/dev/null; then
      killed=$((killed + 1))
    fi
  done
  [ "$killed" -eq 0 ] || echo "    ($killed process(es) of this launcher were still running afterwards: killed)"
}

LIVE=()  # processes of the running hand-made launch, stopped if this script is stopped
cleanup() {
  local p
  for p in "${LIVE[@]}"; do [ -n "$p" ] && kill -TERM "$p" 2>/dev/null; done
}
trap 'cleanup; kill_leftovers' EXIT
trap 'exit 143' INT TERM

# A port free now on every address (rank 0's store binds INADDR_ANY) and below the kernel's ephemeral range (32768
# and up by default), as `streamfusion-gpu launch` picks its own: a port the kernel handed out and we released could
# be handed out again before rank 0 binds it, and mpirun's daemons take several (session 23: "rank 0 cannot listen
# on port 43963: Address already in use" under mpirun, on the port the old bind(0) pick had just found).
free_port() {
  python3 -c '
import random, socket
for _ in range(200):
    port = random.randrange(20000, 32000)
    s = socket.socket()
    try:
        s.bind(("", port))
    except OSError:
        continue
    finally:
        s.close()
    print(port)
    break' 2>/dev/null | grep . || echo $((20000 + RANDOM % 12000))
}

# Waits for the pids in LIVE; returns the first non-zero exit code. After a failure the others get 15 s (their
# watchdogs report where they are stuck), then SIGTERM; at the deadline everything left is stopped (rc 124).
wait_group() {
  local deadline=$((SECONDS + T + 5)) stop_at=0 rc=0 alive i code
  while :; do
    alive=0
    for i in "${!LIVE[@]}"; do
      [ -z "${LIVE[$i]}" ] && continue
      if kill -0 "${LIVE[$i]}" 2>/dev/null; then alive=1; continue; fi
      wait "${LIVE[$i]}"
      code=$?
      LIVE[i]=""
      if [ "$code" -ne 0 ] && [ "$rc" -eq 0 ]; then rc=$code; stop_at=$((SECONDS + 15)); fi
    done
    [ "$alive" -eq 0 ] && break
    if [ "$SECONDS" -ge "$deadline" ] || { [ "$stop_at" -gt 0 ] && [ "$SECONDS" -ge "$stop_at" ]; }; then
      [ "$rc" -eq 0 ] && rc=124
      cleanup
      sleep 3
      for i in "${!LIVE[@]}"; do [ -n "${LIVE[$i]}" ] && kill -KILL "${LIVE[$i]}" 2>/dev/null; done
      wait 2>/dev/null
      break
    fi
    sleep 0.2
  done
  LIVE=()
  return "$rc"
}

# N background processes with a launcher's variables set by hand: KIND is slurm, slurm2 or env.
run_by_hand() {
  local kind=$1 out=$2 port r half=$((N / 2)) host args=("${ARGS[@]}")
  port=$(free_port)
  host=$(hostname)
  for ((r = 0; r < N; r++)); do
    local vars node gpus
    if [ "$kind" = slurm ]; then
      vars=("SLURM_PROCID=$r" "SLURM_NTASKS=$N" "SLURM_LOCALID=$r" SLURM_NNODES=1 MASTER_ADDR=127.0.0.1)
    elif [ "$kind" = slurm2 ]; then
      node=$((r / half))
      gpus=$(half_of_gpus "$node")
      vars=("SLURM_PROCID=$r" "SLURM_NTASKS=$N" "SLURM_LOCALID=$((r % half))" SLURM_NNODES=2 "SLURM_NODEID=$node"
        "SLURM_STEP_TASKS_PER_NODE=$half(x2)" "SLURM_STEP_NODELIST=$host,$host" "CUDA_VISIBLE_DEVICES=$gpus")
      args=("${ARGS_TWO_HOSTS[@]}")
    else
      vars=("RANK=$r" "WORLD_SIZE=$N" "LOCAL_RANK=$r" "LOCAL_WORLD_SIZE=$N" MASTER_ADDR=127.0.0.1)
    fi
    timeout -k 5 "$T" env "${vars[@]}" MASTER_PORT="$port" "$BIN" "${args[@]}" >>"$out" 2>&1 &
    LIVE+=($!)
  done
  wait_group
}

# The GPUs of "host" K of two: its half of the N, as CUDA_VISIBLE_DEVICES lists them.
half_of_gpus() {
  local k=$1 half=$((N / 2)) g list=""
  for ((g = k * half; g < (k + 1) * half; g++)); do list+="${list:+,}$g"; done
  echo "$list"
}

# The built-in launcher once per "host" of two, node 1's first (its ranks wait for rank 0's store).
run_builtin_on_two_hosts() {
  local out=$1 port k
  port=$(free_port)
  for k in 1 0; do
    timeout -k 10 "$T" env "CUDA_VISIBLE_DEVICES=$(half_of_gpus "$k")" "$BIN" launch -n $((N / 2)) --nnodes 2 \
      --node-rank "$k" --master-addr 127.0.0.1 --port "$port" --grace 10 -- "$BIN" "${ARGS_TWO_HOSTS[@]}" \
      >>"$out" 2>&1 &
    LIVE+=($!)
  done
  wait_group
}

python_with_torch() {
  local py=${SF_PYTHON:-/opt/torch/.venv/bin/python3}
  [ -x "$py" ] || py=python3
  "$py" -c "import torch.distributed.run" >/dev/null 2>&1 && echo "$py"
}

# Runs one launcher, its output into OUT; returns its exit code, or 99 with SKIP_WHY set when its tool is missing.
SKIP_WHY=""
launch() {
  local which=$1 out=$2
  case $which in
    builtin)
      timeout -k 10 "$T" "$BIN" launch -n "$N" --grace 10 -- "$BIN" "${ARGS[@]}" >"$out" 2>&1 ;;
    mpirun)
      local mpirun=${SF_MPIRUN:-$(command -v mpirun)}
      if [ -z "$mpirun" ] || [ ! -x "$mpirun" ]; then SKIP_WHY="mpirun not found"; return 99; fi
      # -x passes variables on (needed for ranks on other hosts; local ranks inherit them anyway). On one host
      # 127.0.0.1 and port 29500 are the program's defaults; a free port keeps parallel jobs apart.
      local pass=(-x NCCL_NVLS_ENABLE -x TORCH_SYMM_MEM_DISABLE_MULTICAST -x NVSHMEM_DISABLE_NVLS
        -x NVSHMEM_SYMMETRIC_SIZE -x SF_WATCHDOG_TIMEOUT_S -x SF_LAUNCHER_CHECK -x MASTER_ADDR=127.0.0.1
        -x MASTER_PORT="$(free_port)")
      [ -n "${LD_LIBRARY_PATH:-}" ] && pass+=(-x LD_LIBRARY_PATH)
      # SIGINT: on SIGTERM, Open MPI 4.1's mpirun exits and leaves its ranks running (seen with 4.1.4).
      timeout -s INT -k 10 "$T" "$mpirun" --allow-run-as-root --oversubscribe --bind-to none -np "$N" "${pass[@]}" \
        "$BIN" "${ARGS[@]}" >"$out" 2>&1 ;;
    torchrun)
      local py
      py=$(python_with_torch) || {
        SKIP_WHY="no python with torch (tried ${SF_PYTHON:-/opt/torch/.venv/bin/python3}, python3)"
        return 99
      }
      timeout -k 10 "$T" "$py" -m torch.distributed.run --standalone --nproc-per-node "$N" --no-python \
        "$BIN" "${ARGS[@]}" >"$out" 2>&1 ;;
    slurm | slurm2 | env)
      run_by_hand "$which" "$out" ;;
    builtin2)
      run_builtin_on_two_hosts "$out" ;;
  esac
}

# Judges one launcher's output: prints "PASS|FAIL <message>".
judge() {
  local out=$1 rc=$2 want=$3 layers=$4 rows=$5 lines src world ok_rows
  lines=$(grep -c "launch: rank source = " "$out")
  src=$(grep -m1 -o "launch: rank source = [^;]*" "$out" | sed 's/^launch: rank source = //')
  world=$(grep -m1 -o "launch: rank source = .*; world [0-9]*" "$out" | sed 's/.*; world //')
  ok_rows=$(grep -cE "^\| [^|]+ \| $TOPO \| .*\| ok( \(fallback kernel\))? \|$" "$out")
  if [ "$lines" -gt 1 ]; then
    echo "FAIL $lines processes each took themselves for rank 0 (source '$src', world ${world:-?}): the program" \
      "did not see this launcher's rank variables"
  elif [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
    echo "FAIL timed out after ${T} s (rank source '${src:-not reported}', world ${world:-?}," \
      "$ok_rows/$rows layers done)"
  elif [ "$lines" -eq 0 ]; then
    echo "FAIL rank 0 never reported its rank source (exit code $rc)"
  elif [ "$world" != "$N" ]; then
    echo "FAIL rank 0 saw a world of $world processes, expected $N (rank source '$src')"
  elif ! [[ $src =~ $want ]]; then
    echo "FAIL rank source '$src', expected /$want/"
  elif [ "$rc" -ne 0 ]; then
    echo "FAIL exit code $rc (rank source '$src', $ok_rows/$rows layers ok)"
  elif [ "$ok_rows" -ne "$rows" ] || ! grep -q "all outputs match the one-GPU result" "$out"; then
    echo "FAIL $ok_rows of $rows layers ($layers on $TOPO) reported ok (rank source '$src')"
  else
    echo "PASS rank source = $src; world $N; $layers on $TOPO match the one-GPU result"
  fi
}

declare -A WANT=([builtin]='^RANK/WORLD_SIZE$' [mpirun]='^Open MPI$' [torchrun]='^torchrun' [slurm]='^Slurm$'
  [slurm2]='^Slurm \(MASTER_ADDR: the first node of SLURM_STEP_NODELIST\)$' [builtin2]='^RANK/WORLD_SIZE$'
  [env]='^RANK/WORLD_SIZE$')
echo "# launchers.sh: $BIN ${ARGS[*]} on $N GPUs, ${T} s per launcher; logs in $LOGDIR"
passed=0 failed=0 skipped=0
for which in ${SF_LAUNCHERS:-builtin mpirun torchrun slurm slurm2 builtin2 env}; do
  [ -n "${WANT[$which]:-}" ] || { echo "launchers.sh: unknown launcher '$which'" >&2; exit 2; }
  out=$LOGDIR/$which.log
  : >"$out"
  t0=$SECONDS
  launch "$which" "$out"
  rc=$?
  if [ "$rc" -eq 99 ]; then
    printf '%-7s %-9s %s\n' SKIPPED "$which" "$SKIP_WHY"
    skipped=$((skipped + 1))
    continue
  fi
  layers="usp and sfu" rows=2
  [[ $which == *2 ]] && layers="usp, tas and sfu" rows=3
  verdict=$(judge "$out" "$rc" "${WANT[$which]}" "$layers" "$rows")
  printf '%-7s %-9s %s (%d s)\n' "${verdict%% *}" "$which" "${verdict#* }" $((SECONDS - t0))
  if [ "${verdict%% *}" = PASS ]; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    # The ranks' own error lines first (a launcher's summary, as torchrun's, can push them out of the tail).
    grep -m 8 -E "FATAL|[Ee]rror|what\(\)|Abort|terminate" "$out" | sed 's/^/    ! /'
    tail -n 15 "$out" | sed 's/^/    | /'
    # SF_LAUNCHERS_KEEP=DIR: a copy of the failed launcher's whole log (the temporary folder goes with the host).
    if [ -n "${SF_LAUNCHERS_KEEP:-}" ]; then
      mkdir -p "$SF_LAUNCHERS_KEEP" && cp "$out" "$SF_LAUNCHERS_KEEP/$((passed + failed))-$which.log"
    fi
  fi
  kill_leftovers
done
echo "# launchers: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
