#!/usr/bin/env bash
# One GPU call (4 GPUs): the issue's emulated-machine targets (SFU over USP; SFU within 10 % of max(compute
# alone, transfer alone)) with every timing at steady state. run.sh times SFU-NVSHMEM last in every block, after
# about 5 s of the other schemes' load, and its one-GPU baseline first, on cool GPUs: under the 700 W power cap
# what ran just before moves a timing by a few percent (2.1 % on 1x4, bench/sp/TRACES.md session 15). Here the
# one-GPU baseline, USP and SFU-NVSHMEM each follow SF_SUSTAIN_S seconds of their own load (--sustain-s), as
# steady_1x4.sh does for 1x4; Flux 10 warm-ups and 30 timed forwards, CogVideoX 1 and 5. Emulated machines: two
# and four, at 50 and 6.25 GB/s per GPU and direction, +5 us (DESIGN.md section 6). Each SFU case is timed again
# with its plan and the links at NVLink speed (--free-links): the plan's own compute, the third reading of
# "compute alone" in the report (the one-GPU time / 4 and the all-4-busy share are the others).
#   bench/sp/steady_emulated.sh [OUTDIR]   env: SF_SUSTAIN_S (default 3), SF_FLUX_S (16384,36864,65536),
#                                           SF_COG_S (81920,163840), SF_EXTRA_ARGS (more gpu-attention options)
set -uo pipefail
cd "$(dirname "$0")/../.."
. bench/sp/common.sh
sf_outdir /tmp/sf-steady-emulated steady.log "${1:-}"
SUSTAIN=${SF_SUSTAIN_S:-3}
sf_build_logged "steady emulated" streamfusion-gpu
SFG=$(sf_gpu_binary)
rm -f "$OUTDIR/sp.jsonl"
COMMON="--topology 2x2,4x1 --gbps 50,6.25 --latency-us 5 --schemes usp,sfu --sustain-s $SUSTAIN --free-links"
COMMON="$COMMON --json $OUTDIR/sp.jsonl ${SF_EXTRA_ARGS:-}"
sf_start_clock_log "$OUTDIR/clocks.csv"
# shellcheck disable=SC2086  # word splitting of the options is intended
{
  echo "## $(date -u +%T) flux"
  timeout 260 "$SFG" launch -n "$NGPU" --grace 15 -- "$SFG" gpu-attention -S "${SF_FLUX_S:-16384,36864,65536}" \
    -H 24 -D 128 $COMMON -w 10 -n 30 --label flux
  echo "## rc=$? $(date -u +%T) cogvideox"
  timeout 200 "$SFG" launch -n "$NGPU" --grace 15 -- "$SFG" gpu-attention -S "${SF_COG_S:-81920,163840}" -H 48 -D 64 \
    $COMMON -w 1 -n 5 --label cogvideox
  echo "## rc=$? $(date -u +%T)"
} >> "$LOG" 2>&1
sf_stop_clock_log
$PY bench/sp/clock_summary.py "$OUTDIR/clocks.csv" > "$OUTDIR/clocks.md" 2>> "$LOG"
CARD="$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1) x$NGPU"
TIMING="every time follows $SUSTAIN s of its own load (--sustain-s), then the median of the timed forwards"
TIMING="$TIMING (Flux 30 after 10 warm-ups, CogVideoX 5 after 1; CUDA events around the whole layer, slowest rank)"
$PY bench/sp/make_report.py --dir "$OUTDIR" --card "$CARD" --made-by "\`bench/sp/steady_emulated.sh\` in one GPU call" \
  --timing "$TIMING" \
  >> "$LOG" 2>&1
grep -E "^## |FATAL|rc=" "$LOG" | tail -20
sed -n '/## Summary/,$p' "$OUTDIR/RESULTS.md" | head -60
