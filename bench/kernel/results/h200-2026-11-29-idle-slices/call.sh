#!/usr/bin/env bash
# Session 35 (one GPU): warpgroups whose Q slice has no row skip the math (D=128). Builds this tree and the last
# commit's kernel (devrun/prev_attention_hopper_ws.cu in a copy of the tree), runs the kernel tests (default path,
# two-warpgroup paths, memcheck of the new test), then before/after in the same rounds: share_rate (the 1x4 and 1x2
# shares and the whole layer, Flux heads) and SM cycles (ab_cycles) at S=4096..16384.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1 PYTHONUNBUFFERED=1
OUTDIR=${OUT:-/tmp/sf-s35a}; mkdir -p "$OUTDIR"
PY=/opt/torch/.venv/bin/python3; [ -x "$PY" ] || PY=python3
NEW=/tmp/sf-new PREV=/tmp/sf-prev
SECONDS=0
{
  date -u +"# s35a idle slices, %Y-%m-%dT%H:%MZ, tree ${SF_TREE_REV:-?} (+ idle-slice skip, uncommitted if so)"
  nvidia-smi --query-gpu=index,name,driver_version --format=csv,noheader
} > "$OUTDIR/build.log"
rm -rf /tmp/prevtree && mkdir -p /tmp/prevtree/bench && cp -r include src cmake CMakeLists.txt /tmp/prevtree/ &&
  cp -r bench/kernel /tmp/prevtree/bench/ && cp devrun/prev_attention_hopper_ws.cu /tmp/prevtree/src/backends/cuda/attention_hopper_ws.cu
( cmake -S src/backends/cuda -B $NEW -G Ninja > $OUTDIR/build_new.log 2>&1 &&
  ninja -C $NEW sf_gpu_kernel_tests sf_bench_capi sf_kernel_bench >> $OUTDIR/build_new.log 2>&1; echo "new rc=$?" ) &
PNEW=$!
( cmake -S /tmp/prevtree/src/backends/cuda -B $PREV -G Ninja -DSTREAMFUSION_TESTS=OFF > $OUTDIR/build_prev.log 2>&1 &&
  ninja -C $PREV sf_bench_capi sf_kernel_bench >> $OUTDIR/build_prev.log 2>&1; echo "prev rc=$?" ) &
PPREV=$!
wait $PNEW; wait $PPREV
echo "builds done at $SECONDS s" | tee -a "$OUTDIR/build.log"
T=$NEW/tests_gpu_kernel/sf_gpu_kernel_tests
[ -x $T ] || { tail -30 $OUTDIR/build_new.log; exit 1; }
for path in hopper_ws hopper_ws_seq_pp hopper_ws2; do
  t0=$SECONDS
  SF_CUDA_ATTENTION_PATH=$path timeout 150 $T > "$OUTDIR/tests_$path.log" 2>&1
  echo "tests $path rc=$? in $((SECONDS - t0)) s: $(grep -E '^\[  PASSED|^\[  FAILED' "$OUTDIR/tests_$path.log" | tr '\n' ' ')"
  grep -E "^\[  FAILED" "$OUTDIR/tests_$path.log" | head -5
done
t0=$SECONDS
timeout 120 compute-sanitizer --tool memcheck --error-exitcode 9 $T --gtest_filter='CudaAttention.IdleSlicesWriteNothing' \
  > "$OUTDIR/memcheck_idle.log" 2>&1
echo "memcheck idle slices rc=$? in $((SECONDS - t0)) s, $(grep -c Invalid "$OUTDIR/memcheck_idle.log") invalid"
echo "== share_rate before/after ($SECONDS s)"
timeout 240 $PY bench/kernel/share_rate.py --lib $NEW/libsf_bench_capi.so --prev-lib $PREV/libsf_bench_capi.so \
  --paths hopper_ws,prev/hopper_ws --seqs 16384,36864,65536 --fractions 2,4 --rounds 5 \
  > "$OUTDIR/share_rate.jsonl" 2> "$OUTDIR/share_rate.err"; echo "share_rate rc=$?"
$PY - "$OUTDIR/share_rate.jsonl" << 'PYEOF'
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    if "impl" in r: print(f"S={r['seq']:6d} {r['impl']:28s} {r['ms']:9.3f} ms  per_whole {r['per_whole']:.4f}  spread {r['spread']:.3f}")
    else: print(r)
PYEOF
echo "== SM cycles before/after ($SECONDS s)"
left=$((560 - SECONDS))
if [ $left -gt 60 ]; then
  SF_AB_VARIANTS="base:BUILD=$PREV skip:" SF_AB_CASES="128:4096 128:8192 128:16384 64:4096" SF_AB_REPEATS=2 \
    timeout $left bash bench/kernel/ab_cycles.sh "$OUTDIR/cycles" $NEW > "$OUTDIR/cycles.txt" 2>&1
  echo "ab_cycles rc=$?"; cat "$OUTDIR/cycles.txt" | tail -12
else
  echo "ab_cycles skipped ($left s left)"
fi
echo "total $SECONDS s"
