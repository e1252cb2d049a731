#!/usr/bin/env bash
# One GPU call (4 GPUs): how many of our own rows should take our own K/V block while a ring inside the machine
# pulls the rest (SpAttentionConfig::ring_lead_fraction). SFU-NVSHMEM on 1x4 NVLink at Flux shapes, each share in
# turn, SF_LEAD_ROUNDS rounds in a shuffled order, steady state (10 warm-ups, 30 timed forwards, as
# steady_1x4.sh). In every round also the planner's own choice (share 1 since 3780f4f), with the one-GPU baseline
# and the all-4-busy compute share. Then a traced forward at each of two shares, and the multi-GPU tests.
#   bench/sp/ring_lead_ab.sh [OUTDIR]   env: SF_LEAD_VALUES (default "1 0.5 0.35 0.7"), SF_LEAD_SEQ (default
#                                       36864,65536), SF_LEAD_ROUNDS (default 3), SF_LEAD_TRACE (default "1 0.5")
set -uo pipefail
cd "$(dirname "$0")/../.."
. bench/sp/common.sh
sf_outdir /tmp/sf-lead-ab lead_ab.log "${1:-}"
sf_build_logged "ring lead A/B" streamfusion-gpu sf_gpu_multi_test
SFG=$(sf_gpu_binary)
SEQ=${SF_LEAD_SEQ:-36864,65536}
: > "$OUTDIR/lead.jsonl"
read -ra VALUES <<< "${SF_LEAD_VALUES:-1 0.5 0.35 0.7}"
for round in $(seq 1 "${SF_LEAD_ROUNDS:-3}"); do
  sf_run_flux_1x4 "lead=planner" -S "$SEQ" -w 10 -n 30 --json "$OUTDIR/lead.jsonl"
  for value in $(printf '%s\n' "${VALUES[@]}" | shuf --random-source=<(yes "$round")); do
    sf_run_flux_1x4 "lead=$value" -S "$SEQ" -w 10 -n 30 --ring-lead "$value" --no-single --no-concurrent --json "$OUTDIR/lead.jsonl"
  done
done
for value in ${SF_LEAD_TRACE:-1 0.5}; do
  sf_run_flux_1x4 "trace lead=$value" -S 65536 -w 10 -n 30 --ring-lead "$value" --no-single --no-concurrent --trace
done
$PY bench/sp/ring_lead_ab.py "$OUTDIR/lead.jsonl" "$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1) x$NGPU" \
  | tee "$OUTDIR/LEAD.md"
echo "## $(date -u +%T) ctest gpu${NGPU}" >> "$LOG"
timeout 240 ctest --test-dir "$BUILD" -L "gpu${NGPU}" -E "emulated_links|launchers" --output-on-failure \
  > "$OUTDIR/ctest.log" 2>&1
echo "## ctest rc=$? ($(grep -E 'tests passed|tests failed' "$OUTDIR/ctest.log"))" >> "$LOG"
