# Sourced by the bench/sp scripts (run from the repository root): the environment of a GPU run on the device
# machines, and the build of streamfusion-gpu and the multi-GPU tests into $BUILD.
# NVLink multicast stays off on shared machines (GPU-MACHINES.md).
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
export PYTHONUNBUFFERED=1
PY=/opt/torch/.venv/bin/python3
[ -x "$PY" ] || PY=python3
NV=$($PY -c "import nvidia, sys; sys.stdout.write(list(nvidia.__path__)[0])" 2>/dev/null || echo /opt/torch/.venv/lib/python3.12/site-packages/nvidia)
export LD_LIBRARY_PATH=$NV/nccl/lib:$NV/nvshmem/lib:${LD_LIBRARY_PATH:-}
BUILD=${SF_BUILD:-/tmp/sf-build}
NGPU=$(nvidia-smi -L 2>/dev/null | wc -l)

# A command (array), so that `timeout` can run it.
SF_CONFIGURE=(cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DSTREAMFUSION_CUDA=ON -DSTREAMFUSION_NCCL=ON
  -DSTREAMFUSION_NVSHMEM=ON -DSTREAMFUSION_TESTS=ON)
# The tree being measured: SF_TREE_REV when given (the device's copy of the git metadata can lag behind the working
# tree it runs on: pass the commit with the call, e.g. SF_TREE_REV=$(git rev-parse --short HEAD) on the caller's
# side), else what git says here, "+dirty" when the tree differs from it.
sf_tree_rev() {
  if [ -n "${SF_TREE_REV:-}" ]; then echo "$SF_TREE_REV (given)"; return; fi
  echo "$(git rev-parse --short HEAD 2>/dev/null)$(git diff --quiet 2>/dev/null || echo +dirty)"
}
# Writes a header (title, date, commit, GPUs) to $LOG, then configures and builds the given targets into $BUILD;
# on failure prints the log's tail and exits the script.
sf_build_logged() {
  local title=$1
  shift
  {
    date -u +"# $title, %Y-%m-%dT%H:%MZ, git $(sf_tree_rev)"
    nvidia-smi --query-gpu=index,name --format=csv,noheader
    timeout 120 "${SF_CONFIGURE[@]}" >/dev/null && timeout 300 cmake --build "$BUILD" -j "$(nproc)" --target "$@" | tail -2
  } > "$LOG" 2>&1 || { tail -30 "$LOG"; exit 1; }
}
# The script's output folder (its first argument, else $OUT, else the given default), created, and $LOG in it;
# the watchdog that bounds a multi-GPU run's waits.
#   sf_outdir DEFAULT_DIR LOG_NAME "${1:-}"
sf_outdir() {
  OUTDIR=${3:-${OUT:-$1}}
  mkdir -p "$OUTDIR"
  LOG=$OUTDIR/$2
  export SF_WATCHDOG_TIMEOUT_S=90
}
sf_gpu_binary() { find "$BUILD" -name streamfusion-gpu -type f -perm -u+x | head -1; }

# Samples every GPU's clocks, power and load every 50 ms into $1 (CSV) until sf_stop_clock_log.
sf_start_clock_log() {
  local fields=timestamp,index,clocks.sm,clocks.mem,power.draw,temperature.gpu,utilization.gpu
  nvidia-smi --query-gpu=$fields,clocks_event_reasons.active --format=csv,noheader -i 0 >/dev/null 2>&1 &&
    fields=$fields,clocks_event_reasons.active
  nvidia-smi --query-gpu=$fields --format=csv -lms 50 > "$1" 2>&1 &
  SF_CLOCK_LOG_PID=$!
}
sf_stop_clock_log() { [ -n "${SF_CLOCK_LOG_PID:-}" ] && kill "$SF_CLOCK_LOG_PID" 2>/dev/null; wait "$SF_CLOCK_LOG_PID" 2>/dev/null; true; }

# One gpu-attention invocation of SFU on 1xN NVLink (N: the host's GPUs, 1x4 on the 4-GPU hosts) at Flux heads
# (H=24, D=128; SF_HEADS and SF_DIM for others, e.g. CogVideoX's 48 and 64) under the launcher, logged to $LOG
# with its label and exit code (the A/B scripts of the 1x4 ring). Needs $SFG.
#   sf_run_flux_1x4 LABEL [gpu-attention options...]
sf_run_flux_1x4() {
  local label=$1
  shift
  echo "## $(date -u +%T) $label" >> "$LOG"
  timeout 200 "$SFG" launch -n "$NGPU" --grace 15 -- "$SFG" gpu-attention -H "${SF_HEADS:-24}" -D "${SF_DIM:-128}" \
    --topology "1x$NGPU" --schemes sfu \
    --label "$label" "$@" >> "$LOG" 2>&1
  echo "## rc=$?" >> "$LOG"
}
