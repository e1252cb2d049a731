#!/usr/bin/env bash
# One GPU call: build (unless a prebuilt build dir is given), run the GPU kernel tests, time sf::cuda::attention
# against PyTorch SDPA (FlashAttention-2 and cuDNN backends) on the same card, print the results table.
#   bench/kernel/run.sh [results_dir]        (default: $OUT, else /tmp/sf-kernel-bench)
# Environment: SF_KERNEL_BUILD=dir   use/keep the build there (binaries already built are reused)
#              SF_BENCH_SEQS=4096,...  sequence lengths (default 4096..65536)
#              SF_PATHS="a b"      kernel paths to test and time (default: all seven)
#              SF_EXTRA_TEST_PATHS="c d"  paths only tested, after the timing, while SF_DEADLINE allows
#              SF_DEADLINE=s       seconds after which optional steps (extra tests, memcheck) are skipped
#                                  (default 270: the whole script fits a 300-second call)
set -uo pipefail
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1 PYTHONUNBUFFERED=1
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
RES=${1:-${OUT:-/tmp/sf-kernel-bench}}
BUILD=${SF_KERNEL_BUILD:-/tmp/sf-kernel-build}
SEQS=${SF_BENCH_SEQS:-4096,8192,16384,32768,65536}
PATHS=${SF_PATHS:-hopper_ws hopper_ws_pp hopper_ws_seq_pp hopper_tma hopper_tma_pp hopper ampere}
EXTRA_TEST_PATHS=${SF_EXTRA_TEST_PATHS:-}
DEADLINE=${SF_DEADLINE:-270}
SECONDS=0
PY=python3
[ -x /opt/torch/.venv/bin/python3 ] && PY=/opt/torch/.venv/bin/python3
mkdir -p "$RES"
status=0

CARD=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,power.draw,power.limit,temperature.gpu \
  --format=csv > "$RES/gpu.txt" 2>&1
echo "== card: $CARD"

if [ ! -x "$BUILD/sf_kernel_bench" ] || [ ! -x "$BUILD/tests_gpu_kernel/sf_gpu_kernel_tests" ]; then
  echo "== building in $BUILD"
  timeout 120 cmake -S "$ROOT/src/backends/cuda" -B "$BUILD" -G Ninja > "$RES/build.log" 2>&1 &&
    timeout 400 ninja -C "$BUILD" >> "$RES/build.log" 2>&1 || { echo "BUILD FAILED"; tail -40 "$RES/build.log"; exit 1; }
fi

# Kernel paths (SF_CUDA_ATTENTION_PATH): hopper_ws (the library default: warp-specialized, TMA producer
# warpgroup), hopper_ws_pp (+ consumer ping-pong), hopper_ws_seq_pp (ping-pong, no intra-warpgroup overlap),
# hopper_tma (TMA by thread 0), hopper_tma_pp (warpgroup ping-pong), hopper (cp.async loads), ampere (mma.sync). Every path that passes its tests is timed single-chunk; the fastest is
# then timed with multiple chunks as "streamfusion".
run_tests() {  # path, verbose
  echo "== GPU kernel tests, $1 kernel ($SECONDS s)"
  SF_CUDA_ATTENTION_PATH=$1 timeout 40 "$BUILD/tests_gpu_kernel/sf_gpu_kernel_tests" > "$RES/tests_$1.log" 2>&1
  local trc=$?
  if [ "$2" = 1 ]; then
    grep -E "^\[ +(OK|FAILED|PASSED) |^\[[a-z0-9]|Failure|mismatch|Expected|Which is|error|TMA" "$RES/tests_$1.log" | head -60
  else
    grep -E "^\[ +(FAILED|PASSED) |Failure|mismatch|TMA" "$RES/tests_$1.log" | head -20
  fi
  if [ $trc -ne 0 ]; then echo "TESTS FAILED ($1 kernel, rc $trc)"; status=1; fi
  return $trc
}
PASSED=""
first=1
for path in $PATHS; do
  if run_tests $path $first; then PASSED="$PASSED $path"; fi
  first=0
done
echo "== paths that passed:$PASSED"

echo "== timing ($SECONDS s)"
: > "$RES/ours.jsonl"; : > "$RES/sdpa.jsonl"
for hd in "24 128" "48 64"; do
  set -- $hd
  for path in $PASSED; do
    SF_CUDA_ATTENTION_PATH=$path timeout 40 "$BUILD/sf_kernel_bench" --dtype bf16 --heads "$1" --dim "$2" \
      --seqs "$SEQS" --budget-ms 100 --impl "streamfusion_$path" >> "$RES/ours.jsonl" 2>> "$RES/bench.err" || status=1
  done
  timeout 60 "$PY" "$ROOT/bench/kernel/sdpa_bench.py" --heads "$1" --dim "$2" --seqs "$SEQS" --budget-ms 250 \
    >> "$RES/sdpa.jsonl" 2>> "$RES/bench.err" || status=1
done
# The fastest passing path per head dim (mean single-chunk TFLOP/s).
best_path() {
  "$PY" - "$RES/ours.jsonl" "$1" <<'PYEOF'
import json, sys, collections
tf = collections.defaultdict(list)
for line in open(sys.argv[1]):
    if line.startswith("{"):
        r = json.loads(line)
        if "tflops" in r and r["impl"].startswith("streamfusion_") and r["D"] == int(sys.argv[2]):
            tf[r["impl"]].append(r["tflops"])
print(max(tf, key=lambda k: sum(tf[k]) / len(tf[k]))[len("streamfusion_"):] if tf else "hopper_ws")
PYEOF
}
BEST128=$(best_path 128); BEST64=$(best_path 64)
echo "== ($SECONDS s) fastest passing path: D=128 $BEST128, D=64 $BEST64 (timed with multiple chunks as streamfusion)"
for hd in "24 128 $BEST128" "48 64 $BEST64"; do
  set -- $hd
  SF_CUDA_ATTENTION_PATH=$3 timeout 60 "$BUILD/sf_kernel_bench" --dtype bf16 --heads "$1" --dim "$2" \
    --seqs "$SEQS" --kv-chunks 1,2,4,8 --q-chunks 1,2 --budget-ms 250 >> "$RES/ours.jsonl" 2>> "$RES/bench.err" || status=1
done
tail -5 "$RES/bench.err" 2>/dev/null
for path in $EXTRA_TEST_PATHS; do
  if [ $SECONDS -lt $DEADLINE ]; then run_tests $path 0; else echo "== skipped tests of $path (deadline)"; fi
done
MEMCHECK_PATH=$(echo $PASSED | cut -d' ' -f1)
left=$((DEADLINE + 20 - SECONDS))
if [ "${SF_SANITIZE:-1}" = 1 ] && command -v compute-sanitizer > /dev/null && [ $left -gt 20 ]; then
  echo "== compute-sanitizer memcheck, ${MEMCHECK_PATH:-hopper_ws} kernel (small cases, ${left} s at most)"
  SF_CUDA_ATTENTION_PATH=${MEMCHECK_PATH:-hopper_ws} timeout $left compute-sanitizer --tool memcheck --error-exitcode 9 "$BUILD/tests_gpu_kernel/sf_gpu_kernel_tests" \
    --gtest_filter='CudaAttention.UnevenChunksPadded:CudaAttention.ZeroLengthChunks:CudaAttention.SplitResumeEqualsOneCall:CudaMerge.*' \
    > "$RES/memcheck.log" 2>&1
  echo "memcheck rc $? ($(grep -c 'Invalid' "$RES/memcheck.log") invalid accesses)"; grep -m5 -A3 "Invalid" "$RES/memcheck.log"
else
  echo "== memcheck skipped (${left} s left)"
fi
echo "== total $SECONDS s"
HEADER="Card: $CARD · $(date -u '+%Y-%m-%d %H:%M UTC') · CUDA $(nvcc --version 2>/dev/null | grep -o 'release [0-9.]*' | cut -d' ' -f2) · torch $("$PY" -c 'import torch; print(torch.__version__)' 2>/dev/null) · bf16, B=1, self-attention, medians of CUDA-event timings after warm-up · StreamFusion = $BEST128 kernel at D=128, $BEST64 at D=64"
"$PY" "$ROOT/bench/kernel/report.py" "$HEADER" "$RES/ours.jsonl" "$RES/sdpa.jsonl" | tee "$RES/RESULTS.md"
exit $status
