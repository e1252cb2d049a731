"""How a power-capped GPU's time for one attention call drifts under sustained load, second by second.

The scaling-efficiency figure divides the one-GPU time by the 1x4 layer's time, each timed after a few seconds of
its own load (gpu-attention --sustain-s 3). Is that the steady state of a GPU serving without pause? This script
keeps our kernel busy on one call (the whole Flux layer, or one rank's share of it) for --seconds and prints, per
window of --window-s, the median call time and the call count, so that a clock log beside it (nvidia-smi) shows
where time and temperature level off. On one H200 they did within 6 s and held for 70 s (bench/kernel/results/
h200-2026-11-29-share-rate/). bench/sp/four_busy.sh runs one per GPU, alone and all at once.

  python3 sustain_curve.py --lib build/libsf_bench_capi.so --seq 65536 --rows 65536 --seconds 60 --window-s 2

With --prev-lib the windows alternate between this build and another (arm "new", then "prev", ...) on the same
tensors: a before/after of a change under the same sustained load and power cap, where a difference of 0.2 % shows
(one window's median holds to about 0.1 % once the GPU has levelled off). With --peer cudnn they alternate between
our kernel and PyTorch SDPA's cuDNN backend on the same rows: the two under the same sustained load.
"""
import argparse
import json
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from interleaved_bench import sdpa  # noqa: E402
from share_rate import load_rect, ours_rect  # noqa: E402
from torch.nn.attention import SDPBackend  # noqa: E402


def window_times(run, t_end):
    """One window: calls of `run` queued back to back until t_end (perf_counter), with a CUDA event between each
    two and at most a few calls queued ahead of the host, so that the window ends on time. The calls' ms."""
    events = [torch.cuda.Event(enable_timing=True)]
    events[0].record()
    while time.perf_counter() < t_end:
        run()
        events.append(torch.cuda.Event(enable_timing=True))
        events[-1].record()
        if len(events) > 4:
            events[-4].synchronize()
    events[-1].synchronize()
    return [events[i].elapsed_time(events[i + 1]) for i in range(len(events) - 1)]


def steady_median(window_medians):
    """The median of one arm's window medians without its first window (the GPU levelling off)."""
    return statistics.median(window_medians[1:])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lib", required=True)
    ap.add_argument("--seq", type=int, default=65536, help="keys (the layer's sequence length)")
    ap.add_argument("--rows", type=int, default=0, help="query rows (0: all, the whole layer)")
    ap.add_argument("--heads", type=int, default=24)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--window-s", type=float, default=2.0)
    ap.add_argument("--label", default="")
    ap.add_argument("--prev-lib", help="a second build: windows alternate between --lib and it")
    ap.add_argument("--peer", choices=["cudnn"], help="windows alternate between our kernel and this peer")
    a = ap.parse_args()
    rows = a.rows or a.seq
    fn = load_rect(a.lib)
    q, k, v = (torch.randn(1, a.seq, a.heads, a.dim, device="cuda", dtype=torch.bfloat16) for _ in range(3))
    o = torch.empty_like(q)
    arms = [("new" if a.prev_lib else "ours", ours_rect(fn, q, k, v, o, rows, 1, "hopper_ws"))]
    if a.prev_lib:
        arms.append(("prev", ours_rect(load_rect(a.prev_lib), q, k, v, o, rows, 1, "hopper_ws")))
    if a.peer == "cudnn":
        arms.append(("cudnn", sdpa(SDPBackend.CUDNN_ATTENTION, q[:, :rows], k, v)))
    for _, run in arms:
        run()
    torch.cuda.synchronize()
    card = torch.cuda.get_device_name()
    start = time.perf_counter()
    window = 0
    medians = {arm: [] for arm, _ in arms}
    while time.perf_counter() - start < a.seconds:
        arm, run = arms[window % len(arms)]
        utc = time.strftime("%H:%M:%S", time.gmtime())
        times = window_times(run, start + (window + 1) * a.window_s)
        print(json.dumps({"card": card, "label": a.label, "arm": arm, "utc_start": utc, "seq": a.seq, "rows": rows,
                          "heads": a.heads, "t_s": round(time.perf_counter() - start, 2), "calls": len(times),
                          "median_ms": round(statistics.median(times), 4) if times else None}), flush=True)
        if times:
            medians[arm].append(statistics.median(times))
        window += 1
    # Per arm, on stderr (the JSON lines on stdout stay one per window).
    for arm, ms in medians.items():
        if len(ms) > 1:
            print(f"# {a.label} {arm}: {steady_median(ms):.4f} ms, median of {len(ms) - 1} windows "
                  f"(first dropped; {min(ms[1:]):.4f}-{max(ms[1:]):.4f})", file=sys.stderr)

if __name__ == "__main__":
    main()
