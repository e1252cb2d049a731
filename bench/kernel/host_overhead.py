"""How much of a short call's measured time is host work, for our kernel and PyTorch SDPA (cuDNN).

interleaved_bench.py times one call between two CUDA events with the GPU idle before it, so the host's work for
the call (Python, the ctypes call, argument checks, tensor maps, the launch) runs while the GPU waits and is
counted. Here three figures per implementation and shape, median of 7 rounds, the implementations interleaved:
  single   e0, one call, e1, synchronize (as interleaved_bench.py did until session 7);
  queued   e0, 20 calls back to back, e1: per call, the host's work hidden behind the GPU's (it is shorter);
  host     wall-clock time to submit one call while the GPU is still busy with earlier ones.
Ours with Q in 1 and in 2 chunks (same work, same addresses: only the number of Q views differs).

  python3 host_overhead.py --lib build/libsf_bench_capi.so [--seqs 4096,8192]
"""
import argparse
import json
import statistics
import time

import torch
from torch.nn.attention import SDPBackend

from interleaved_bench import load_lib, ours, sdpa, warm_up


def measure(run, reps=20):
    e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    single = []
    for _ in range(reps):
        e0.record(); run(); e1.record(); e1.synchronize()
        single.append(e0.elapsed_time(e1))
    torch.cuda.synchronize()
    e0.record()
    t0 = time.perf_counter()
    for _ in range(reps):
        run()
    host = (time.perf_counter() - t0) / reps
    e1.record(); e1.synchronize()
    return statistics.median(single) * 1e3, e0.elapsed_time(e1) / reps * 1e3, host * 1e6


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lib", required=True)
    ap.add_argument("--seqs", default="4096,8192")
    ap.add_argument("--rounds", type=int, default=7)
    a = ap.parse_args()
    fn = load_lib(a.lib)
    warm_up()
    for heads, dim in ((24, 128), (48, 64)):
        for s in (int(x) for x in a.seqs.split(",")):
            q, k, v = (torch.randn(1, s, heads, dim, device="cuda", dtype=torch.bfloat16) for _ in range(3))
            o = torch.empty_like(q)
            impls = {"ours": ours(fn, q, k, v, o, "hopper_ws"), "ours_q2": ours(fn, q, k, v, o, "hopper_ws", nq=2),
                     "sdpa_cudnn": sdpa(SDPBackend.CUDNN_ATTENTION, q, k, v)}
            for run in impls.values():
                run()
            res = {lab: [] for lab in impls}
            labels = list(impls)
            for r in range(a.rounds):
                for lab in labels[r % 3:] + labels[:r % 3]:
                    res[lab].append(measure(impls[lab]))
            for lab, xs in res.items():
                single, queued, host = (statistics.median(x[i] for x in xs) for i in range(3))
                print(json.dumps({"impl": lab, "H": heads, "D": dim, "S": s, "single_us": round(single, 1),
                                  "queued_us": round(queued, 1), "host_us": round(host, 1),
                                  "tflops_single": round(4 * heads * s * s * dim / single / 1e6, 1),
                                  "tflops_queued": round(4 * heads * s * s * dim / queued / 1e6, 1)}), flush=True)


if __name__ == "__main__":
    main()
