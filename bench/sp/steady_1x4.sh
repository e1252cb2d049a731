#!/usr/bin/env bash
# One GPU call (4 GPUs): scaling efficiency on 1x4 NVLink at steady state. The GPUs run at their 700 W power
# cap, where the clock a kernel gets depends on how long the GPU has been loaded: run.sh's 2 warm-ups and 5
# forwards time the one-GPU baseline in a boost the GPU cannot hold. Here the baseline, every scheme and the
# PyTorch peers each get 10 warm-ups and 30 timed forwards, with the clock log beside them. Then the layer tests.
# Each timing also follows SF_SUSTAIN_S seconds of its own load (--sustain-s): what ran just before moves a
# timing by a few percent (2.1 % after five other schemes, bench/sp/TRACES.md session 15), so each is timed in
# the state its own sustained load brings the GPUs to. First run: 4x H200, 2026-11-27 22:24
# (results/h200x4-2026-11-27-steady3/).
#   bench/sp/steady_1x4.sh [OUTDIR]        env: SF_SEQ (default 65536), SF_SUSTAIN_S (default 3), SF_BALANCE (default
#                                          off; layer or share: row loans for the one-sided ring), SF_STEADY_CTEST (1; 0 skips)
set -uo pipefail
cd "$(dirname "$0")/../.."
. bench/sp/common.sh
sf_outdir /tmp/sf-steady-out steady.log "${1:-}"
S=${SF_SEQ:-65536}
SUSTAIN=${SF_SUSTAIN_S:-3}
sf_build_logged "steady 1x4" streamfusion-gpu sf_gpu_multi_test
SFG=$(sf_gpu_binary)
sf_start_clock_log "$OUTDIR/clocks.csv"
echo "## $(date -u +%T) ours" >> "$LOG"
timeout 200 "$SFG" launch -n "$NGPU" --grace 15 -- "$SFG" gpu-attention -S "$S" -H 24 -D 128 --topology 1x4 \
  --schemes ring,ulysses,usp,tas,torus,sfu --custom-meshes T4 -w 10 -n 30 --sustain-s "$SUSTAIN" --balance "${SF_BALANCE:-off}" --json "$OUTDIR/steady.jsonl" --label flux >> "$LOG" 2>&1
echo "## $(date -u +%T) PyTorch peers" >> "$LOG"
timeout 150 "$SFG" launch -n "$NGPU" --grace 15 -- "$PY" bench/sp/torch_peers.py --seq "$S" --heads 24 --head-dim 128 \
  --warmup 10 --iters 30 --sustain-s "$SUSTAIN" --label flux --json "$OUTDIR/torch.jsonl" >> "$LOG" 2>&1
sf_stop_clock_log
$PY bench/sp/clock_summary.py "$OUTDIR/clocks.csv" >> "$LOG" 2>&1
[ "${SF_STEADY_CTEST:-1}" = 1 ] || { cat "$LOG"; exit 0; }
echo "## $(date -u +%T) ctest gpu${NGPU}_layers_and_exchange" >> "$LOG"
timeout 150 ctest --test-dir "$BUILD" -R "gpu${NGPU}_layers_and_exchange" --output-on-failure > "$OUTDIR/ctest.log" 2>&1
echo "## ctest rc=$? ($(grep -E 'tests passed|tests failed' "$OUTDIR/ctest.log"))" >> "$LOG"
cat "$LOG"; cat "$OUTDIR/torch.jsonl"
