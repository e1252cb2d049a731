#!/usr/bin/env bash
# One GPU call (4 GPUs): row loans on a 1x4 ring (SpAttentionConfig::row_loan_limit, --balance measured). The four
# GPUs at their power cap run the same calls up to 10 % apart, and the ring layer ends with the slowest; with
# loans the faster ranks compute some of the slower ranks' rows, by each rank's measured speed (--balance layer:
# in the layer itself; share: in the compute-share timing). SFU-NVSHMEM on 1x4 NVLink at Flux shapes, two arms
# alternately (ABBA), SF_LOANS_ROUNDS rounds,
# each invocation with the same baselines (one GPU, all-4-busy share) and 10 warm-ups + 30 timed forwards. Then
# a traced forward of each arm (every rank's calls: how even the ranks end) and the multi-GPU tests.
#   bench/sp/loans_ab.sh [OUTDIR]   env: SF_LOANS_SEQ (default 36864,65536), SF_LOANS_ROUNDS (default 2: ABBA each),
#                                   SF_LOANS_ARMS (default "off layer"), SF_LOANS_CTEST (default 1; 0 skips the tests)
set -uo pipefail
cd "$(dirname "$0")/../.."
. bench/sp/common.sh
sf_outdir /tmp/sf-loans-ab loans_ab.log "${1:-}"
sf_build_logged "row loans A/B" streamfusion-gpu sf_gpu_multi_test
SFG=$(sf_gpu_binary)
SEQ=${SF_LOANS_SEQ:-36864,65536}
: > "$OUTDIR/loans.jsonl"
read -r ARM_A ARM_B <<< "${SF_LOANS_ARMS:-off layer}"
for round in $(seq 1 "${SF_LOANS_ROUNDS:-2}"); do
  for arm in "$ARM_A" "$ARM_B" "$ARM_B" "$ARM_A"; do
    sf_run_flux_1x4 "balance=$arm" -S "$SEQ" -w 10 -n 30 --balance "$arm" --json "$OUTDIR/loans.jsonl"
  done
done
for arm in "$ARM_A" "$ARM_B"; do
  sf_run_flux_1x4 "trace balance=$arm" -S 65536 -w 10 -n 30 --balance "$arm" --no-single --trace
done
$PY bench/sp/loans_ab.py "$OUTDIR/loans.jsonl" "$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1) x$NGPU" \
  | tee "$OUTDIR/LOANS.md"
[ "${SF_LOANS_CTEST:-1}" = 1 ] || exit 0
echo "## $(date -u +%T) ctest gpu${NGPU}" >> "$LOG"
timeout 240 ctest --test-dir "$BUILD" -L "gpu${NGPU}" -E "emulated_links|launchers" -V > "$OUTDIR/ctest.log" 2>&1
echo "## ctest rc=$? ($(grep -E 'tests passed|tests failed' "$OUTDIR/ctest.log"))" >> "$LOG"
grep -E "loans [0-9]" "$OUTDIR/ctest.log" | head -20 >> "$LOG"
