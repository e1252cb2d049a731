#!/usr/bin/env bash
# One GPU call: build (unless a prebuilt build dir is given), run the GPU kernel tests, time sf::cuda::attention
# against PyTorch SDPA (FlashAttention-2 and cuDNN backends) on the same card, print the results table.
#   bench/kernel/run.sh [results_dir]        (default: $OUT, else /tmp/sf-kernel-bench)
# Environment: SF_KERNEL_BUILD=dir   use/keep the build there (binaries already built are reused)
#              SF_BENCH_SEQS=4096,...  sequence lengths (default 4096..65536)
#              SF_PATHS="a b"      kernel paths to test; the passing ones
#                                  among SF_VARIANTS_128 / SF_VARIANTS_64 are timed
#              SF_ROUNDS=n         interleaved timing rounds (default 5)
#              SF_EXTRA_TEST_PATHS="c d"  paths only tested, after the timing, while SF_DEADLINE allows
#              SF_HOST_OVERHEAD=0  skip host_overhead.py (host vs GPU share of short calls)
#              SF_PREV_LIB=file    a second build's libsf_bench_capi.so (e.g. the last commit's): variants
#                                  prev/PATH in SF_VARIANTS_128 / _64 time it in the same rounds
#              SF_DEADLINE=s       seconds after which optional steps (extra tests, host overhead, memcheck)
#                                  are skipped (default 270: the whole script fits a 300-second call)
set -uo pipefail
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1 PYTHONUNBUFFERED=1
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
RES=${1:-${OUT:-/tmp/sf-kernel-bench}}
BUILD=${SF_KERNEL_BUILD:-/tmp/sf-kernel-build}
SEQS=${SF_BENCH_SEQS:-4096,8192,16384,32768,65536}
PATHS=${SF_PATHS:-hopper_ws hopper_ws3 hopper_ws2 hopper_tma}
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

if [ ! -x "$BUILD/sf_kernel_bench" ] || [ ! -f "$BUILD/libsf_bench_capi.so" ] ||
   [ ! -x "$BUILD/tests_gpu_kernel/sf_gpu_kernel_tests" ]; then
  echo "== building in $BUILD"
  timeout 120 cmake -S "$ROOT/src/backends/cuda" -B "$BUILD" -G Ninja > "$RES/build.log" 2>&1 &&
    timeout 400 ninja -C "$BUILD" >> "$RES/build.log" 2>&1 || { echo "BUILD FAILED"; tail -40 "$RES/build.log"; exit 1; }
fi

# Kernel paths (SF_CUDA_ATTENTION_PATH): hopper_ws (the library default: warp-specialized, TMA producer
# warpgroup, three or two consumer warpgroups chosen per call), hopper_ws3 (three), hopper_ws2 (two), hopper_ws_pp
# (+ consumer ping-pong), hopper_ws_seq_pp (ping-pong, no intra-warpgroup overlap), hopper_ws3_rot (three in
# rotation), hopper_tma (TMA by thread 0), hopper_tma_pp (warpgroup ping-pong), hopper (cp.async loads), ampere
# (mma.sync). Every path is tested; those that pass are timed.
run_tests() {  # path, verbose
  local log="$RES/tests_$1.log"
  echo "== GPU kernel tests, $1 ($SECONDS s)"
  SF_CUDA_ATTENTION_PATH=$1 timeout 60 "$BUILD/tests_gpu_kernel/sf_gpu_kernel_tests" > "$log" 2>&1
  local trc=$?
  if [ "$2" = 1 ]; then
    grep -E "^\[ +(OK|FAILED|PASSED) |^\[[a-z0-9]|Failure|mismatch|Expected|Which is|error|TMA" "$log" | head -60
  else
    grep -E "^\[ +(FAILED|PASSED) |Failure|mismatch|TMA|rel err|ratio" "$log" | head -20
  fi
  if [ $trc -ne 0 ]; then echo "TESTS FAILED ($1, rc $trc)"; status=1; fi
  return $trc
}
PASSED=""
first=1
for variant in $PATHS; do
  if run_tests $variant $first; then PASSED="$PASSED $variant"; fi
  first=0
done
echo "== variants that passed:$PASSED"

# Timing: one process per head configuration, FA2, cuDNN and every passing variant interleaved in rounds
# (interleaved_bench.py says why), then the fastest path with multiple chunks against its own one chunk.
echo "== timing ($SECONDS s)"
: > "$RES/ours.jsonl"; : > "$RES/sdpa.jsonl"
want() {  # the given variants whose path passed, comma separated ("path:nosplit" = the path, tail split off;
          # "path:nopersist" = one thread block per block of work; "path:persistall" = persistent at every S,
          # work queue; "path:static" = persistent at every S, static order: interleaved_bench.py)
  local out=""
  for v in "$@"; do
    if [ "${v#prev/}" != "$v" ]; then [ -n "${SF_PREV_LIB:-}" ] && out="$out,$v"; continue; fi
    for p in $PASSED; do [ "$p" = "${v%%:*}" ] && out="$out,$v"; done
  done
  echo "${out#,}"
}
V128=$(want ${SF_VARIANTS_128:-hopper_ws hopper_ws:nopersist hopper_ws:nosplit hopper_ws2})
V64=$(want ${SF_VARIANTS_64:-hopper_ws hopper_ws:nopersist hopper_ws:nosplit hopper_ws2})
for hd in "24 128 $V128" "48 64 $V64"; do
  set -- $hd
  [ -z "${3:-}" ] && { echo "no passing variant to time at D=$2"; status=1; continue; }
  timeout 200 "$PY" "$ROOT/bench/kernel/interleaved_bench.py" --lib "$BUILD/libsf_bench_capi.so" --heads "$1" \
    --dim "$2" --seqs "$SEQS" --paths "$3" --rounds "${SF_ROUNDS:-5}" ${SF_PREV_LIB:+--prev-lib "$SF_PREV_LIB"} \
    > "$RES/interleaved_$2.jsonl" \
    2>> "$RES/bench.err" || status=1
  grep '"impl": "sdpa' "$RES/interleaved_$2.jsonl" >> "$RES/sdpa.jsonl"
  grep -v '"impl": "sdpa' "$RES/interleaved_$2.jsonl" >> "$RES/ours.jsonl"
done
grep "fastest" "$RES/bench.err"
BEST128=$(grep -o "D=128: [a-z_0-9:]*" "$RES/bench.err" | tail -1 | sed 's/D=128: //')
BEST64=$(grep -o "D=64: [a-z_0-9:]*" "$RES/bench.err" | tail -1 | sed 's/D=64: //')
tail -5 "$RES/bench.err" 2>/dev/null
for variant in $EXTRA_TEST_PATHS; do
  if [ $SECONDS -lt $DEADLINE ]; then run_tests $variant 0; else echo "== skipped tests of $variant (deadline)"; fi
done
# How much of a short call's time is the host's (host_overhead.py), while the deadline allows.
if [ "${SF_HOST_OVERHEAD:-1}" = 1 ] && [ $SECONDS -lt $DEADLINE ]; then
  echo "== host overhead of short calls ($SECONDS s)"
  (cd "$ROOT/bench/kernel" && timeout 90 "$PY" host_overhead.py --lib "$BUILD/libsf_bench_capi.so" \
    > "$RES/host_overhead.jsonl" 2>> "$RES/bench.err")
  cat "$RES/host_overhead.jsonl"
fi
# compute-sanitizer memcheck of the small cases, for each kernel path in SF_MEMCHECK while time is left.
for mpath in ${SF_MEMCHECK:-hopper_ws hopper_ws2}; do
  left=$((DEADLINE + 20 - SECONDS))
  if [ "${SF_SANITIZE:-1}" = 1 ] && command -v compute-sanitizer > /dev/null && [ $left -gt 20 ]; then
    echo "== compute-sanitizer memcheck, $mpath kernel (small cases, ${left} s at most)"
    SF_CUDA_ATTENTION_PATH=$mpath timeout $left compute-sanitizer --tool memcheck --error-exitcode 9 \
      "$BUILD/tests_gpu_kernel/sf_gpu_kernel_tests" \
      --gtest_filter='CudaAttention.UnevenChunksPadded:CudaAttention.ZeroLengthChunks:CudaAttention.SplitResumeEqualsOneCall:CudaAttention.TailSplitPieces:CudaAttention.PersistentFewThreadBlocks:CudaAttention.QSlicesAcrossChunks:CudaAttention.OutputStagedOrNot:CudaMerge.*' \
      > "$RES/memcheck_$mpath.log" 2>&1
    echo "memcheck $mpath rc $? ($(grep -c 'Invalid' "$RES/memcheck_$mpath.log") invalid accesses)"
    grep -m5 -A3 "Invalid" "$RES/memcheck_$mpath.log"
  else
    echo "== memcheck of $mpath skipped (${left} s left)"
  fi
done
echo "== total $SECONDS s"
HEADER="Card: $CARD · $(date -u '+%Y-%m-%d %H:%M UTC') · CUDA $(nvcc --version 2>/dev/null | grep -o 'release [0-9.]*' | cut -d' ' -f2) · torch $("$PY" -c 'import torch; print(torch.__version__)' 2>/dev/null) · bf16, B=1, self-attention, medians of CUDA-event timings after warm-up · timed in one process per head dim, alternating with SDPA in ${SF_ROUNDS:-5} rounds (median of round medians) · StreamFusion = $BEST128 at D=128, $BEST64 at D=64"
"$PY" "$ROOT/bench/kernel/report.py" "$HEADER" "$RES/ours.jsonl" "$RES/sdpa.jsonl" | tee "$RES/RESULTS.md"
exit $status
