"""Per-call cost of short attention calls: fresh vs resumed accumulator, resume deferred or loaded first; old vs new lib."""
import argparse, ctypes, json, os, random, statistics, sys
import torch
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "bench", "kernel"))
from interleaved_bench import load_lib

ap = argparse.ArgumentParser()
ap.add_argument("--lib", required=True)
ap.add_argument("--old-lib", required=True)
ap.add_argument("--shapes", default="4096x6x128,4096x12x128,4096x24x128,8192x12x128,4096x12x64,8192x24x64,16384x24x128")
ap.add_argument("--calls", type=int, default=8)
ap.add_argument("--rounds", type=int, default=7)
ap.add_argument("--reps", type=int, default=9)
ap.add_argument("--modes", default="")
a = ap.parse_args()
new, old = load_lib(a.lib), load_lib(a.old_lib)
err = ctypes.create_string_buffer(512)
ENV = {"SF_BENCH_FINALIZE": "1", "SF_BENCH_RESUME": "0", "SF_CUDA_DEFER_RESUME": "1"}
MODES = {
    "init_final": (new, {}),
    "init_acc": (new, {"SF_BENCH_FINALIZE": "0"}),
    "resume_defer": (new, {"SF_BENCH_FINALIZE": "0", "SF_BENCH_RESUME": "1"}),
    "resume_first": (new, {"SF_BENCH_FINALIZE": "0", "SF_BENCH_RESUME": "1", "SF_CUDA_DEFER_RESUME": "0"}),
    "old_resume": (old, {"SF_BENCH_FINALIZE": "0", "SF_BENCH_RESUME": "1"}),
    "old_init_final": (old, {}),
}
if a.modes:
    MODES = {m: MODES[m] for m in a.modes.split(",")}
for shape in a.shapes.split(","):
    s, h, d = map(int, shape.split("x"))
    n = a.calls if s <= 8192 else 2
    q, k, v = (torch.randn(1, s, h, d, device="cuda", dtype=torch.bfloat16) for _ in range(3))
    o = torch.empty_like(q)
    def run(fn, env):
        for key, val in {**ENV, **env}.items():
            os.environ[key] = val
        for _ in range(n):
            rc = fn(q.data_ptr(), k.data_ptr(), v.data_ptr(), o.data_ptr(), 1, s, h, d, 0, 1, 1, None, err, 512)
            if rc:
                raise RuntimeError(err.value.decode())
    res = {m: [] for m in MODES}
    for m, (fn, env) in MODES.items():
        run(fn, env)  # warm-up, and the accumulator exists before a resume
    torch.cuda.synchronize()
    for r in range(a.rounds):
        order = list(MODES); random.shuffle(order)
        for m in order:
            fn, env = MODES[m]
            ts = []
            for _ in range(a.reps):
                e0 = torch.cuda.Event(enable_timing=True); e1 = torch.cuda.Event(enable_timing=True)
                e0.record(); run(fn, env); e1.record(); e1.synchronize()
                ts.append(e0.elapsed_time(e1) / n)
            res[m].append(statistics.median(ts))
    row = {"S": s, "H": h, "D": d}
    for m, v in res.items():
        row[m + "_ms"] = round(statistics.median(v), 5)
    if "old_resume_ms" in row and "resume_defer_ms" in row:
        base = row["old_resume_ms"]
        row["resume_defer_vs_old"] = round(base / row["resume_defer_ms"], 4)
        row["resume_first_vs_old"] = round(base / row["resume_first_ms"], 4)
        row["resume_over_init_old"] = round(base / row["init_acc_ms"], 4)
    if "old_init_final_ms" in row and "init_final_ms" in row:
        row["init_final_new_vs_old"] = round(row["old_init_final_ms"] / row["init_final_ms"], 4)
    print(json.dumps(row), flush=True)
