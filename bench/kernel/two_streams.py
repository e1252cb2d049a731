"""What short attention calls lose to their own launch and last wave, and how much of it two streams win back:
--calls independent calls (separate outputs) on one stream ("serial"), alternating over two streams ("alt2"; the
second stream of higher priority: "alt2_prio"), and the same work as one call with --calls times the heads ("fused",
the reference). Finalized bf16 self-attention, batch 1; shapes SxH at --dim. Also checks that the alternated outputs
equal the serial ones bit for bit (false where split pieces merge in arrival order). Median of round medians.

  python3 two_streams.py --lib build/libsf_bench_capi.so [--shapes 4096x6,4096x12] [--dim 128] [--calls 8]

Made for bench/kernel/results/h100-2026-11-28-short-calls.
"""
import argparse, ctypes, json, random, statistics
import torch
from interleaved_bench import load_lib

ap = argparse.ArgumentParser()
ap.add_argument("--lib", required=True)
ap.add_argument("--shapes", default="4096x6,4096x12,4096x24,8192x6,8192x12,9216x24")
ap.add_argument("--calls", type=int, default=8)
ap.add_argument("--rounds", type=int, default=7)
ap.add_argument("--reps", type=int, default=15)
ap.add_argument("--dim", type=int, default=128)
a = ap.parse_args()
fn = load_lib(a.lib)
err = ctypes.create_string_buffer(512)
D = a.dim
sA = torch.cuda.Stream(priority=0)
sB = torch.cuda.Stream(priority=0)
sC = torch.cuda.Stream(priority=-1)  # higher priority

def call(q, k, v, o, s, h, stream):
    rc = fn(q.data_ptr(), k.data_ptr(), v.data_ptr(), o.data_ptr(), 1, s, h, D, 0, 1, 1,
            ctypes.c_void_p(stream.cuda_stream), err, 512)
    if rc != 0:
        raise RuntimeError(err.value.decode())

for shape in a.shapes.split(","):
    s, h = map(int, shape.split("x"))
    n = a.calls
    q, k, v = (torch.randn(1, s, h * n, D, device="cuda", dtype=torch.bfloat16) for _ in range(3))
    qs = [t.reshape(1, s, n, h, D) for t in (q, k, v)]
    # per-call views: head block i of the big tensors (strided) -> copy to contiguous per-call tensors
    per = [[x[:, :, i].contiguous() for x in qs] for i in range(n)]
    outs = [torch.empty(1, s, h, D, device="cuda", dtype=torch.bfloat16) for _ in range(n)]
    obig = torch.empty_like(q)
    main = torch.cuda.current_stream()

    def serial():
        sA.wait_stream(main)
        for i in range(n):
            call(*per[i], outs[i], s, h, sA)
        main.wait_stream(sA)

    def alt(prio=False):
        sA.wait_stream(main); sB.wait_stream(main)
        other = sC if prio else sB
        other.wait_stream(main)
        for i in range(n):
            call(*per[i], outs[i], s, h, sA if i % 2 == 0 else other)
        main.wait_stream(sA); main.wait_stream(other)

    def fused():
        sA.wait_stream(main)
        call(q, k, v, obig, s, h * n, sA)
        main.wait_stream(sA)

    modes = {"serial": serial, "alt2": alt, "alt2_prio": lambda: alt(True), "fused": fused}
    res = {m: [] for m in modes}
    for f in modes.values():
        for _ in range(3): f()
    torch.cuda.synchronize()
    # correctness: alt outputs equal serial outputs
    serial(); torch.cuda.synchronize(); ref = [o.clone() for o in outs]
    for o in outs: o.fill_(float("nan"))
    alt(); torch.cuda.synchronize()
    same = all(torch.equal(r, o) for r, o in zip(ref, outs))
    for r in range(a.rounds):
        order = list(modes); random.shuffle(order)
        for m in order:
            ts = []
            for _ in range(a.reps):
                e0 = torch.cuda.Event(enable_timing=True); e1 = torch.cuda.Event(enable_timing=True)
                e0.record(); modes[m](); e1.record(); e1.synchronize()
                ts.append(e0.elapsed_time(e1))
            res[m].append(statistics.median(ts))
    row = {"S": s, "H": h, "calls": n, "D": D, "alt_equal_serial": same}
    for m, v in res.items():
        row[m] = round(statistics.median(v), 4)
    row["serial_over_fused"] = round(row["serial"] / row["fused"], 3)
    row["alt2_over_fused"] = round(row["alt2"] / row["fused"], 3)
    row["serial_over_alt2"] = round(row["serial"] / row["alt2"], 3)
    print(json.dumps(row), flush=True)
