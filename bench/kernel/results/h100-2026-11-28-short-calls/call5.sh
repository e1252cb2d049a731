#!/bin/bash
# Call 5 (1 GPU): two or three consumer warpgroups on the distributed layers' short calls (4096 rows).
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
nvidia-smi --query-gpu=name --format=csv,noheader > $OUT/card.txt; date -u +%FT%TZ >> $OUT/card.txt
cmake -S src/backends/cuda -B /tmp/kb -G Ninja > /tmp/build.log 2>&1 && ninja -C /tmp/kb sf_bench_capi >> /tmp/build.log 2>&1 || { tail -20 /tmp/build.log; exit 1; }
cd bench/kernel
for h in 6 12 24; do
  timeout 40 /opt/torch/.venv/bin/python3 interleaved_bench.py --lib /tmp/kb/libsf_bench_capi.so --heads $h --dim 128 \
    --seqs 4096 --paths hopper_ws,hopper_ws2,hopper_ws3 --chunks "" --rounds 7 --budget-ms 30 | tee -a $OUT/wg.jsonl
done
timeout 40 /opt/torch/.venv/bin/python3 interleaved_bench.py --lib /tmp/kb/libsf_bench_capi.so --heads 12 --dim 64 \
  --seqs 4096 --paths hopper_ws,hopper_ws2,hopper_ws3 --chunks "" --rounds 7 --budget-ms 30 | tee -a $OUT/wg.jsonl
