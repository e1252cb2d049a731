#!/usr/bin/env bash
# Where a fault test's time goes: runs `sf_gpu_multi_test --fault KIND` under the built-in launcher for each kind,
# every output line stamped with seconds since the launch, and the ranks' processes sampled every 0.5 s (state and
# the kernel function each waits in: `wchan`), so that the time from the fault to the report and from the report
# to every process's exit can be read off.
#   tests/gpu/multi/fault_timing.sh <build dir> <N GPUs> <output dir> [kinds, default "nccl nvshmem link"]
set -uo pipefail

BUILD=${1:?usage: fault_timing.sh <build dir> <N GPUs> <output dir> [kinds]}
N=${2:?usage: fault_timing.sh <build dir> <N GPUs> <output dir> [kinds]}
OUTDIR=${3:?usage: fault_timing.sh <build dir> <N GPUs> <output dir> [kinds]}
KINDS=${4:-nccl nvshmem link}
BIN=$(find "$BUILD" -name streamfusion-gpu -type f -perm -u+x | head -1)
TEST=$(find "$BUILD" -name sf_gpu_multi_test -type f -perm -u+x | head -1)
[ -x "$BIN" ] && [ -x "$TEST" ] || { echo "fault_timing.sh: no streamfusion-gpu / sf_gpu_multi_test in $BUILD" >&2; exit 2; }
mkdir -p "$OUTDIR"
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
# The variable overrides --timeout, and the bench scripts export 90 s.
export SF_WATCHDOG_TIMEOUT_S=8

now_us() { echo "${EPOCHREALTIME/./}"; }
stamp() {  # prefixes each line with the seconds since $1 (microseconds since the epoch)
  local t0=$1 line d
  while IFS= read -r line; do
    d=$(($(now_us) - t0))
    printf '%4d.%03d  %s\n' $((d / 1000000)) $((d / 1000 % 1000)) "$line"
  done
}

for kind in $KINDS; do
  log=$OUTDIR/fault_$kind.log
  t0=$(now_us)
  echo "# fault $kind, $N ranks, $(date -u +%FT%TZ); seconds since the launch" > "$log"
  (timeout 110 "$BIN" launch -n "$N" --grace 20 -- "$TEST" --fault "$kind" --timeout 8 2>&1; echo "launcher rc=$?") |
    stamp "$t0" >> "$log" &
  runner=$!
  while kill -0 "$runner" 2>/dev/null; do
    ps -eo pid,stat,wchan:32,etimes,args --no-headers | grep "[s]f_gpu_multi_test --fault" |
      awk '{print $1, $2, $3}' | sed 's/^/ps: /' | stamp "$t0" >> "$log"
    sleep 0.5
  done
  wait "$runner"
  echo "== $kind: $(grep -c '' "$log") lines; FATAL lines:"
  grep -E 'FATAL|launcher rc|\[launch\]' "$log" | head -12
done
