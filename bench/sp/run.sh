#!/usr/bin/env bash
# One GPU call: build, multi-GPU tests, emulated-link check, then one attention layer for every scheme at Flux
# and CogVideoX-5B shapes on 1x4 (NVLink) and emulated 2x2 / 4x1 at two inter-machine bandwidths, plus the
# PyTorch-only peers on the same shapes, then the report (RESULTS.md + chart). Needs a 4-GPU host.
#   bench/sp/run.sh [OUTDIR]        (OUTDIR defaults to $OUT, the device tool's result folder)
# Env: SF_QUICK=1 for small shapes only; SF_SKIP_TESTS=1; SF_BUILD=/tmp/sf-build; SF_EXTRA_ARGS="..." appended
# to every gpu-attention command (e.g. "--custom-meshes T4 --torus-chunks 4").
# It writes 8 files into OUTDIR, as many as the device tool returns from $OUT: a call that writes more beside them
# loses some (run 20 lost its JSON; rows_from_log.py rebuilds sp.jsonl and torch.jsonl from run.log).
set -uo pipefail
cd "$(dirname "$0")/../.."
OUTDIR=${1:-${OUT:-/tmp/sf-bench-out}}
mkdir -p "$OUTDIR"
LOG=$OUTDIR/run.log
: > "$LOG"
. bench/sp/common.sh
say() { echo "$*" | tee -a "$LOG"; }
T_START=$(date +%s)
BUDGET=${SF_BUDGET_S:-570}  # the whole script ends within this (the device tool kills at 600 s)
step() {  # step NAME TIMEOUT_S command...  (the timeout shrinks to what is left of the budget)
  local name=$1 t=$2; shift 2
  local t0=$(date +%s)
  local left=$(( BUDGET - (t0 - T_START) ))
  [ "$t" -gt "$left" ] && t=$left
  if [ "$t" -lt 15 ]; then say "== $name skipped: budget spent"; return 99; fi
  say "== $name (limit ${t}s): $*"
  timeout -k 10 "$t" "$@" >> "$LOG" 2>&1
  local rc=$?
  say "== $name rc=$rc in $(( $(date +%s) - t0 ))s"
  return $rc
}

say "# StreamFusion SP bench, $(date -u +%Y-%m-%dT%H:%MZ), git $(sf_tree_rev)"
nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv,noheader >> "$LOG" 2>&1
nvidia-smi topo -m >> "$LOG" 2>&1

step configure 120 "${SF_CONFIGURE[@]}" || { tail -40 "$LOG"; exit 1; }
step build 330 cmake --build "$BUILD" -j "$(nproc)" --target streamfusion-gpu \
  || { grep -E "error|Error" "$LOG" | head -40; exit 1; }
SFG=$(sf_gpu_binary)
LAUNCH="$SFG launch -n $NGPU --grace 15"
export SF_WATCHDOG_TIMEOUT_S=90

rm -f "$OUTDIR"/links.jsonl "$OUTDIR"/sp.jsonl "$OUTDIR"/torch.jsonl
# Two emulated machines of half the host's GPUs each (2x1, 2x2, 2x4).
step links 90 $LAUNCH -- "$SFG" gpu-links --topology "2x$((NGPU / 2))" --gbps 50,6.25 --sizes-mib 64,256 --json "$OUTDIR/links.jsonl"

if [ "${SF_QUICK:-0}" = 1 ]; then
  FLUX_S=4096,16384; COG_S=16384; IT="-w 1 -n 3"; TORCH_IT=""
else
  # Flux: 10 warm-ups and 30 timed forwards, so that the one-GPU baseline and the layers are timed at the clock
  # the power-capped GPUs hold under load (steady_1x4.sh: 3 and 9 timed the baseline in a boost it cannot hold).
  FLUX_S=16384,36864,65536; COG_S=81920,163840; IT="-w 10 -n 30"; TORCH_IT="--warmup 10 --iters 30"
fi
# Meshes for the host's GPU count: all NVLink, and 2 and 4 emulated machines (8 GPUs: 1x8, 2x4, 4x2).
case "$NGPU" in
  8) TOPOS=1x8,2x4,4x2 ;;
  2) TOPOS=1x2,2x1 ;;
  *) TOPOS=1x4,2x2,4x1 ;;
esac
TOPOS=${SF_TOPOLOGIES:-$TOPOS}
COMMON="--topology $TOPOS --gbps 50,6.25 --latency-us 5 --schemes ring,ulysses,usp,tas,torus,sfu --json $OUTDIR/sp.jsonl ${SF_EXTRA_ARGS:-}"
sf_start_clock_log "$OUTDIR/clocks.csv"  # power-capped clocks move every figure: keep them beside the times
step ours_flux 180 $LAUNCH -- "$SFG" gpu-attention -S $FLUX_S -H 24 -D 128 $COMMON $IT --label flux
step ours_cogvideox 180 $LAUNCH -- "$SFG" gpu-attention -S $COG_S -H 48 -D 64 $COMMON -w 1 -n 5 --label cogvideox
step torch_flux 100 $LAUNCH -- $PY bench/sp/torch_peers.py --seq $FLUX_S --heads 24 --head-dim 128 $TORCH_IT --label flux --json "$OUTDIR/torch.jsonl"
step torch_cogvideox 100 $LAUNCH -- $PY bench/sp/torch_peers.py --seq $COG_S --heads 48 --head-dim 64 --label cogvideox --json "$OUTDIR/torch.jsonl"
sf_stop_clock_log
$PY bench/sp/clock_summary.py "$OUTDIR/clocks.csv" > "$OUTDIR/clocks.md" 2>> "$LOG"
step report 60 $PY bench/sp/make_report.py --dir "$OUTDIR" --card "$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1) x$NGPU" > /dev/null
if [ "${SF_SKIP_TESTS:-0}" != 1 ]; then  # multi-GPU tests with what is left of the budget
  step build_tests 90 cmake --build "$BUILD" -j "$(nproc)" --target sf_gpu_multi_test && \
  step tests 240 ctest --test-dir "$BUILD" -L "gpu$NGPU" -E "emulated_links|launchers" -V  # -V: every case run, in the log
fi
grep -E "^== |FAIL|FATAL|PASSED|FAILED|all checks|SOME" "$LOG" | tail -60
[ -f "$OUTDIR/RESULTS.md" ] && sed -n '1,200p' "$OUTDIR/RESULTS.md" | cut -c1-220
