#!/usr/bin/env bash
# One GPU call (4 GPUs): the working tree against a base tree, alternately, on the same machine. The base is
# this tree with some files replaced: SF_AB_BASE names a folder that mirrors the repository's layout with the
# base's versions of the changed files (e.g. `git show REF:src/algorithms/mesh_attention.cpp >
# ab_base/src/algorithms/mesh_attention.cpp`, the folder ignored by git and carried to the device). Each
# gpu-attention argument set in SF_AB_RUNS (separated by ';') runs base then new, SF_AB_ROUNDS times (default 2);
# then a table of the medians (split_ab.py), and the multi-GPU layer tests of the new tree unless SF_SKIP_TESTS=1.
#   SF_AB_BASE=ab_base SF_AB_RUNS="-S 81920 -H 48 -D 64 --topology 2x2 --gbps 6.25 --schemes usp,sfu" \
#     bench/sp/tree_ab.sh [OUTDIR]
# SF_AB_EXTRA: commands (gpu-attention argument sets, ';'-separated) run once with the new tree after the A/B,
# e.g. --trace runs; their output goes to the log.
set -uo pipefail
cd "$(dirname "$0")/../.."
. bench/sp/common.sh
sf_outdir /tmp/sf-tree-ab tree_ab.log "${1:-}"
BASE_OVERLAY=${SF_AB_BASE:?SF_AB_BASE: folder with the base versions of the changed files}
[ -d "$BASE_OVERLAY" ] || { echo "SF_AB_BASE=$BASE_OVERLAY is not a folder"; exit 1; }
T0=$(date +%s)
sf_build_logged "tree A/B" streamfusion-gpu sf_gpu_multi_test
NEW=$(sf_gpu_binary)
# The base tree: a copy of this one (sources only) with the overlay's files on top, built beside it.
BASE_SRC=/tmp/sf-ab-base-src BASE_BUILD=/tmp/sf-ab-base-build
rm -rf "$BASE_SRC" && mkdir -p "$BASE_SRC"
tar -c --exclude=./build --exclude="./build-*" --exclude=./.git --exclude="./$BASE_OVERLAY" . | tar -x -C "$BASE_SRC"
(cd "$BASE_OVERLAY" && find . -type f | while read -r f; do cp "$f" "$BASE_SRC/$f"; echo "# base: $f" ; done) >> "$LOG"
BASE_CONFIGURE=("${SF_CONFIGURE[@]}")
BASE_CONFIGURE[2]=$BASE_SRC; BASE_CONFIGURE[4]=$BASE_BUILD  # cmake -S <src> -B <build> ...
{ timeout 120 "${BASE_CONFIGURE[@]}" >/dev/null && timeout 300 cmake --build "$BASE_BUILD" -j "$(nproc)" \
    --target streamfusion-gpu | tail -1; } >> "$LOG" 2>&1 || { tail -30 "$LOG"; exit 1; }
BASE=$(find "$BASE_BUILD" -name streamfusion-gpu -type f -perm -u+x | head -1)
echo "# both built in $(( $(date +%s) - T0 )) s" >> "$LOG"
: > "$OUTDIR/ab.jsonl"
IFS=';' read -ra RUNS <<< "${SF_AB_RUNS:?SF_AB_RUNS: gpu-attention argument sets separated by ;}"
sf_start_clock_log "$OUTDIR/clocks.csv"
for round in $(seq 1 "${SF_AB_ROUNDS:-2}"); do
  for args in "${RUNS[@]}"; do
    for tree in base new; do
      bin=$NEW; [ $tree = base ] && bin=$BASE
      echo "## $(date -u +%T) round $round, $tree: $args" >> "$LOG"
      # shellcheck disable=SC2086  # word splitting of the argument set is intended
      timeout 200 "$bin" launch -n "$NGPU" --grace 15 -- "$bin" gpu-attention $args --latency-us 5 \
        --label "tree=$tree" --json "$OUTDIR/ab.jsonl" >> "$LOG" 2>&1
      echo "## rc=$?" >> "$LOG"
    done
  done
done
IFS=';' read -ra EXTRA <<< "${SF_AB_EXTRA:-}"
for args in "${EXTRA[@]}"; do
  echo "## $(date -u +%T) new: $args" >> "$LOG"
  # shellcheck disable=SC2086
  timeout 150 "$NEW" launch -n "$NGPU" --grace 15 -- "$NEW" gpu-attention $args >> "$LOG" 2>&1
  echo "## rc=$?" >> "$LOG"
done
sf_stop_clock_log
$PY bench/sp/clock_summary.py "$OUTDIR/clocks.csv" > "$OUTDIR/clocks.md" 2>> "$LOG"
$PY bench/sp/split_ab.py "$OUTDIR/ab.jsonl" "$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1) x$NGPU" \
  > "$OUTDIR/TREE_AB.md"
if [ "${SF_SKIP_TESTS:-0}" != 1 ]; then
  echo "## $(date -u +%T) ctest gpu${NGPU}_layers_and_exchange" >> "$LOG"
  timeout 300 ctest --test-dir "$BUILD" -R "gpu${NGPU}_layers_and_exchange" --output-on-failure > "$OUTDIR/ctest.log" 2>&1
  echo "## ctest rc=$? ($(grep -E 'tests passed|tests failed' "$OUTDIR/ctest.log"))" >> "$LOG"
fi
grep -E "^## |^# " "$LOG" | tail -40
cat "$OUTDIR/TREE_AB.md"
