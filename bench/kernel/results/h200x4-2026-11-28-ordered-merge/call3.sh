#!/bin/bash
# Call 3 (4 GPUs): build; det-merge A/B on GPU 0; gpu4 ctest (batch2 new); exit codes; steady 1x4; tail:2 A/B.
cd "$(dirname "$0")/.."
. bench/sp/common.sh
L=$OUT/call3.log
exec >> $L 2>&1
nvidia-smi --query-gpu=index,name,clocks.sm,power.limit --format=csv
rm -rf /tmp/oldrepo && mkdir /tmp/oldrepo && cp -r include src bench tests CMakeLists.txt /tmp/oldrepo/
rm -rf /tmp/oldrepo/src/backends/cuda && cp -r devrun/old_cuda /tmp/oldrepo/src/backends/cuda
( timeout 120 "${SF_CONFIGURE[@]}" > /tmp/build.log 2>&1 && timeout 400 cmake --build "$BUILD" -j 40 --target streamfusion-gpu sf_gpu_multi_test sf_gpu_kernel_tests >> /tmp/build.log 2>&1 ) & P1=$!
( cmake -S src/backends/cuda -B /tmp/kb -G Ninja > /tmp/kb.log 2>&1 && ninja -C /tmp/kb -j 12 sf_bench_capi >> /tmp/kb.log 2>&1 ) & P2=$!
( cmake -S /tmp/oldrepo/src/backends/cuda -B /tmp/kbold -G Ninja > /tmp/kbold.log 2>&1 && ninja -C /tmp/kbold -j 12 sf_bench_capi >> /tmp/kbold.log 2>&1 ) & P3=$!
wait $P1 $P2 $P3
echo "== $SECONDS s built"; tail -2 /tmp/build.log
SFG=$(sf_gpu_binary); [ -x "$SFG" ] || { tail -30 /tmp/build.log; exit 1; }
echo "== $SECONDS s: det merge A/B, GPU 0"
CUDA_VISIBLE_DEVICES=0 timeout 100 $PY devrun/resume_cost.py --lib /tmp/kb/libsf_bench_capi.so --old-lib /tmp/kbold/libsf_bench_capi.so \
  --modes init_final,old_init_final --shapes 4096x24x128,16384x24x128,8192x24x64,20480x12x64 --rounds 7 | tee $OUT/det_ab.jsonl
echo "== $SECONDS s: exit codes"
$SFG gpu-attention --no-such-flag > /dev/null 2>&1; echo "gpu-attention bad flag rc=$?"
$SFG gpu-attention --local-diagonal sometimes > /dev/null 2>&1; echo "gpu-attention bad value rc=$?"
echo "== $SECONDS s: ctest gpu4"
(cd $BUILD && timeout 330 ctest -L gpu4 -E "emulated_links|launchers" --output-on-failure > $OUT/ctest.log 2>&1; echo "ctest rc=$?")
grep -E "tests passed|Passed|Failed|\*\*\*" $OUT/ctest.log | head -12
echo "== $SECONDS s: steady 1x4"
[ $SECONDS -lt 380 ] && SF_STEADY_CTEST=0 timeout 150 bash bench/sp/steady_1x4.sh /tmp/steady > /dev/null 2>&1; echo "steady rc=$?"
cp /tmp/steady/steady.jsonl /tmp/steady/torch.jsonl /tmp/steady/steady.log $OUT/ 2>/dev/null
echo "== $SECONDS s: tail:2 A/B"
if [ $SECONDS -lt 300 ]; then
  SF_AB_VAR=SF_CUDA_SPLIT_TAIL SF_AB_VALUES="auto tail:2" SF_AB_SEQ=16384,36864 SF_AB_TOPOLOGIES=2x2,4x1 SF_AB_SCHEMES=sfu \
    SF_AB_GBPS=50 SF_AB_ROUNDS=2 timeout $((590 - SECONDS)) bash bench/sp/split_ab.sh /tmp/ab > /dev/null 2>&1; echo "ab rc=$?"
  cp /tmp/ab/AB.md /tmp/ab/ab.jsonl $OUT/ 2>/dev/null; cat /tmp/ab/AB.md 2>/dev/null | head -30
fi
echo "== $SECONDS s: done"
