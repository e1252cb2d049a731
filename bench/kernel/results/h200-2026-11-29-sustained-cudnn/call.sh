#!/usr/bin/env bash
# Session 35 (one GPU): our kernel against PyTorch SDPA's cuDNN backend under sustained load (windows alternating
# between the two on the same tensors, clock log beside): Flux S=65536 and 16384 (H=24, D=128), CogVideoX S=81920
# (H=48, D=64), the whole layer each.
set -uo pipefail
cd "$(dirname "$0")/.."
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1 PYTHONUNBUFFERED=1
OUTDIR=${OUT:-/tmp/sf-s35d}; mkdir -p "$OUTDIR"
PY=/opt/torch/.venv/bin/python3; [ -x "$PY" ] || PY=python3
NEW=/tmp/sf-new
SECONDS=0
{ date -u +"# s35d sustained vs cuDNN, %Y-%m-%dT%H:%MZ, tree ${SF_TREE_REV:-?}"
  nvidia-smi --query-gpu=name,driver_version,power.limit --format=csv,noheader
  $PY -c "import torch; print('torch', torch.__version__, 'cudnn', torch.backends.cudnn.version())"; } > "$OUTDIR/build.log" 2>&1
cmake -S src/backends/cuda -B $NEW -G Ninja -DSTREAMFUSION_TESTS=OFF >> "$OUTDIR/build.log" 2>&1 &&
  ninja -C $NEW sf_bench_capi >> "$OUTDIR/build.log" 2>&1 || { tail -20 "$OUTDIR/build.log"; exit 1; }
echo "build done at $SECONDS s"
nvidia-smi --query-gpu=timestamp,clocks.sm,power.draw,temperature.gpu --format=csv -lms 100 > "$OUTDIR/clocks.csv" 2>&1 &
CLK=$!
run() {  # LABEL SEQ HEADS DIM SECONDS WINDOW
  timeout $(( $5 + 60 )) $PY bench/kernel/sustain_curve.py --lib $NEW/libsf_bench_capi.so --peer cudnn --seq $2 \
    --heads $3 --dim $4 --seconds $5 --window-s $6 --label "$1" >> "$OUTDIR/sustain_cudnn.jsonl" 2>> "$OUTDIR/summary.txt"
  echo "$1 rc=$? at $SECONDS s"
}
run "flux S=65536" 65536 24 128 80 8
run "flux S=16384" 16384 24 128 40 4
run "cogvideox S=81920" 81920 48 64 80 8
kill $CLK; wait $CLK 2>/dev/null
grep "^#" "$OUTDIR/summary.txt"
echo "total $SECONDS s"
