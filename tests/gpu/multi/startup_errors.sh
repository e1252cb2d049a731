#!/usr/bin/env bash
# Start-up failures a user meets (issue 4: out-of-memory and plugin problems at start-up are clear errors): each case
# starts N ranks of a gpu-attention layer under the built-in launcher with one thing wrong, and passes when the job
# ends by itself (no hang: within the case's timeout), with a non-zero exit code, no crash (no signal: exit codes
# 129-192; no core), and a line that says what was wrong (the case's pattern). One PASS/FAIL line each; non-zero
# exit if any failed.
#   symmetric_heap_too_large   a fixed NVSHMEM heap far beyond the GPU's memory: NVSHMEM's start fails
#   symmetric_heap_exhausted   a fixed heap too small for the layer's symmetric buffers
#   gpu_memory_exhausted       a sequence whose buffers do not fit in the GPU
#   nccl_network_missing       NCCL_NET naming a network (plugin) that does not exist
#   different_builds           the last rank runs another build of streamfusion-gpu (a copy of the binary whose
#                              build id, `--version`, differs in its last character): refused before NCCL starts
#   nvshmem_no_transport       NVSHMEM with P2P off and no network: its initialization ends the process itself
#                              (exit 255), after which each rank's armed note (exit_note.h) says where and why
#   tests/gpu/multi/startup_errors.sh <streamfusion-gpu binary> <N GPUs>
# Env: SF_STARTUP_TIMEOUT_S (default 90, per case), SF_STARTUP_CASES (default: all, in the order above),
# SF_STARTUP_KEEP (a folder for every case's whole log).
set -uo pipefail

BIN=${1:?usage: startup_errors.sh <streamfusion-gpu binary> <N GPUs>}
N=${2:?usage: startup_errors.sh <streamfusion-gpu binary> <N GPUs>}
if ! [[ $N =~ ^[0-9]+$ ]] || [ "$N" -lt 1 ]; then
  echo "startup_errors.sh: N must be a number of GPUs >= 1 (got '$N')" >&2
  exit 2
fi
[ -x "$BIN" ] || { echo "startup_errors.sh: '$BIN' is not an executable" >&2; exit 2; }
T=${SF_STARTUP_TIMEOUT_S:-90}
LOGDIR=$(mktemp -d /tmp/sf-startup.XXXXXX)
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
# Waits end well inside the case's timeout, so that a rank left waiting for a failed peer says so and exits.
export SF_WATCHDOG_TIMEOUT_S=${SF_WATCHDOG_TIMEOUT_S:-30}
unset NVSHMEM_SYMMETRIC_SIZE NCCL_NET

LAYER=(gpu-attention -H 24 -D 128 --topology "1x$N" -w 0 -n 1)
# name | environment (space-separated, may be empty) | gpu-attention arguments | pattern of the explaining line
# NVSHMEM grows its heap on demand between P2P GPUs (CUDA VMM): there NVSHMEM_SYMMETRIC_SIZE is no limit (seen:
# 4096G started, and Flux S=65536 on 1x4 ran in 256M, 4x H200, 2026-11-28). The heap cases fix its size, as on
# hosts where VMM is off (a fixed 256M held that layer too: its symmetric buffers are smaller; S=131072's are not).
SZ=NVSHMEM_SYMMETRIC_SIZE
FIXED=NVSHMEM_DISABLE_CUDA_VMM=1
CASES=(
  "symmetric_heap_too_large|$FIXED $SZ=4096G|-S 4096 --schemes sfu|\
fixed symmetric heap \\(NVSHMEM_DISABLE_CUDA_VMM\\) of $SZ=4096G \\([0-9]+ MiB\\) does not fit in the GPU's"
  "symmetric_heap_exhausted|$FIXED $SZ=128M|-S 131072 --schemes sfu --no-single --no-concurrent|\
nvshmem_malloc of [0-9]+ MiB failed on rank [0-9]+: symmetric heap exhausted \\($SZ=128M\\); [0-9]+ of the GPU"
  "gpu_memory_exhausted|$SZ=1G|-S 33554432 --schemes usp --no-single --no-concurrent|\
cudaMalloc of [0-9]+ MiB on GPU [0-9]+ failed: out of memory \\([0-9]+ of [0-9]+ MiB free\\)"
  "nccl_network_missing|NCCL_NET=NoSuchNetwork $SZ=1G|-S 4096 --schemes usp|\
ncclCommInitRank with NCCL_NET=NoSuchNetwork: invalid usage .*NET plugin"
  "different_builds||-S 4096 --schemes usp|\
ranks run different StreamFusion versions: [^;]+ on ranks? [0-9, -]+ \\(hosts? [^)]+\\); [^;]+ on rank $((N - 1)) "
  "nvshmem_no_transport|NVSHMEM_DISABLE_P2P=1|-S 4096 --schemes sfu|\
\\[rank [0-9]+\\] NVSHMEM [0-9.]+ ended the process during its initialization .*NVSHMEM_DISABLE_P2P"
)

# The other build of different_builds: this binary with its build id changed (every copy of the id, so that the
# copy is consistent in itself); the ranks pick their binary by RANK, which the launcher sets.
OTHER=$LOGDIR/streamfusion-gpu-other
PYTHON=${PYTHON:-$(command -v python3 || echo /opt/torch/.venv/bin/python3)}
make_other_build() {
  local id
  id=$("$BIN" --version) || return 1
  "$PYTHON" - "$BIN" "$OTHER" "${id#StreamFusion }" <<'PY' && chmod +x "$OTHER"
import sys
src, dst, bid = sys.argv[1], sys.argv[2], sys.argv[3].encode()
data = open(src, "rb").read()
if bid not in data:
    sys.exit("build id %r not found in %s" % (bid, src))
open(dst, "wb").write(data.replace(bid, bid[:-1] + (b"X" if bid[-1:] != b"X" else b"Y")))
PY
}

passed=0 failed=0
echo "# startup_errors.sh: $BIN ${LAYER[*]} on $N GPUs, ${T} s per case; logs in $LOGDIR"
for entry in "${CASES[@]}"; do
  IFS='|' read -r name envs args pattern <<<"$entry"
  if [ -n "${SF_STARTUP_CASES:-}" ] && ! [[ " $SF_STARTUP_CASES " == *" $name "* ]]; then continue; fi
  out=$LOGDIR/$name.log
  t0=$SECONDS
  RANK_BIN=("$BIN")
  if [ "$name" = different_builds ]; then
    if ! make_other_build >"$out" 2>&1; then
      printf 'FAIL    %-26s could not make the other build: %s\n' "$name" "$(tail -n 1 "$out")"
      failed=$((failed + 1))
      continue
    fi
    # shellcheck disable=SC2016  # expanded by the rank's shell
    RANK_BIN=(env "SF_BIN=$BIN" "SF_OTHER=$OTHER" "LAST=$((N - 1))" bash -c \
      'if [ "$RANK" = "$LAST" ]; then exec "$SF_OTHER" "$@"; else exec "$SF_BIN" "$@"; fi' rank)
  fi
  # shellcheck disable=SC2086  # the case's variables and arguments are word lists
  timeout -k 10 "$T" env $envs "$BIN" launch -n "$N" --grace 10 -- "${RANK_BIN[@]}" "${LAYER[@]}" $args >"$out" 2>&1
  rc=$?
  why=""
  if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
    why="did not end within ${T} s (a hang)"
  elif [ "$rc" -eq 0 ]; then
    why="exit code 0: the job ran as if nothing were wrong"
  elif { [ "$rc" -gt 128 ] && [ "$rc" -le 192 ]; } ||
    grep -qE "Segmentation fault|core dumped|SIGSEGV|SIGABRT|Aborted" "$out"; then
    why="crashed (exit code $rc)"
  elif ! grep -qE "$pattern" "$out"; then
    why="no line says what was wrong (expected /$pattern/; exit code $rc)"
  fi
  if [ -z "$why" ]; then
    printf 'PASS    %-26s exit %d; %s (%d s)\n' "$name" "$rc" "$(grep -m1 -oE "$pattern" "$out" | cut -c1-160)" \
      $((SECONDS - t0))
    passed=$((passed + 1))
  else
    printf 'FAIL    %-26s %s (%d s)\n' "$name" "$why" $((SECONDS - t0))
    grep -m 6 -E "FATAL|[Ee]rror|failed|WARN" "$out" | cut -c1-300 | sed 's/^/    ! /'
    tail -n 8 "$out" | cut -c1-300 | sed 's/^/    | /'
    failed=$((failed + 1))
  fi
  if [ -n "${SF_STARTUP_KEEP:-}" ]; then mkdir -p "$SF_STARTUP_KEEP" && cp "$out" "$SF_STARTUP_KEEP/"; fi
done
echo "# startup errors: $passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
