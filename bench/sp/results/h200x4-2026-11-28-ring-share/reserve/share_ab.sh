#!/usr/bin/env bash
# ring_share A/B on 1x4 NVLink (SFU-NVSHMEM, Flux H=24 D=128), steady: off, on with tails 1:4, 1:8 and 2:8
# (SF_CUDA_SHARE_TAIL), three rounds in a shuffled order, S=36864 and 65536; kernel tests first; one trace per arm
# at 65536; the gpu4 tests last.
set -uo pipefail
cd "$(dirname "$0")/.."
. bench/sp/common.sh
sf_outdir /tmp/sf-share-ab share_ab.log "${1:-}"
sf_build_logged "ring_share A/B" streamfusion-gpu sf_gpu_multi_test sf_gpu_kernel_tests
SFG=$(sf_gpu_binary)
echo "## $(date -u +%T) kernel tests" >> "$LOG"
timeout 150 "$(find "$BUILD" -name sf_gpu_kernel_tests -type f -perm -u+x | head -1)" \
  --gtest_filter='CudaAttention.SharedCall*:CudaAttention.TailSplit*' > "$OUTDIR/kernel_tests.log" 2>&1
rc=$?
echo "## kernel tests rc=$rc" >> "$LOG"
[ "$rc" = 0 ] || exit 1
: > "$OUTDIR/lead.jsonl"
arm() {  # arm NAME: the gpu-attention options of that arm, run with its tail setting
  local name=$1; shift
  case "$name" in
    off) sf_run_flux_1x4 "lead=off" "$@" --ring-share off ;;
    on-*) SF_CUDA_SHARE_TAIL=${name#on-} sf_run_flux_1x4 "lead=$name" "$@" --ring-share on ;;
  esac
}
for round in 1 2 3; do
  sf_run_flux_1x4 "lead=planner" -S 36864,65536 -w 10 -n 30 --json "$OUTDIR/lead.jsonl"
  for a in $(printf '%s\n' off on-1:4 on-1:8 on-2:8 | shuf --random-source=<(yes "$round")); do
    arm "$a" -S 36864,65536 -w 10 -n 30 --no-single --no-concurrent --json "$OUTDIR/lead.jsonl"
  done
done
for a in off on-1:8; do arm "$a" -S 65536 -w 10 -n 30 --no-single --no-concurrent --trace; done
$PY bench/sp/ring_lead_ab.py "$OUTDIR/lead.jsonl" "$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1) x$NGPU" \
  share | tee "$OUTDIR/LEAD.md"
echo "## $(date -u +%T) ctest gpu${NGPU}" >> "$LOG"
timeout 200 ctest --test-dir "$BUILD" -L "gpu${NGPU}" -R "layers" --output-on-failure > "$OUTDIR/ctest.log" 2>&1
echo "## ctest rc=$? ($(grep -E 'tests passed|tests failed' "$OUTDIR/ctest.log"))" >> "$LOG"
