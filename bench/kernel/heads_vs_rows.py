"""One rank's share of a 1xP layer in the two shapes a scheme can give it, under sustained load: the ring's
(S/P query rows x all H heads against all S keys) or Ulysses' (all S rows x H/P heads). The work is the same; the
calls differ in how their rows fill the kernel's 192-row tiles (S/P rows can leave each head a padded last tile that
S rows pad far less: at Flux S=65536 on 1x4 16384 rows are 85 1/3 tiles per head, 65536 are 341 1/3) and in how
many items they have. Windows alternate between the two shapes on one GPU (sustain_curve.py's protocol: each
window's median, the first of each shape dropped), both checked against cuDNN first.

  python3 heads_vs_rows.py --lib build/libsf_bench_capi.so --seq 65536 --heads 24 --dim 128 --parts 4
"""
import argparse
import json
import os
import statistics
import sys
import time

import torch
from torch.nn.attention import SDPBackend

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from interleaved_bench import sdpa  # noqa: E402
from share_rate import load_rect, ours_rect  # noqa: E402
from sustain_curve import steady_median, window_times  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lib", required=True)
    ap.add_argument("--seq", type=int, default=65536)
    ap.add_argument("--heads", type=int, default=24)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--parts", type=int, default=4, help="P: the ranks of the 1xP layer")
    ap.add_argument("--seconds", type=float, default=96.0)
    ap.add_argument("--window-s", type=float, default=6.0)
    a = ap.parse_args()
    if a.heads % a.parts or a.seq % a.parts:
        sys.exit(f"heads_vs_rows: heads ({a.heads}) and seq ({a.seq}) must divide by parts ({a.parts})")
    fn = load_rect(a.lib)
    card = torch.cuda.get_device_name()
    arms = []
    for name, heads, rows in (("rows", a.heads, a.seq // a.parts), ("heads", a.heads // a.parts, a.seq)):
        q, k, v = (torch.randn(1, a.seq, heads, a.dim, device="cuda", dtype=torch.bfloat16) for _ in range(3))
        o = torch.full_like(q, float("nan"))
        run = ours_rect(fn, q, k, v, o, rows, 1, "hopper_ws")
        run()
        ref = sdpa(SDPBackend.CUDNN_ATTENTION, q[:, :rows], k, v)().transpose(1, 2)
        err = (o[:, :rows].float() - ref.float()).abs().max().item()
        print(json.dumps({"card": card, "shape": name, "rows": rows, "heads": heads, "check": "vs cuDNN",
                          "max_abs": err}), flush=True)
        if not err < 2e-2:
            sys.exit(f"heads_vs_rows: the {name} call differs from cuDNN by {err} (expected < 0.02)")
        arms.append((name, rows, heads, run))
    torch.cuda.synchronize()
    medians = {name: [] for name, *_ in arms}
    start = time.perf_counter()
    window = 0
    while time.perf_counter() - start < a.seconds:
        name, rows, heads, run = arms[window % len(arms)]
        utc = time.strftime("%H:%M:%S", time.gmtime())
        times = window_times(run, start + (window + 1) * a.window_s)
        med = statistics.median(times)
        medians[name].append(med)
        print(json.dumps({"card": card, "shape": name, "rows": rows, "heads": heads, "seq": a.seq,
                          "utc_start": utc, "calls": len(times), "median_ms": round(med, 4)}), flush=True)
        window += 1
    summary = {name: steady_median(ms) for name, ms in medians.items() if len(ms) > 1}
    if len(summary) == 2:
        print(json.dumps({"card": card, "summary": summary, "heads_over_rows": round(summary["heads"] /
                                                                                     summary["rows"], 4)}))


if __name__ == "__main__":
    main()
