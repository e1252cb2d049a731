"""How fast a rank's share of a distributed layer runs, per unit of work, against the whole layer on one GPU.

A 1x4 layer's rank computes S/4 query rows against all S keys; the scaling-efficiency target compares the layer with
the whole S x S layer on one GPU / 4. Four busy GPUs timing their share at once (gpu-attention's all-P compute share)
read 104-107 % of the one-GPU time / 4 (bench/sp/RESULTS.md), while the whole layer on all four GPUs at once ran
within 2 % of one GPU alone (TRACES.md, session 30, "one busy GPU against four"). This script times the share's
shape on ONE GPU, interleaved with the whole layer in the same rounds (interleaved_bench.interleave), so that what
the shorter call costs per unit of work shows apart from the clocks of four busy GPUs.

For each S: our kernel on the whole layer (S x S), on S/f rows x S keys for each fraction f, and the same share with
K/V in f chunks (the 1x4 ring's one call reads f landed blocks); variants of the share's launch (SPLIT tail off,
two or three consumer warpgroups); cuDNN SDPA on the whole layer and on the share, for a peer's view of the same
cost. Prints one JSON line per timing with `per_whole` = time x f / whole-layer time (1.00: the share costs its
fraction exactly).

  python3 share_rate.py --lib build/libsf_bench_capi.so --heads 24 --dim 128 --seqs 16384,65536 --fractions 2,4
  python3 share_rate.py --lib a/libsf_bench_capi.so --prev-lib b/libsf_bench_capi.so --paths hopper_ws,prev/hopper_ws
"""
import argparse
import ctypes
import json
import os
import sys

import torch
from torch.nn.attention import SDPBackend

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from interleaved_bench import DEFAULT_ENV, VARIANTS, interleave, sdpa, warm_up  # noqa: E402


def load_rect(path):
    f = ctypes.CDLL(path).sf_bench_attention_rect
    f.argtypes = [ctypes.c_void_p] * 4 + [ctypes.c_longlong] * 5 + [ctypes.c_int] * 2 + [ctypes.c_void_p,
                                                                                          ctypes.c_char_p, ctypes.c_int]
    f.restype = ctypes.c_int
    return f


def ours_rect(fn, q, k, v, o, rows, kv_chunks, path):
    """Our kernel on the first `rows` query rows of q against all of k, v (path as in interleaved_bench.ours)."""
    b, s, h, d = k.shape
    err = ctypes.create_string_buffer(512)
    stream = torch.cuda.current_stream().cuda_stream
    kernel_path, _, option = path.partition(":")
    env = dict(DEFAULT_ENV, SF_CUDA_ATTENTION_PATH=kernel_path, **VARIANTS[option])

    def run():
        os.environ.update(env)
        rc = fn(q.data_ptr(), k.data_ptr(), v.data_ptr(), o.data_ptr(), b, rows, s, h, d, 0, kv_chunks, stream, err,
                512)
        if rc != 0:
            raise RuntimeError(err.value.decode())
    return run


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lib", required=True)
    ap.add_argument("--heads", type=int, default=24)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--seqs", default="16384,36864,65536")
    ap.add_argument("--fractions", default="2,4")
    ap.add_argument("--paths", default="hopper_ws,hopper_ws:nosplit,hopper_ws2,hopper_ws3",
                    help="variants of our kernel timed on each share (interleaved_bench.VARIANTS)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--budget-ms", type=float, default=400.0)
    ap.add_argument("--no-cudnn", action="store_true")
    ap.add_argument("--prev-lib", help="a second build of the library (e.g. the last commit's): paths named prev/PATH "
                    "in --paths time it on the share, and `prev whole` on the whole layer, in the same rounds")
    a = ap.parse_args()
    fn = load_rect(a.lib)
    prev_fn = load_rect(a.prev_lib) if a.prev_lib else None
    if any(p.startswith("prev/") for p in a.paths.split(",")) and prev_fn is None:
        sys.exit("share_rate: paths prev/... need --prev-lib")
    lib_of = lambda path: (prev_fn, path[len("prev/"):]) if path.startswith("prev/") else (fn, path)
    card = torch.cuda.get_device_name()
    warm_up(3.0)
    for s in (int(x) for x in a.seqs.split(",")):
        q, k, v = (torch.randn(1, s, a.heads, a.dim, device="cuda", dtype=torch.bfloat16) for _ in range(3))
        o = torch.empty_like(q)
        impls, work = {}, {}
        impls["ours whole"] = ours_rect(fn, q, k, v, o, s, 1, "hopper_ws")
        work["ours whole"] = 1
        if prev_fn is not None:
            impls["prev whole"], work["prev whole"] = ours_rect(prev_fn, q, k, v, o, s, 1, "hopper_ws"), 1
        for f in (int(x) for x in a.fractions.split(",")):
            rows = s // f
            for path in a.paths.split(","):
                lab = f"ours 1/{f} {path}"
                lib, kernel_path = lib_of(path)
                impls[lab], work[lab] = ours_rect(lib, q, k, v, o, rows, 1, kernel_path), f
            lab = f"ours 1/{f} hopper_ws kv{f}"
            impls[lab], work[lab] = ours_rect(fn, q, k, v, o, rows, f, "hopper_ws"), f
            if not a.no_cudnn:
                impls[f"cudnn 1/{f}"], work[f"cudnn 1/{f}"] = sdpa(SDPBackend.CUDNN_ATTENTION, q[:, :rows], k, v), f
        if not a.no_cudnn:
            impls["cudnn whole"], work["cudnn whole"] = sdpa(SDPBackend.CUDNN_ATTENTION, q, k, v), 1
        # The share's output checked once against cuDNN on the same rows (a timing of a wrong call means nothing).
        f = int(a.fractions.split(",")[-1])
        rows = s // f
        o.fill_(float("nan"))
        impls[f"ours 1/{f} hopper_ws kv{f}"]()
        ref = sdpa(SDPBackend.CUDNN_ATTENTION, q[:, :rows], k, v)().transpose(1, 2)
        err = (o[:, :rows].float() - ref.float()).abs().max().item()
        print(json.dumps({"card": card, "seq": s, "check": f"share of {rows} rows vs cuDNN", "max_abs": err}))
        if not err < 2e-2:
            sys.exit(f"share_rate: our share of {rows} rows differs from cuDNN by {err} (expected < 0.02)")
        res = interleave(impls, a.rounds, a.budget_ms)
        for lab, (ms, spread, n) in res.items():
            base = "cudnn whole" if lab.startswith("cudnn") else "prev whole" if "prev" in lab else "ours whole"
            whole = res[base][0]
            print(json.dumps({"card": card, "seq": s, "heads": a.heads, "dim": a.dim, "impl": lab, "ms": round(ms, 4),
                              "per_whole": round(ms * work[lab] / whole, 4), "spread": round(spread, 4),
                              "calls_per_round": n}), flush=True)
        del q, k, v, o
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
