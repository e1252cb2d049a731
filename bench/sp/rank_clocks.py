"""Why one GPU's calls run longer than another's: per rank, from the block traces of the same call on every rank
(SF_CUDA_BLOCK_TRACE, one CSV per rank: src/backends/cuda/block_trace.cuh), the call's span, the SM clock its
blocks ran at (their cycle count over their global-timer time) and the cycles a block took. A rank slower at the
same cycles per block runs at a lower clock (the power cap); one slower at the same clock needs more cycles
(contention: copies beside the call, waits for pulled data).

  python3 bench/sp/rank_clocks.py TAG:trace_rank0.csv,trace_rank1.csv,... [TAG:...]
"""
import csv
import statistics
import sys


def rank_figures(path):
    rows = [{k: int(v) for k, v in r.items()} for r in csv.DictReader(open(path))]
    rows = [r for r in rows if r["stored"] > r["start"] and r["end_ns"] > r["start_ns"]]
    if not rows:
        return None
    mhz = [1e3 * (r["stored"] - r["start"]) / (r["end_ns"] - r["start_ns"]) for r in rows]
    return {
        "blocks": len(rows),
        "span_ms": (max(r["end_ns"] for r in rows) - min(r["start_ns"] for r in rows)) / 1e6,
        "mhz": statistics.median(mhz),
        "mcycles": statistics.median(r["stored"] - r["start"] for r in rows) / 1e6,
        "block_us": statistics.median(r["end_ns"] - r["start_ns"] for r in rows) / 1e3,
    }


def main():
    print("| call | rank | blocks | span ms | SM clock MHz (median block) | Mcycles per block | us per block |")
    print("|---|---|---|---|---|---|---|")
    for arg in sys.argv[1:]:
        tag, files = arg.split(":", 1)
        for rank, path in enumerate(files.split(",")):
            try:
                f = rank_figures(path)
            except (OSError, ValueError, KeyError) as e:
                print(f"| {tag} | {rank} | unreadable: {e} | | | | |")
                continue
            if f is None:
                print(f"| {tag} | {rank} | 0 | | | | |")
                continue
            print(f"| {tag} | {rank} | {f['blocks']} | {f['span_ms']:.3f} | {f['mhz']:.0f} | {f['mcycles']:.3f} | "
                  f"{f['block_us']:.1f} |")


if __name__ == "__main__":
    main()
