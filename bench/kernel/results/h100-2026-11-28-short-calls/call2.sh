#!/bin/bash
# Call 2 (1 GPU): kernel tests of the deterministic split merge and the deferred resume; old vs new per-call costs.
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
nvidia-smi --query-gpu=name,clocks.sm,power.limit --format=csv > $OUT/gpu.txt
R=$PWD
rm -rf /tmp/oldrepo && mkdir /tmp/oldrepo && cp -r include src bench tests CMakeLists.txt /tmp/oldrepo/ 2>/dev/null
rm -rf /tmp/oldrepo/src/backends/cuda && cp -r devrun/old_cuda /tmp/oldrepo/src/backends/cuda
( cmake -S src/backends/cuda -B /tmp/kb -G Ninja > $OUT/build.log 2>&1 && ninja -C /tmp/kb sf_bench_capi sf_gpu_kernel_tests >> $OUT/build.log 2>&1 ) &
( cmake -S /tmp/oldrepo/src/backends/cuda -B /tmp/kbold -G Ninja > $OUT/build_old.log 2>&1 && ninja -C /tmp/kbold sf_bench_capi sf_gpu_kernel_tests >> $OUT/build_old.log 2>&1 ) &
wait
grep -E "error|FAILED" $OUT/build.log $OUT/build_old.log | head; ls /tmp/kb/libsf_bench_capi.so /tmp/kbold/libsf_bench_capi.so || exit 1
echo "== $SECONDS s: old determinism test (expected to fail)"
/tmp/kbold/tests_gpu_kernel/sf_gpu_kernel_tests --gtest_filter='*Deterministic*' > $OUT/old_det.log 2>&1; echo "old rc=$?"
grep -E "differing|OK|FAILED|Which is|Expected" $OUT/old_det.log | head
echo "== $SECONDS s: new kernel tests"
timeout 200 /tmp/kb/tests_gpu_kernel/sf_gpu_kernel_tests > $OUT/new_tests.log 2>&1; echo "new rc=$?"
grep -E "^\[ +(OK|FAILED|PASSED) |Failure" $OUT/new_tests.log | tail -40
echo "== $SECONDS s: per-call costs"
PY=/opt/torch/.venv/bin/python3
timeout 250 $PY devrun/resume_cost.py --lib /tmp/kb/libsf_bench_capi.so --old-lib /tmp/kbold/libsf_bench_capi.so 2>&1 | tee $OUT/resume_cost.jsonl
echo "== $SECONDS s: done"
