"""Times PyTorch SDPA's FlashAttention-2 and cuDNN backends on the shapes of bench/kernel/run.sh.

Prints one JSON line per (backend, shape), same fields as sf_kernel_bench. Inputs are [B, S, H, D] random
tensors viewed as [B, H, S, D] (the layout a DiT keeps), times are medians of CUDA-event-timed calls after a
warm-up.
"""
import argparse
import json
import math

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
import torch.nn.functional as F


def time_ms(fn, budget_ms):
    fn()
    torch.cuda.synchronize()
    e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    e0.record(); fn(); e1.record(); e1.synchronize()
    first = e0.elapsed_time(e1)
    reps = max(3, min(50, int(budget_ms / max(first, 1e-3))))
    times = []
    for _ in range(reps):
        e0.record(); fn(); e1.record(); e1.synchronize()
        times.append(e0.elapsed_time(e1))
    times.sort()
    return times[len(times) // 2], reps


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--heads", type=int, default=24)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--seqs", default="4096")
    ap.add_argument("--budget-ms", type=float, default=400)
    args = ap.parse_args()
    backends = {"sdpa_flash2": SDPBackend.FLASH_ATTENTION, "sdpa_cudnn": SDPBackend.CUDNN_ATTENTION}
    for s in [int(x) for x in args.seqs.split(",")]:
        shape = (args.batch, s, args.heads, args.dim)
        q, k, v = (torch.randn(shape, device="cuda", dtype=torch.bfloat16).transpose(1, 2) for _ in range(3))
        for name, backend in backends.items():
            rec = {"impl": name, "dtype": "bf16", "B": args.batch, "H": args.heads, "D": args.dim, "S": s,
                   "q_chunks": 1, "kv_chunks": 1}
            try:
                with sdpa_kernel([backend]):
                    ms, reps = time_ms(lambda: F.scaled_dot_product_attention(q, k, v), args.budget_ms)
                rec.update(ms=round(ms, 4), reps=reps,
                           tflops=round(4 * args.batch * args.heads * s * s * args.dim / (ms * 1e-3) / 1e12, 1))
            except RuntimeError as e:  # a backend that refuses the shape: report, do not abort the sweep
                rec.update(error=str(e).splitlines()[0][:200])
            print(json.dumps(rec), flush=True)
        del q, k, v
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
