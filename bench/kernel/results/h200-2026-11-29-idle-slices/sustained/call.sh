#!/usr/bin/env bash
# Session 35 (one GPU): the idle-slice skip under sustained load and the power cap. Builds this tree (the skip
# applied) and the last commit's kernel; sustain_curve alternates 6-s windows between them on the 1x4 share of Flux
# S=65536 (16384 rows: two warpgroups idle in each head's last tile) and then on the whole layer, with a clock and
# power log beside it; prints per arm the median of the window medians (first window of each arm dropped) and the
# mean power and SM clock over its windows.
# SF_S35_MODE=control: an A/A of the last commit's kernel against a second build of itself, then the A/B with the
# arms swapped (the last commit's build as --lib), on the share only.
set -uo pipefail
cd "$(dirname "$0")/.."
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1 PYTHONUNBUFFERED=1
OUTDIR=${OUT:-/tmp/sf-s35b}; mkdir -p "$OUTDIR"
PY=/opt/torch/.venv/bin/python3; [ -x "$PY" ] || PY=python3
NEW=/tmp/sf-new PREV=/tmp/sf-prev
SECONDS=0
date -u +"# s35b idle slices sustained, %Y-%m-%dT%H:%MZ, tree ${SF_TREE_REV:-?} + skip" > "$OUTDIR/build.log"
rm -rf /tmp/prevtree && mkdir -p /tmp/prevtree/bench && cp -r include src cmake CMakeLists.txt /tmp/prevtree/ &&
  cp -r bench/kernel /tmp/prevtree/bench/ && cp devrun/prev_attention_hopper_ws.cu /tmp/prevtree/src/backends/cuda/attention_hopper_ws.cu
( cmake -S src/backends/cuda -B $NEW -G Ninja -DSTREAMFUSION_TESTS=OFF > $OUTDIR/build_new.log 2>&1 &&
  ninja -C $NEW sf_bench_capi >> $OUTDIR/build_new.log 2>&1; echo "new rc=$?" ) &
PNEW=$!
( cmake -S /tmp/prevtree/src/backends/cuda -B $PREV -G Ninja -DSTREAMFUSION_TESTS=OFF > $OUTDIR/build_prev.log 2>&1 &&
  ninja -C $PREV sf_bench_capi >> $OUTDIR/build_prev.log 2>&1; echo "prev rc=$?" ) &
PPREV=$!
PPREV2=
if [ "${SF_S35_MODE:-}" = control ]; then
  ( cmake -S /tmp/prevtree/src/backends/cuda -B /tmp/sf-prev2 -G Ninja -DSTREAMFUSION_TESTS=OFF > $OUTDIR/build_prev2.log 2>&1 &&
    ninja -C /tmp/sf-prev2 sf_bench_capi >> $OUTDIR/build_prev2.log 2>&1; echo "prev2 rc=$?" ) &
  PPREV2=$!
fi
wait $PNEW; wait $PPREV; [ -n "$PPREV2" ] && wait $PPREV2
echo "builds done at $SECONDS s" | tee -a "$OUTDIR/build.log"
nvidia-smi --query-gpu=timestamp,clocks.sm,power.draw,temperature.gpu --format=csv -lms 100 \
  > "$OUTDIR/clocks.csv" 2>&1 &
CLK=$!
if [ "${SF_S35_MODE:-}" = control ]; then
  timeout 150 $PY bench/kernel/sustain_curve.py --lib /tmp/sf-prev2/libsf_bench_capi.so --prev-lib $PREV/libsf_bench_capi.so \
    --seq 65536 --rows 16384 --seconds 96 --window-s 6 --label share > "$OUTDIR/sustain_aa.jsonl" 2> "$OUTDIR/sustain.err"
  echo "A/A share rc=$? at $SECONDS s"
  timeout 150 $PY bench/kernel/sustain_curve.py --lib $PREV/libsf_bench_capi.so --prev-lib $NEW/libsf_bench_capi.so \
    --seq 65536 --rows 16384 --seconds 96 --window-s 6 --label share > "$OUTDIR/sustain_ba.jsonl" 2>> "$OUTDIR/sustain.err"
  echo "B/A share rc=$? at $SECONDS s"
else
timeout 150 $PY bench/kernel/sustain_curve.py --lib $NEW/libsf_bench_capi.so --prev-lib $PREV/libsf_bench_capi.so \
  --seq 65536 --rows 16384 --seconds 96 --window-s 6 --label share > "$OUTDIR/sustain_ab.jsonl" 2> "$OUTDIR/sustain.err"
echo "share rc=$? at $SECONDS s"
timeout 150 $PY bench/kernel/sustain_curve.py --lib $NEW/libsf_bench_capi.so --prev-lib $PREV/libsf_bench_capi.so \
  --seq 65536 --rows 65536 --seconds 96 --window-s 8 --label whole >> "$OUTDIR/sustain_ab.jsonl" 2>> "$OUTDIR/sustain.err"
echo "whole rc=$? at $SECONDS s"
fi
kill $CLK; wait $CLK 2>/dev/null
for f in "$OUTDIR"/sustain_a[ab].jsonl "$OUTDIR"/sustain_ba.jsonl; do
[ -f "$f" ] || continue
echo "== $(basename "$f") (arm new = --lib, prev = --prev-lib)" | tee -a "$OUTDIR/summary.txt"
$PY - "$f" "$OUTDIR/clocks.csv" << 'PYEOF' | tee -a "$OUTDIR/summary.txt"
import csv, json, statistics, sys
from datetime import datetime, timedelta
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
clk = []
for r in csv.reader(open(sys.argv[2])):
    try:
        t = datetime.strptime(r[0].strip(), "%Y/%m/%d %H:%M:%S.%f")
        clk.append((t.strftime("%H:%M:%S"), t, float(r[1].split()[0]), float(r[2].split()[0]), float(r[3])))
    except (ValueError, IndexError):
        pass
for label in ("share", "whole"):
    ws = [r for r in rows if r["label"] == label]
    for r in ws: print(label, r["arm"], r["utc_start"], r["calls"], r["median_ms"])
    for arm in ("new", "prev"):
        w = [r for r in ws if r["arm"] == arm][1:]  # the first window of each arm dropped (levelling off)
        ms = [r["median_ms"] for r in w]
        # power and clock over the arm's windows: samples whose second falls in one of its windows
        secs = set()
        for r in w:
            t0 = datetime.strptime(r["utc_start"], "%H:%M:%S")
            n = 6 if label == "share" else 8
            secs |= {(t0 + timedelta(seconds=i)).strftime("%H:%M:%S") for i in range(1, n)}
        s = [c for c in clk if c[0] in secs]
        print(f"{label:5s} {arm:4s} windows {len(ms)}  median of medians {statistics.median(ms):.4f} ms  "
              f"(min {min(ms):.4f} max {max(ms):.4f})  SM clock {statistics.mean(c[2] for c in s):.0f} MHz  "
              f"power {statistics.mean(c[3] for c in s):.1f} W  temp {statistics.mean(c[4] for c in s):.1f} C  ({len(s)} samples)")
PYEOF
done
echo "total $SECONDS s"
