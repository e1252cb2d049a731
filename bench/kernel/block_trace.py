"""Where a block of work's time goes in the warp-specialized kernel: reads the CSV that a launch with
SF_CUDA_BLOCK_TRACE=file writes (one line per block of work: block_trace.cuh) and prints, in SM cycles (medians
over the blocks), the Q load (block start to Q landed), the first K/V tile, the other tiles (per tile), the
output (last tile done to stored: the consumers' barrier, the next block's Q issue, the stores) and the gap to the same SM's next block; then the per-block overhead in units
of one K/V tile and as a share of the SMs' time, and the launch's start and end spread across SMs (global timer);
then the slow blocks against the others (slow_blocks).

  python3 block_trace.py trace_4096.csv [trace_65536.csv ...]
"""
import csv
import statistics
import sys
from collections import defaultdict


def summarize(path):
    rows = [{k: int(v) for k, v in r.items()} for r in csv.DictReader(open(path))]
    rows = [r for r in rows if r["start"] and r["stored"]]
    if not rows:
        return {"file": path, "blocks": 0}
    by_sm = defaultdict(list)
    for r in rows:
        by_sm[r["sm"]].append(r)
    gaps = []
    for blocks in by_sm.values():
        blocks.sort(key=lambda r: r["start"])
        gaps += [b["start"] - a["stored"] for a, b in zip(blocks, blocks[1:])]
    med = lambda xs: statistics.median(xs) if xs else 0.0
    q = med([r["q_landed"] - r["start"] for r in rows])
    first = med([r["first_tile"] - r["q_landed"] for r in rows])
    multi = [r for r in rows if r["kv_tiles"] > 1]
    per_tile = med([(r["tiles_done"] - r["first_tile"]) / (r["kv_tiles"] - 1) for r in multi])
    out = med([r["stored"] - r["tiles_done"] for r in rows])
    parts = {}
    if "met" in rows[0]:  # the output phase in three: the consumers' barrier, the next Q's issue, the stores
        parts = {"barrier": med([r["met"] - r["tiles_done"] for r in rows]),
                 "next_q_issue": med([r["q_issued"] - r["met"] for r in rows]),
                 "stores": med([r["stored"] - r["q_issued"] for r in rows])}
    gap = med(gaps)
    tiles = med([r["kv_tiles"] for r in rows])
    overhead = q + (first - per_tile) + out + gap
    t0 = min(r["start_ns"] for r in rows)
    t1 = max(r["end_ns"] for r in rows)
    first_start = sorted(min(r["start_ns"] for r in b) - t0 for b in by_sm.values())
    last_end = sorted(t1 - max(r["end_ns"] for r in b) for b in by_sm.values())
    return {"file": path, "blocks": len(rows), "sms": len(by_sm), "kv_tiles": tiles, "q_load": q,
            "first_tile": first, "per_tile": per_tile, "output": out, "gap": gap,
            "overhead_tiles": overhead / per_tile if per_tile else 0.0,
            "overhead_share": overhead / (overhead + tiles * per_tile) if per_tile else 0.0,
            "output_parts": parts, "launch_us": (t1 - t0) / 1e3, "start_spread_us": first_start[-1] / 1e3,
            "idle_at_end_us_median": statistics.median(last_end) / 1e3, "idle_at_end_us_max": last_end[-1] / 1e3}


def slow_blocks(path):
    """Blocks whose tiles ran slow (per tile at least 12 % over the median) against the others: how long their
    consumer warpgroups waited for K/V stages to fill and the producer for stages to empty (cycles per tile), and
    how far apart the three warpgroups finished the block's ninth tile (cycles; a third of a tile apart when they
    take turns, near zero when they run in step). None for traces without these columns."""
    rows = [{k: int(v) for k, v in r.items()} for r in csv.DictReader(open(path))]
    rows = [r for r in rows if r["start"] and r["stored"] and r["kv_tiles"] > 9 and "full_wait0" in r]
    if not rows:
        return None
    per_tile = lambda r: (r["tiles_done"] - r["first_tile"]) / (r["kv_tiles"] - 1)
    med = statistics.median([per_tile(r) for r in rows])
    out = {}
    for name, group in (("normal", [r for r in rows if per_tile(r) < 1.12 * med]),
                        ("slow", [r for r in rows if per_tile(r) >= 1.12 * med])):
        if not group:
            continue
        m = lambda f: statistics.median([f(r) for r in group])
        out[name] = {"blocks": len(group), "per_tile": m(per_tile),
                     "full_wait": m(lambda r: (r["full_wait0"] + r["full_wait1"] + r["full_wait2"]) / 3 / r["kv_tiles"]),
                     "empty_wait": m(lambda r: r["empty_wait"] / r["kv_tiles"]),
                     "spread": m(lambda r: max(r["tile8_0"], r["tile8_1"], r["tile8_2"]) -
                                 min(r["tile8_0"], r["tile8_1"], r["tile8_2"]))}
    return out


def main():
    for path in sys.argv[1:]:
        s = summarize(path)
        if not s["blocks"]:
            print(f"{path}: no records")
            continue
        print(f"{s['file']}: {s['blocks']} blocks on {s['sms']} SMs, {s['kv_tiles']:.0f} K/V tiles each; launch "
              f"{s['launch_us']:.1f} us (first blocks start within {s['start_spread_us']:.1f} us; SMs idle at the "
              f"end {s['idle_at_end_us_median']:.1f} us median, {s['idle_at_end_us_max']:.1f} max)")
        print(f"  cycles (median): Q load {s['q_load']:.0f}, first tile {s['first_tile']:.0f}, other tiles "
              f"{s['per_tile']:.0f} each, output {s['output']:.0f}, gap to the next block {s['gap']:.0f}")
        if s["output_parts"]:
            print("  output, in parts: " + ", ".join(f"{k.replace('_', ' ')} {v:.0f}" for k, v in s["output_parts"].items()))
        print(f"  per-block overhead: {s['overhead_tiles']:.2f} tiles, {100 * s['overhead_share']:.1f} % of a "
              f"block's time")
        groups = slow_blocks(path)
        for name, g in (groups or {}).items():
            print(f"  {name} blocks: {g['blocks']}, {g['per_tile']:.0f} cycles per tile; per tile a consumer "
                  f"warpgroup waited {g['full_wait']:.0f} for K/V, the producer {g['empty_wait']:.0f} for a free "
                  f"stage; warpgroups {g['spread']:.0f} cycles apart at tile 9")


if __name__ == "__main__":
    main()
