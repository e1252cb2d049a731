#!/usr/bin/env bash
# A/B of kernel variants in SM cycles, for changes too small for wall-clock timing to show (rounds of the
# interleaved timing at S=4096 spread by up to 30 % on an H200 whose clock moves between 1.56 and 1.98 GHz):
# Nsight Compute measures each launch's elapsed SM cycles, which do not depend on the clock. Clocks are left
# alone (--clock-control none). Every variant runs in its own process, one launch after the other's warm-up.
#   bench/kernel/ab_cycles.sh OUTDIR [BUILD]    (BUILD: where sf_kernel_bench is; default /tmp/sf-kernel-build)
#   SF_AB_VARIANTS="name:ENV=v,ENV=v name2:..."   (default: the current knobs, see below); BUILD=dir among
#                                                   a variant's settings runs that build's sf_kernel_bench
#                                                   (e.g. the last commit's, for a before/after);
#                                                   SF_BENCH_FINALIZE=0 times calls that write the fp32
#                                                   accumulator instead of O (bench_capi.cu)
#   SF_AB_CASES="128:4096 128:8192 64:4096"       (D:S; H=24 at D=128, 48 at D=64, B=1, bf16)
#   SF_AB_REPEATS=3                                 processes per variant and case, in rotation
# Prints one line per variant and case: median over the profiled launches of elapsed cycles (max over SMs),
# duration, and the tensor pipes' active share.
. "$(dirname "$0")/common.sh"
VARIANTS=${SF_AB_VARIANTS:-"base: nostage:SF_CUDA_STAGE_OUTPUT=0"}
CASES=${SF_AB_CASES:-"128:4096 128:8192 64:4096"}
REPEATS=${SF_AB_REPEATS:-3}
METRICS="gpu__time_duration.sum,sm__cycles_elapsed.max,sm__pipe_tensor_op_hmma_cycles_active.avg.pct_of_peak_sustained_elapsed"
for rep in $(seq 1 "$REPEATS"); do
  for case in $CASES; do
    d=${case%%:*} s=${case##*:}
    h=$((d == 128 ? 24 : 48))
    for v in $VARIANTS; do
      name=${v%%:*} bin=$BUILD envs=()
      for e in $(echo "${v#*:}" | tr , ' '); do
        if [ "${e%%=*}" = BUILD ]; then bin=${e#BUILD=}; else envs+=("$e"); fi
      done
      f="$OUTDIR/ncu_${name}_d${d}_s${s}_r${rep}.txt"
      # The launches after the first (the warm-up) of sf_kernel_bench's run of this shape.
      env "${envs[@]}" timeout 120 "$NCU" --clock-control none -k regex:attention_hopper_ws_kernel --launch-skip 1 \
        -c 4 --metrics "$METRICS" "$bin/sf_kernel_bench" --heads "$h" --dim "$d" --seqs "$s" --budget-ms 1 \
        > "$f" 2>&1 || echo "ncu failed: $name D=$d S=$s (see $f)"
    done
  done
done
"$PY" - "$OUTDIR" << 'EOF'
import glob, re, statistics, sys, collections
rows = collections.defaultdict(lambda: collections.defaultdict(list))
for f in sorted(glob.glob(sys.argv[1] + "/ncu_*_r*.txt")):
    m = re.search(r"ncu_(.+)_d(\d+)_s(\d+)_r\d+\.txt$", f)
    key = (int(m.group(2)), int(m.group(3)))
    for line in open(f):
        p = line.split()
        if len(p) >= 3 and p[0] in ("gpu__time_duration.sum", "sm__cycles_elapsed.max",
                                    "sm__pipe_tensor_op_hmma_cycles_active.avg.pct_of_peak_sustained_elapsed"):
            val = float(p[-1].replace(",", ""))
            unit = p[1]
            if p[0] == "gpu__time_duration.sum":
                val *= {"nsecond": 1e-3, "ns": 1e-3, "usecond": 1.0, "us": 1.0, "msecond": 1e3, "ms": 1e3}[unit]
            rows[key][(m.group(1), p[0])].append(val)
for (d, s), vals in sorted(rows.items()):
    names = sorted({n for n, _ in vals}, key=lambda n: (n != "base", n))
    base = statistics.median(vals[("base", "sm__cycles_elapsed.max")]) if ("base", "sm__cycles_elapsed.max") in vals else None
    for n in names:
        cyc = vals[(n, "sm__cycles_elapsed.max")]
        us = vals[(n, "gpu__time_duration.sum")]
        ten = vals[(n, "sm__pipe_tensor_op_hmma_cycles_active.avg.pct_of_peak_sustained_elapsed")]
        if not cyc:
            continue
        c = statistics.median(cyc)
        rel = f"{(c / base - 1) * 100:+.1f} %" if base else ""
        print(f"D={d} S={s} {n:10s} cycles {c:12.0f} ({len(cyc)} launches, {min(cyc):.0f}-{max(cyc):.0f}) {rel:>8s}"
              f"  time {statistics.median(us):8.1f} us  tensor {statistics.median(ten):5.1f} %")
EOF
