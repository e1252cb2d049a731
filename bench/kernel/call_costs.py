"""Per-call cost of short attention calls, as a distributed layer makes them: a fresh accumulator finalized
(init_final), a fresh one written to fp32 (init_acc, a ring's first step), and one resumed and written back
(resume_acc, a ring's middle steps); with --prev-lib the same modes of a second build ("prev_" + mode), in the same
rounds. Each timing runs --calls calls back to back on one stream (2 from S=16384 on) and reports the time per call;
the modes run in a shuffled order every round, and the figure is the median of the rounds' medians.

  python3 call_costs.py --lib build/libsf_bench_capi.so [--prev-lib old/libsf_bench_capi.so] \
      [--shapes 4096x6x128,4096x12x64] [--modes init_final,prev_init_final]

Shapes are SxHxD (self-attention, Sq = Skv = S, bf16, batch 1). Made for bench/kernel/results/*-short-calls.
"""
import argparse
import ctypes
import json
import os
import random
import statistics

import torch

from interleaved_bench import load_lib

MODE_ENV = {  # bench_capi.cu's settings per mode
    "init_final": {"SF_BENCH_FINALIZE": "1", "SF_BENCH_RESUME": "0"},
    "init_acc": {"SF_BENCH_FINALIZE": "0", "SF_BENCH_RESUME": "0"},
    "resume_acc": {"SF_BENCH_FINALIZE": "0", "SF_BENCH_RESUME": "1"},
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lib", required=True)
    ap.add_argument("--prev-lib")
    ap.add_argument("--shapes", default="4096x6x128,4096x12x128,4096x24x128,8192x12x128,4096x12x64,8192x24x64")
    ap.add_argument("--modes", default="", help="comma-separated; default: every mode (and prev_ ones)")
    ap.add_argument("--calls", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--reps", type=int, default=9)
    a = ap.parse_args()
    libs = {"": load_lib(a.lib)}
    if a.prev_lib:
        libs["prev_"] = load_lib(a.prev_lib)
    modes = {p + m: (fn, env) for p, fn in libs.items() for m, env in MODE_ENV.items()}
    if a.modes:
        modes = {m: modes[m] for m in a.modes.split(",")}
    err = ctypes.create_string_buffer(512)
    for shape in a.shapes.split(","):
        s, h, d = map(int, shape.split("x"))
        n = a.calls if s <= 8192 else 2
        q, k, v = (torch.randn(1, s, h, d, device="cuda", dtype=torch.bfloat16) for _ in range(3))
        o = torch.empty_like(q)

        def run(fn, env):
            os.environ.update(env)  # the library reads its settings at every call
            for _ in range(n):
                if fn(q.data_ptr(), k.data_ptr(), v.data_ptr(), o.data_ptr(), 1, s, h, d, 0, 1, 1, None, err, 512):
                    raise RuntimeError(err.value.decode())

        for fn, env in modes.values():
            run(fn, env)  # warm-up; a resume then finds an accumulator
        torch.cuda.synchronize()
        res = {m: [] for m in modes}
        for _ in range(a.rounds):
            order = list(modes)
            random.shuffle(order)
            for m in order:
                ts = []
                for _ in range(a.reps):
                    e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                    e0.record()
                    run(*modes[m])
                    e1.record()
                    e1.synchronize()
                    ts.append(e0.elapsed_time(e1) / n)
                res[m].append(statistics.median(ts))
        row = {"card": torch.cuda.get_device_name(), "S": s, "H": h, "D": d, "calls": n}
        row.update({m + "_ms": round(statistics.median(v), 5) for m, v in res.items()})
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
