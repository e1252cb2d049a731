"""Times sf::cuda::attention and PyTorch SDPA (FlashAttention-2, cuDNN) in one process, alternating between them.

Separate processes run minutes apart, on a card whose clocks and temperature drift (an idle H100 starts at
510 MHz): earlier calls showed ±6 % between identical runs at S=4096. Here every implementation of a shape is
timed in each of R rounds, in an order shuffled every round (see interleave), on the same tensors, after a few
untimed calls; the result is the median of the per-round medians, and the spread (max/min of the round medians)
is kept so the table can say how much a figure moves.

Two passes per head configuration:
  1. single chunk: FA2, cuDNN and each of our kernel paths (SF_CUDA_ATTENTION_PATH; variants "path:nosplit",
     "path:nopersist", "path:persistall", "path:static": see ours());
  2. multi-chunk: the best path of pass 1 with K/V in 2, 4, 8 chunks, Q in 2, and both, interleaved with
     its own one-chunk run, so that the multi-chunk overhead is a same-round comparison.
Prints JSON lines in the format of sf_kernel_bench (bench/kernel/report.py reads them); the
best path of pass 1 is labelled "streamfusion".

  python3 interleaved_bench.py --lib build/libsf_bench_capi.so --heads 24 --dim 128 --seqs 4096,8192 \
      --paths hopper_ws,hopper_ws2 [--rounds 5] [--budget-ms 60] [--chunks 1x2,1x4,1x8,2x1,2x8]
"""
import argparse
import ctypes
import json
import os
import random
import statistics
import sys
import time

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
import torch.nn.functional as F


def load_lib(path):
    lib = ctypes.CDLL(path)
    f = lib.sf_bench_attention
    f.argtypes = [ctypes.c_void_p] * 4 + [ctypes.c_longlong] * 4 + [ctypes.c_int] * 3 + [ctypes.c_void_p,
                                                                                          ctypes.c_char_p, ctypes.c_int]
    f.restype = ctypes.c_int
    return f


# The library's launch knobs (attention_hopper_ws.cu) and what each variant option of ours() changes.
DEFAULT_ENV = {"SF_CUDA_SPLIT_TAIL": "auto", "SF_CUDA_PERSISTENT": "auto", "SF_CUDA_QUEUE": "1", "SF_CUDA_STAGE_OUTPUT": "1"}
VARIANTS = {"": {}, "nosplit": {"SF_CUDA_SPLIT_TAIL": "0"}, "nopersist": {"SF_CUDA_PERSISTENT": "0"},
            "persistall": {"SF_CUDA_PERSISTENT": "all"}, "static": {"SF_CUDA_PERSISTENT": "all", "SF_CUDA_QUEUE": "0"},
            "nostage": {"SF_CUDA_STAGE_OUTPUT": "0"}, "tail2": {"SF_CUDA_SPLIT_TAIL": "tail:2"},
            "tail3": {"SF_CUDA_SPLIT_TAIL": "tail:3"}}


def ours(fn, q, k, v, o, path, nq=1, nkv=1):
    """A callable running our kernel on [B, S, H, D] tensors with the given kernel path. "path:nosplit" runs
    the path with the tail split off (SF_CUDA_SPLIT_TAIL=0), "path:nopersist" with one thread block per block of
    work instead of the persistent launch (SF_CUDA_PERSISTENT=0), "path:persistall" persistent at every length
    with the work queue (SF_CUDA_PERSISTENT=all), "path:static" the same in the static order (SF_CUDA_QUEUE=0),
    "path:nostage" with the finalized output written from registers (SF_CUDA_STAGE_OUTPUT=0), "path:tail2" /
    "path:tail3" with the last wave's items in 2 / 3 pieces (SF_CUDA_SPLIT_TAIL=tail:n); a plain path leaves all of
    it to the library."""
    b, s, h, d = q.shape
    err = ctypes.create_string_buffer(512)
    stream = torch.cuda.current_stream().cuda_stream
    kernel_path, _, option = path.partition(":")
    if option not in VARIANTS:
        raise ValueError(f"unknown variant option '{option}' in '{path}' (expected one of {sorted(VARIANTS)[1:]})")
    env = dict(DEFAULT_ENV, SF_CUDA_ATTENTION_PATH=kernel_path, **VARIANTS[option])

    def run():
        os.environ.update(env)
        rc = fn(q.data_ptr(), k.data_ptr(), v.data_ptr(), o.data_ptr(), b, s, h, d, 0, nq, nkv, stream, err, 512)
        if rc != 0:
            raise RuntimeError(err.value.decode())
    return run


def sdpa(backend, q, k, v):
    qt, kt, vt = (x.transpose(1, 2) for x in (q, k, v))  # [B, H, S, D] views of the same memory

    def run():
        with sdpa_kernel([backend]):
            return F.scaled_dot_product_attention(qt, kt, vt)
    return run


def round_median(run, budget_ms, events, settle=3):
    """Median GPU time per call of one round: n calls (3 to 50, about budget_ms of GPU time) queued back to back
    with a CUDA event between each two, after `settle` untimed calls (the card's clocks and power still answer to
    the implementation timed before). The calls are queued behind the last untimed one, so the host's work for
    each (Python, argument checks, tensor maps, the launch: 24 µs for ours, 73 µs for SDPA cuDNN on an H200,
    host_overhead.py) runs while the GPU is still busy, as in a model's forward pass, and is not counted. Until
    session 7 each call was timed alone after a synchronize, which counted that host work: it favoured us by up
    to 50 µs a call, 12 % at S=4096."""
    t0 = time.perf_counter()
    for _ in range(settle):
        run()
    torch.cuda.synchronize()
    per_call_ms = (time.perf_counter() - t0) * 1e3 / settle
    n = max(3, min(len(events) - 1, int(budget_ms / max(per_call_ms, 1e-3))))
    run()  # untimed: keeps the GPU busy while events[0] and the first timed call are queued
    events[0].record()
    for i in range(n):
        run()
        events[i + 1].record()
    events[n].synchronize()
    times = [events[i].elapsed_time(events[i + 1]) for i in range(n)]
    return statistics.median(times), n


def interleave(impls, rounds, budget_ms):
    """impls: {label: run}. Returns {label: (median of round medians, spread, calls per round)}.

    The order is shuffled every round (seeded, so a run can be repeated). A rotation of one list, as before
    session 6, kept every implementation behind the same predecessor in every round: on cards at their power cap
    that is a bias, not noise (two identical launches, `hopper_ws` and `hopper_ws:nosplit` where no split is
    planned, came out 2.6 % apart in the same direction in two calls, bench/kernel/RESULTS.md)."""
    events = [torch.cuda.Event(enable_timing=True) for _ in range(51)]
    labels = list(impls)
    for lab in labels:  # first call of each outside the timing (allocations, descriptor set-up)
        impls[lab]()
    torch.cuda.synchronize()
    meds = {lab: [] for lab in labels}
    calls = {}
    rng = random.Random(len(labels) * 1000 + rounds)
    for r in range(rounds):
        order = labels[:]
        rng.shuffle(order)
        for lab in order:
            m, n = round_median(impls[lab], budget_ms, events)
            meds[lab].append(m)
            calls[lab] = n
    return {lab: (statistics.median(v), max(v) / min(v), calls[lab]) for lab, v in meds.items()}


def warm_up(seconds=2.0):
    """Brings an idle card to its working clocks before anything is timed."""
    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    t_end = time.perf_counter() + seconds
    while time.perf_counter() < t_end:
        for _ in range(20):
            a @ a
        torch.cuda.synchronize()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lib", required=True)
    ap.add_argument("--heads", type=int, default=24)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--seqs", default="4096")
    ap.add_argument("--paths", default="hopper_ws", help="kernel paths, comma separated")
    ap.add_argument("--chunks", default="1x2,1x4,1x8,2x1,2x8", help="QxKV chunk counts of pass 2 ('' = none)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--budget-ms", type=float, default=60)
    ap.add_argument("--prev-lib", help="a second build of the library (e.g. the last commit's), whose paths are "
                    "named prev/PATH in --paths: a before/after comparison in the same rounds")
    a = ap.parse_args()
    fn = load_lib(a.lib)
    prev_fn = load_lib(a.prev_lib) if a.prev_lib else None
    paths = a.paths.split(",")
    if any(p.startswith("prev/") for p in paths) and prev_fn is None:
        raise SystemExit("paths prev/... need --prev-lib")
    lib_of = lambda path: (prev_fn, path[len("prev/"):]) if path.startswith("prev/") else (fn, path)
    chunks = [tuple(int(x) for x in c.split("x")) for c in a.chunks.split(",") if c]
    warm_up()
    seqs = [int(x) for x in a.seqs.split(",")]
    flop = lambda s: 4 * a.batch * a.heads * s * s * a.dim

    def emit(impl, s, ms, spread, calls, nq=1, nkv=1, extra=None):
        rec = {"impl": impl, "dtype": "bf16", "B": a.batch, "H": a.heads, "D": a.dim, "S": s, "q_chunks": nq,
               "kv_chunks": nkv, "ms": round(ms, 4), "tflops": round(flop(s) / (ms * 1e-3) / 1e12, 1),
               "reps": calls, "rounds": a.rounds, "spread": round(spread, 3)}
        rec.update(extra or {})
        print(json.dumps(rec), flush=True)

    per_path = {p: [] for p in paths}
    results = {}
    for s in seqs:
        shape = (a.batch, s, a.heads, a.dim)
        torch.manual_seed(s)
        q, k, v = (torch.randn(shape, device="cuda", dtype=torch.bfloat16) for _ in range(3))
        o = torch.empty_like(q)
        ref = sdpa(SDPBackend.CUDNN_ATTENTION, q, k, v)().transpose(1, 2)
        impls = {"sdpa_flash2": sdpa(SDPBackend.FLASH_ATTENTION, q, k, v),
                 "sdpa_cudnn": sdpa(SDPBackend.CUDNN_ATTENTION, q, k, v)}
        diffs = {}
        for path in paths:
            lib, kernel_path = lib_of(path)
            run = ours(lib, q, k, v, o, kernel_path)
            o.fill_(float("nan"))
            run()
            diffs[path] = (o.float() - ref.float()).abs().max().item()  # sanity only; tests check exactness
            impls[path] = run
        res = interleave(impls, a.rounds, a.budget_ms)
        for lab, (ms, spread, calls) in res.items():
            if lab.startswith("sdpa"):
                emit(lab, s, ms, spread, calls)
            else:
                per_path[lab].append(flop(s) / ms)
                emit(f"streamfusion_{lab}", s, ms, spread, calls, extra={"max_abs_diff_vs_cudnn": round(diffs[lab], 5)})
        results[s] = res
        del q, k, v, o, ref, impls
        torch.cuda.empty_cache()

    # The best of this build's paths (a prev/ path is there to compare against, never "streamfusion").
    best = max((p for p in paths if not p.startswith("prev/")), key=lambda p: statistics.mean(per_path[p]))
    print(f"# fastest path at H={a.heads} D={a.dim}: {best}", file=sys.stderr)
    for s in seqs:
        shape = (a.batch, s, a.heads, a.dim)
        q, k, v = (torch.randn(shape, device="cuda", dtype=torch.bfloat16) for _ in range(3))
        o = torch.empty_like(q)
        best_fn, best_path = lib_of(best)
        impls = {(1, 1): ours(best_fn, q, k, v, o, best_path)}
        for nq, nkv in chunks:
            impls[(nq, nkv)] = ours(best_fn, q, k, v, o, best_path, nq, nkv)
        res = interleave(impls, a.rounds, a.budget_ms) if chunks else {}
        if not chunks:  # no pass 2: the best path's pass-1 figure is "streamfusion"
            res = {(1, 1): results[s][best]}
        for (nq, nkv), (ms, spread, calls) in res.items():
            emit("streamfusion", s, ms, spread, calls, nq, nkv, {"path": best})
        del q, k, v, o, impls
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
