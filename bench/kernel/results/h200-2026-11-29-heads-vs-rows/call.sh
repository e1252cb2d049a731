#!/usr/bin/env bash
# Session 35 (one GPU): one rank's 1x4 share as rows (the ring's) or as heads (Ulysses'), sustained, alternating
# windows: Flux S=65536 (the ring's 16384 rows pad each head's last tile) and S=36864 (9216 rows: no padding, the
# control).
set -uo pipefail
cd "$(dirname "$0")/.."
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1 PYTHONUNBUFFERED=1
OUTDIR=${OUT:-/tmp/sf-s35e}; mkdir -p "$OUTDIR"
PY=/opt/torch/.venv/bin/python3; [ -x "$PY" ] || PY=python3
NEW=/tmp/sf-new
SECONDS=0
{ date -u +"# s35e heads vs rows, %Y-%m-%dT%H:%MZ, tree ${SF_TREE_REV:-?}"
  nvidia-smi --query-gpu=name,driver_version,power.limit --format=csv,noheader; } > "$OUTDIR/build.log" 2>&1
cmake -S src/backends/cuda -B $NEW -G Ninja -DSTREAMFUSION_TESTS=OFF >> "$OUTDIR/build.log" 2>&1 &&
  ninja -C $NEW sf_bench_capi >> "$OUTDIR/build.log" 2>&1 || { tail -20 "$OUTDIR/build.log"; exit 1; }
echo "build done at $SECONDS s"
nvidia-smi --query-gpu=timestamp,clocks.sm,power.draw,temperature.gpu --format=csv -lms 100 > "$OUTDIR/clocks.csv" 2>&1 &
CLK=$!
timeout 170 $PY bench/kernel/heads_vs_rows.py --lib $NEW/libsf_bench_capi.so --seq 65536 --parts 4 --seconds 96 \
  --window-s 6 > "$OUTDIR/heads_vs_rows_65536.jsonl" 2> "$OUTDIR/err.txt"
echo "S=65536 rc=$? at $SECONDS s"
timeout 100 $PY bench/kernel/heads_vs_rows.py --lib $NEW/libsf_bench_capi.so --seq 36864 --parts 4 --seconds 48 \
  --window-s 4 > "$OUTDIR/heads_vs_rows_36864.jsonl" 2>> "$OUTDIR/err.txt"
echo "S=36864 rc=$? at $SECONDS s"
kill $CLK; wait $CLK 2>/dev/null
grep -h '"check"\|summary' "$OUTDIR"/heads_vs_rows_*.jsonl
tail -3 "$OUTDIR/err.txt"
echo "total $SECONDS s"
