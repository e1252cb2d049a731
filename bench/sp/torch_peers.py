#!/usr/bin/env python3
"""PyTorch-only peers of one attention layer, for bench/sp/run.sh (DESIGN.md section 7: the peer measured in
the same run). One process per GPU, started by `streamfusion-gpu launch -n P -- python3 torch_peers.py ...`
(RANK/WORLD_SIZE/LOCAL_RANK/MASTER_ADDR/MASTER_PORT as torchrun sets them).

  ulysses: all_to_all_single (heads scattered, sequence gathered) + cuDNN SDPA + all_to_all_single back
  ring:    torch.distributed.tensor.experimental.context_parallel (load balancing off) around cuDNN/flash SDPA
  single:  cuDNN SDPA of the whole layer on one GPU (rank 0)

Inputs are random bf16 [1, S, H, D] split evenly by sequence. Prints JSON lines (rank 0) with median ms.
"""
import argparse
import json
import math
import os
import statistics
import sys

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel


def sustained_warmup(fn, warmup, sustain_s, collective):
    """Warm-ups: `warmup`, plus as many runs of fn as sustain_s seconds take (from three probe runs), as
    gpu-attention --sustain-s; collective: every rank runs fn together and takes the most any rank needs."""
    if sustain_s <= 0:
        return warmup
    torch.cuda.synchronize()
    a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    a.record()
    for _ in range(3):
        fn()
    b.record()
    torch.cuda.synchronize()
    more = min(100000, math.ceil(sustain_s * 1e3 / max(a.elapsed_time(b) / 3, 1e-3)))
    if collective:
        more = int(max_over_ranks(more))
    return warmup + more


def timed(fn, warmup, iters, sustain_s=0.0):
    warmup = sustained_warmup(fn, warmup, sustain_s, dist.is_initialized())
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        a = torch.cuda.Event(enable_timing=True)
        b = torch.cuda.Event(enable_timing=True)
        dist.barrier() if dist.is_initialized() else None
        a.record()
        fn()
        b.record()
        torch.cuda.synchronize()
        times.append(a.elapsed_time(b))
    return statistics.median(times)


def max_over_ranks(x):
    t = torch.tensor([x], device="cuda", dtype=torch.float64)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return t.item()


def ulysses_layer(q, k, v, P):
    # q, k, v: [S_loc, H, D] -> scatter heads, gather sequence -> SDPA -> back.
    S_loc, H, D = q.shape

    def fwd(x):
        x = x.reshape(S_loc, P, H // P, D).permute(1, 0, 2, 3).contiguous()
        y = torch.empty_like(x)
        dist.all_to_all_single(y, x)
        return y.reshape(P * S_loc, H // P, D).permute(1, 0, 2).unsqueeze(0)  # [1, H/P, S, D]

    qs, ks, vs = fwd(q), fwd(k), fwd(v)
    with sdpa_kernel(SDPBackend.CUDNN_ATTENTION):
        o = F.scaled_dot_product_attention(qs, ks, vs)  # [1, H/P, S, D]
    o = o.squeeze(0).permute(1, 0, 2).reshape(P, S_loc, H // P, D).contiguous()
    back = torch.empty_like(o)
    dist.all_to_all_single(back, o)
    return back.permute(1, 0, 2, 3).reshape(S_loc, H, D)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seq", default="16384")
    ap.add_argument("--heads", type=int, default=24)
    ap.add_argument("--head-dim", type=int, default=128)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--sustain-s", type=float, default=0.0,
                    help="seconds of its own load before each timing, on top of the warm-ups")
    ap.add_argument("--peers", default="single,ulysses,ring")
    ap.add_argument("--label", default="")
    ap.add_argument("--json", default="")
    a = ap.parse_args()

    rank = int(os.environ.get("RANK", 0))
    world = int(os.environ.get("WORLD_SIZE", 1))
    local = int(os.environ.get("LOCAL_RANK", 0))
    torch.cuda.set_device(local)
    dist.init_process_group("nccl", device_id=torch.device("cuda", local))
    P = world
    H, D = a.heads, a.head_dim
    peers = a.peers.split(",")
    rows = []
    for S in [int(s) for s in a.seq.split(",")]:
        if S % P:
            S -= S % P
        g = torch.Generator(device="cuda").manual_seed(1234)
        full = [torch.randn(S, H, D, device="cuda", dtype=torch.bfloat16, generator=g) for _ in range(3)]
        S_loc = S // P
        q, k, v = (t[rank * S_loc:(rank + 1) * S_loc].contiguous() for t in full)
        res = {}
        if "single" in peers:
            ms = 0.0
            if rank == 0:
                qf, kf, vf = (t.permute(1, 0, 2).unsqueeze(0) for t in full)

                def whole_layer():
                    with sdpa_kernel(SDPBackend.CUDNN_ATTENTION):
                        return F.scaled_dot_product_attention(qf, kf, vf)

                # Rank 0 alone: no collectives inside the timed region.
                for _ in range(sustained_warmup(whole_layer, a.warmup, a.sustain_s, False)):
                    whole_layer()
                torch.cuda.synchronize()
                ts = []
                for _ in range(a.iters):
                    e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                    e0.record()
                    whole_layer()
                    e1.record()
                    torch.cuda.synchronize()
                    ts.append(e0.elapsed_time(e1))
                ms = statistics.median(ts)
                del qf, kf, vf
            dist.barrier()
            res["single"] = ms
        if "ulysses" in peers and H % P == 0:
            ms = timed(lambda: ulysses_layer(q, k, v, P), a.warmup, a.iters, a.sustain_s)
            # correctness against one GPU for this rank's rows
            out = ulysses_layer(q, k, v, P)
            with sdpa_kernel(SDPBackend.CUDNN_ATTENTION):
                ref = F.scaled_dot_product_attention(q.permute(1, 0, 2).unsqueeze(0), full[1].permute(1, 0, 2).unsqueeze(0),
                                                     full[2].permute(1, 0, 2).unsqueeze(0)).squeeze(0).permute(1, 0, 2)
            err = (out.float() - ref.float()).abs().max().item()
            res["ulysses"] = max_over_ranks(ms)
            res["ulysses_err"] = max_over_ranks(err)
        if "ring" in peers:
            try:
                from torch.distributed.device_mesh import init_device_mesh
                from torch.distributed.tensor.experimental import context_parallel
                from torch.distributed.tensor.experimental import _attention as cp_attn
                try:
                    cp_attn._cp_options.enable_load_balance = False
                except Exception:
                    pass
                mesh = init_device_mesh("cuda", (P,))
                qf, kf, vf = (t.permute(1, 0, 2).unsqueeze(0).contiguous() for t in full)  # [1, H, S, D]
                backend = os.environ.get("SF_TORCH_RING_BACKEND", "cudnn")
                bk = SDPBackend.CUDNN_ATTENTION if backend == "cudnn" else SDPBackend.FLASH_ATTENTION
                # context_parallel shards the buffers in place on entry (each rank keeps its sequence shard) and
                # runs every SDPA inside the block as ring attention over the mesh; time SDPA inside one block.
                # (A first try with buffers=[] failed with IndexError on torch 2.11, 2026-11-27.)
                with context_parallel(mesh, buffers=[qf, kf, vf], buffer_seq_dims=[2, 2, 2],
                                      no_restore_buffers={qf, kf, vf}):
                    def ring_sharded():
                        with sdpa_kernel(bk):
                            return F.scaled_dot_product_attention(qf, kf, vf)

                    ms = timed(ring_sharded, a.warmup, a.iters, a.sustain_s)
                res["ring"] = max_over_ranks(ms)
                res["ring_backend"] = backend
            except Exception as e:  # report, do not hide
                res["ring"] = None
                res["ring_error"] = repr(e)[:300]
        if rank == 0:
            row = {"label": a.label, "seq": S, "heads": H, "head_dim": D, "world": P, **res}
            rows.append(row)
            print(json.dumps(row), flush=True)
            if a.json:
                with open(a.json, "a") as f:
                    f.write(json.dumps(row) + "\n")
        del full, q, k, v
        torch.cuda.empty_cache()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
