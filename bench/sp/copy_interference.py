#!/usr/bin/env python3
"""How much copy-engine traffic slows an attention call on the same GPU, and through what.

Trace 5 (bench/sp/TRACES.md) saw a 24-head 9216 x 9216 call take 1.53 ms alone and 1.76-1.85 ms beside the ring's
copy-engine pulls. This times our kernel (libsf_bench_capi.so, the layer's kernel) on GPU 0, calls queued back to
back, while copies of another kind run on side streams, in an order shuffled every round:

  none       nothing beside it
  ce0_pull   GPU 0's copy engine pulls from GPU 1 (cudaMemcpyPeerAsync on a GPU-0 stream): what a one-sided
             pull (nvshmemx_getmem_on_stream) does on the puller
  ce1_pull   GPU 1's copy engine pulls from GPU 0: GPU 0's memory read by a peer, as when its ring peers pull
  ring       both at once (what each GPU of a ring sees)
  ce0_local  GPU 0's copy engine copies within GPU 0: its memory traffic without NVLink
  ring_half  as ring, but each copy followed by an idle gap as long as itself: half the rate

Per mode: the median call time, the copies' achieved GB/s over the calls, and GPU 0's mean SM clock and power
(NVML, sampled every 10 ms) while the calls ran. One JSON line per (mode, round) and a summary table.

  python3 copy_interference.py --lib BUILD/libsf_bench_capi.so [--heads 24] [--seq 9216] [--rounds 5]
"""
import argparse
import ctypes
import json
import os
import random
import statistics
import sys
import threading
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "kernel"))
from interleaved_bench import load_lib as load_attention  # noqa: E402  (libsf_bench_capi's C signature)

try:
    import pynvml
except ImportError:  # clocks and power are left out
    pynvml = None


class Sampler:
    """GPU 0's SM clock (MHz) and power (W), every 10 ms while running."""

    def __init__(self):
        self.handle = None
        if pynvml is not None:
            pynvml.nvmlInit()
            self.handle = pynvml.nvmlDeviceGetHandleByIndex(0)

    def __enter__(self):
        self.clocks, self.power, self.stop = [], [], False
        if self.handle is not None:
            self.thread = threading.Thread(target=self.loop)
            self.thread.start()
        return self

    def loop(self):
        while not self.stop:
            self.clocks.append(pynvml.nvmlDeviceGetClockInfo(self.handle, pynvml.NVML_CLOCK_SM))
            self.power.append(pynvml.nvmlDeviceGetPowerUsage(self.handle) / 1000.0)
            time.sleep(0.01)

    def __exit__(self, *exc):
        self.stop = True
        if self.handle is not None:
            self.thread.join()

    def summary(self):
        if not self.clocks:
            return None, None
        return statistics.mean(self.clocks), statistics.mean(self.power)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lib", required=True)
    ap.add_argument("--heads", type=int, default=24)
    ap.add_argument("--seq", type=int, default=9216)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--copy-mib", type=int, default=64)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    attention = load_attention(args.lib)
    import cupy  # cudaMemcpyPeerAsync / cudaMemcpyAsync on a chosen stream (the stream's GPU does the copy)

    d0, d1 = torch.device("cuda:0"), torch.device("cuda:1")
    shape = (1, args.seq, args.heads, args.dim)
    q, k, v = (torch.randn(shape, device=d0, dtype=torch.bfloat16) for _ in range(3))
    o = torch.empty_like(q)
    err = ctypes.create_string_buffer(256)
    main_stream = torch.cuda.Stream(d0)

    def call():
        rc = attention(q.data_ptr(), k.data_ptr(), v.data_ptr(), o.data_ptr(), 1, args.seq, args.heads, args.dim,
                       0, 1, 1, ctypes.c_void_p(main_stream.cuda_stream), err, 256)
        if rc != 0:
            raise RuntimeError(err.value.decode())

    n = args.copy_mib << 20
    bufs = {name: torch.empty(n, device=dev, dtype=torch.uint8) for name, dev in
            (("a0", d0), ("b0", d0), ("a1", d1), ("b1", d1))}
    side0, side1 = torch.cuda.Stream(d0), torch.cuda.Stream(d1)
    for dev_a, dev_b in ((0, 1), (1, 0)):
        with cupy.cuda.Device(dev_a):
            try:
                cupy.cuda.runtime.deviceEnablePeerAccess(dev_b)
            except cupy.cuda.runtime.CUDARuntimeError:
                pass  # already enabled (PyTorch may have done it)

    def peer_copy(dst, dst_dev, src, src_dev, stream):
        cupy.cuda.runtime.memcpyPeerAsync(dst.data_ptr(), dst_dev, src.data_ptr(), src_dev, n, stream.cuda_stream)

    # Each mode: a list of (issue one copy, stream) pairs, and whether each copy is followed by an equal idle gap.
    modes = {
        "none": ([], False),
        "ce0_pull": ([(lambda: peer_copy(bufs["a0"], 0, bufs["a1"], 1, side0), side0)], False),
        "ce1_pull": ([(lambda: peer_copy(bufs["b1"], 1, bufs["b0"], 0, side1), side1)], False),
        "ring": ([(lambda: peer_copy(bufs["a0"], 0, bufs["a1"], 1, side0), side0),
                  (lambda: peer_copy(bufs["b1"], 1, bufs["b0"], 0, side1), side1)], False),
        "ce0_local": ([(lambda: peer_copy(bufs["a0"], 0, bufs["b0"], 0, side0), side0)], False),
        "ring_half": ([(lambda: peer_copy(bufs["a0"], 0, bufs["a1"], 1, side0), side0),
                       (lambda: peer_copy(bufs["b1"], 1, bufs["b0"], 0, side1), side1)], True),
    }

    # One copy's time alone, to know how many to queue so that they cover all the calls.
    for _ in range(3):
        peer_copy(bufs["a0"], 0, bufs["a1"], 1, side0)
    side0.synchronize()
    t = time.perf_counter()
    for _ in range(10):
        peer_copy(bufs["a0"], 0, bufs["a1"], 1, side0)
    side0.synchronize()
    copy_s = (time.perf_counter() - t) / 10
    for _ in range(5):
        call()
    main_stream.synchronize()
    t = time.perf_counter()
    for _ in range(5):
        call()
    main_stream.synchronize()
    call_s = (time.perf_counter() - t) / 5
    window = call_s * args.calls
    per_stream = int(window / copy_s * 1.3) + 4
    print(f"# one {args.copy_mib} MiB peer copy alone: {copy_s * 1e3:.3f} ms ({n / copy_s / 1e9:.0f} GB/s); one call "
          f"alone: {call_s * 1e3:.3f} ms; queuing {per_stream} copies per stream", flush=True)

    def gap_kernel(stream, seconds):  # an idle gap on the stream: a sleep kernel of that length
        with torch.cuda.stream(stream):
            torch.cuda._sleep(int(seconds * 1.4e9))  # cycles at about the SM clock

    results = []
    out = open(args.json, "w") if args.json else None
    order = list(modes)
    for rnd in range(args.rounds):
        random.shuffle(order)
        for mode in order:
            copies, half = modes[mode]
            starts, ends = {}, {}
            torch.cuda.synchronize(d0), torch.cuda.synchronize(d1)
            for issue, stream in copies:
                ev = torch.cuda.Event(enable_timing=True)
                ev.record(stream)
                starts[id(stream)] = (ev, stream)
            for _ in range(per_stream):
                for issue, stream in copies:
                    issue()
                    if half:
                        gap_kernel(stream, copy_s)
            for issue, stream in copies:
                ev = torch.cuda.Event(enable_timing=True)
                ev.record(stream)
                ends[id(stream)] = ev
            # Let the copies get going, then time the calls while they run.
            time.sleep(0.002 if copies else 0)
            events = [torch.cuda.Event(enable_timing=True) for _ in range(args.calls + 1)]
            with Sampler() as sampler:
                events[0].record(main_stream)
                for i in range(args.calls):
                    call()
                    events[i + 1].record(main_stream)
                main_stream.synchronize()
            for stream in (side0, side1):
                stream.synchronize()
            times = [events[i].elapsed_time(events[i + 1]) for i in range(args.calls)]
            gbps = []
            for key, (ev, stream) in starts.items():
                span_ms = ev.elapsed_time(ends[key])
                gbps.append(per_stream * n / (span_ms * 1e-3) / 1e9)
            clock, power = sampler.summary()
            row = {"mode": mode, "round": rnd, "heads": args.heads, "seq": args.seq, "dim": args.dim,
                   "call_ms_median": statistics.median(times), "call_ms_min": min(times),
                   "copy_gbps_per_stream": [round(g, 1) for g in gbps],
                   "calls_span_ms": events[0].elapsed_time(events[-1]),
                   "copy_span_ms": [round(ev.elapsed_time(ends[key]), 2) for key, (ev, _) in starts.items()],
                   "sm_clock_mhz": clock, "power_w": power}
            results.append(row)
            if out:
                out.write(json.dumps(row) + "\n")
                out.flush()
    print(f"\n| mode | call ms (median of {args.rounds} round medians) | vs none | copy GB/s per stream | "
          f"SM clock MHz | power W |")
    print("| --- | --- | --- | --- | --- | --- |")
    base = statistics.median(r["call_ms_median"] for r in results if r["mode"] == "none")
    for mode in modes:
        rows = [r for r in results if r["mode"] == mode]
        ms = statistics.median(r["call_ms_median"] for r in rows)
        g = statistics.median(statistics.mean(r["copy_gbps_per_stream"]) for r in rows) if modes[mode][0] else 0
        clocks = [r["sm_clock_mhz"] for r in rows if r["sm_clock_mhz"]]
        powers = [r["power_w"] for r in rows if r["power_w"]]
        print(f"| {mode} | {ms:.3f} (rounds {min(r['call_ms_median'] for r in rows):.3f}-"
              f"{max(r['call_ms_median'] for r in rows):.3f}) | {ms / base:.3f} | {g:.0f} | "
              f"{statistics.median(clocks) if clocks else float('nan'):.0f} | "
              f"{statistics.median(powers) if powers else float('nan'):.0f} |")


if __name__ == "__main__":
    main()
