"""Table of split_ab.sh: for every (S, topology, scheme), the median layer time over the rounds with the kernel's
tail split off (SF_CUDA_SPLIT_TAIL=0) and on (auto), and their ratio; the one-GPU baseline likewise.

  python3 bench/sp/split_ab.py ab.jsonl "card"
"""
import json
import statistics
import sys
from collections import defaultdict


def main():
    path, card = sys.argv[1], sys.argv[2]
    times = defaultdict(lambda: defaultdict(list))  # key -> split -> [ms]
    bad = 0
    for line in open(path):
        r = json.loads(line)
        split = r["label"].split("=", 1)[1]
        bad += 0 if r.get("ok", True) else 1
        times[(r["seq"], "1 GPU", "")][split].append(r["one_gpu_ms"])
        times[(r["seq"], r["topology"], r["name"])][split].append(r["ms"])
    print(f"Card: {card}. Tail split off (SF_CUDA_SPLIT_TAIL=0) and on (auto), alternately in the same call; "
          f"medians over the rounds of each setting's medians. Distributed outputs not matching the one-GPU result: {bad}.\n")
    print("| S | topology | scheme | off (ms) | on (ms) | off / on |")
    print("|---|---|---|---|---|---|")
    for key in sorted(times, key=lambda k: (k[0], k[1] != "1 GPU", k[1], k[2])):
        t = times[key]
        if "0" not in t or "auto" not in t:
            continue
        off, on = statistics.median(t["0"]), statistics.median(t["auto"])
        print(f"| {key[0]} | {key[1]} | {key[2] or 'our kernel'} | {off:.2f} | {on:.2f} | {off / on:.3f} |")


if __name__ == "__main__":
    main()
