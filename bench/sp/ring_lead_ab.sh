#!/usr/bin/env bash
# One GPU call (1xN NVLink: the host's GPUs): how a lone ring inside the machine orders its calls while it pulls the
# ring peers' K/V. Three knobs (SF_LEAD_KNOB):
#   ring-share: SpAttentionConfig::ring_share, off (the reference) and on: the ranks that finish first take blocks of
#     the others' last call (AttentionProblem::shared). First the kernel's tests of shared calls and split pieces.
#   ring-heads-per-step (default): SpAttentionConfig::ring_heads_per_step, 0 (the reference: whole blocks, two
#     calls) and steps of some heads (one call, each head waiting for its step). First the kernel's tests of late
#     chunks.
#   ring-first-wave-heads: SpAttentionConfig::ring_first_wave_heads, 0 (the reference: about the first wave's heads,
#     pulled peer by peer) and others (at Flux heads 2: one step, every step across the peers, as before session 26).
# SFU-NVSHMEM on 1x4 NVLink at Flux shapes, each share in turn, SF_LEAD_ROUNDS rounds in a shuffled order, steady
# state (10 warm-ups, 30 timed forwards, as steady_1x4.sh), and the planner's own choice among them; each round
# starts with a run that times the one-GPU baseline and the all-4-busy compute share (below). Then a traced forward
# at each of two shares, and the multi-GPU tests.
#   bench/sp/ring_lead_ab.sh [OUTDIR]   env: SF_LEAD_KNOB, SF_LEAD_VALUES (default heads: "0 2 4 6", first: "0 2",
#                                       share: "off on"), SF_LEAD_SEQ (default 36864,65536), SF_LEAD_ROUNDS (default
#                                       3), SF_LEAD_TRACE (default heads: "0 4", first: "0 2", share: "off on"),
#                                       SF_LEAD_CTEST (skip: no multi-GPU tests at the end), SF_LEAD_KERNEL_TESTS
#                                       (skip: none first)
# (Leading rows, SpAttentionConfig::ring_lead_fraction, and lead pieces, ring_lead_pieces, were knobs here until the
# one call pulled by heads took their place: results/h200x4-2026-11-27-ring-lead/, results/h200x4-2026-11-28-lead-
# pieces/; ring_lead_ab.py still tabulates their JSON.)
set -uo pipefail
cd "$(dirname "$0")/../.."
. bench/sp/common.sh
sf_outdir /tmp/sf-lead-ab lead_ab.log "${1:-}"
KNOB=${SF_LEAD_KNOB:-ring-heads-per-step}
case "$KNOB" in
  ring-share) DEFAULT_VALUES="off on"; DEFAULT_TRACE="off on"; MODE=share ;;
  ring-heads-per-step) DEFAULT_VALUES="0 2 4 6"; DEFAULT_TRACE="0 4"; MODE=heads ;;
  ring-first-wave-heads) DEFAULT_VALUES="0 2"; DEFAULT_TRACE="0 2"; MODE=first ;;
  *) echo "SF_LEAD_KNOB must be ring-heads-per-step, ring-first-wave-heads or ring-share, found '$KNOB'" >&2
     exit 2 ;;
esac
sf_build_logged "ring lead A/B ($KNOB)" streamfusion-gpu sf_gpu_multi_test sf_gpu_kernel_tests
SFG=$(sf_gpu_binary)
if [ "${SF_LEAD_KERNEL_TESTS:-run}" != skip ]; then
  echo "## $(date -u +%T) kernel tests of $MODE and split pieces" >> "$LOG"
  if [ "$MODE" != share ]; then
    FILTER='CudaAttention.LateChunks*:CudaAttention.TailSplit*:CudaAttention.Persistent*:CudaAttention.SharedCall*'
  else
    FILTER='CudaAttention.SharedCall*:CudaAttention.TailSplit*:CudaAttention.Persistent*:CudaAttention.LateChunks*'
  fi
  timeout 150 "$(find "$BUILD" -name sf_gpu_kernel_tests -type f -perm -u+x | head -1)" --gtest_filter="$FILTER" \
    > "$OUTDIR/kernel_tests.log" 2>&1
  rc=$?
  summary=$(grep -E 'PASSED|FAILED' "$OUTDIR/kernel_tests.log" | head -3 | tr '\n' ' ')
  echo "## kernel tests rc=$rc ($summary)" >> "$LOG"
  # A kernel that fails its tests would only repeat the failure in the layers: stop here.
  [ "$rc" = 0 ] || exit 1
fi
SEQ=${SF_LEAD_SEQ:-36864,65536}
: > "$OUTDIR/lead.jsonl"
read -ra VALUES <<< "${SF_LEAD_VALUES:-$DEFAULT_VALUES}"
# Each round first times the one-GPU layer and the all-busy share (with a layer of the planner's that the table
# leaves out: it runs while GPU 0 is hot from the baseline and the others are not, 2-4 % slower than the same setting
# later, bench/sp/results/h200x4-2026-11-28-first-wave/), then the planner's choice and every value in a shuffled order.
for round in $(seq 1 "${SF_LEAD_ROUNDS:-3}"); do
  sf_run_flux_1x4 "lead=baseline" -S "$SEQ" -w 10 -n 30 --json "$OUTDIR/lead.jsonl"
  for value in $(printf '%s\n' planner "${VALUES[@]}" | shuf --random-source=<(yes "$round")); do
    knob=("--$KNOB" "$value")
    [ "$value" = planner ] && knob=()
    sf_run_flux_1x4 "lead=$value" -S "$SEQ" -w 10 -n 30 "${knob[@]}" --no-single --no-concurrent \
      --json "$OUTDIR/lead.jsonl"
  done
done
for value in ${SF_LEAD_TRACE:-$DEFAULT_TRACE}; do
  sf_run_flux_1x4 "trace lead=$value" -S 65536 -w 10 -n 30 "--$KNOB" "$value" --no-single --no-concurrent --trace
done
$PY bench/sp/ring_lead_ab.py "$OUTDIR/lead.jsonl" "$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1) x$NGPU" \
  "$MODE" | tee "$OUTDIR/LEAD.md"
[ "${SF_LEAD_CTEST:-run}" = skip ] && exit 0
echo "## $(date -u +%T) ctest gpu${NGPU}" >> "$LOG"
timeout 240 ctest --test-dir "$BUILD" -L "gpu${NGPU}" -E "emulated_links|launchers" --output-on-failure \
  > "$OUTDIR/ctest.log" 2>&1
echo "## ctest rc=$? ($(grep -E 'tests passed|tests failed' "$OUTDIR/ctest.log"))" >> "$LOG"
