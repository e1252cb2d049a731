"""Table of baseline_heat.sh: per run, the layer's median and, from the trace of its last forward, every rank's
compute time (the sum of its attention calls). SFU-NVSHMEM rows only; a run of several schemes traces SFU-NVSHMEM
last.

  python3 bench/sp/baseline_heat.py heat.log heat.jsonl
"""
import json
import re
import sys


def main():
    log, jsonl = sys.argv[1], sys.argv[2]
    rows = [r for r in map(json.loads, open(jsonl)) if r["name"] == "SFU-NVSHMEM"]
    runs, current = [], None  # per gpu-attention run: {rank: compute ms} of the traced forward
    for line in open(log):
        if line.startswith("## ") and "rc=" not in line:
            current = {}
            runs.append(current)
        m = re.match(r"# trace of .* rank (\d+)", line)
        if m:
            rank = int(m.group(1))
        m = re.match(r"#  compute intervals ([\d.]+) ms", line)
        if m and current is not None:
            current[rank] = float(m.group(1))
    print("| run | layer median (ms) | one GPU (ms) | efficiency vs one GPU / 4 | traced forward: compute per rank "
          "(ms) | slowest rank |")
    print("|---|---|---|---|---|---|")
    one = [r["one_gpu_ms"] for r in rows if r["one_gpu_ms"] > 0]
    one_ms = sorted(one)[len(one) // 2] if one else 0.0
    for r, ranks in zip(rows, [x for x in runs if x]):
        per_rank = ", ".join(f"{ranks[k]:.2f}" for k in sorted(ranks))
        slowest = max(ranks, key=ranks.get) if ranks else "-"
        eff = f"{one_ms / 4 / r['ms'] * 100:.1f} %" if one_ms else ""
        own = f"{r['one_gpu_ms']:.2f}" if r["one_gpu_ms"] > 0 else "-"
        print(f"| {r['label']} | {r['ms']:.3f} | {own} | {eff} | {per_rank} | {slowest} |")
    print(f"\nEfficiencies against the median one-GPU time of the runs that timed it ({one_ms:.2f} ms).")


if __name__ == "__main__":
    main()
