"""Table of an A/B call (split_ab.sh, tree_ab.sh): for every (S, topology, link, scheme), the median layer time
over the rounds in each arm and their ratio; the one-GPU baseline likewise when it was timed. The arm is the
label's value: `split=0` / `split=auto` (the kernel's tail split off and on), `tree=base` / `tree=new`.

  python3 bench/sp/split_ab.py ab.jsonl "card"
"""
import json
import statistics
import sys
from collections import defaultdict

ARMS = {"split": ("0", "auto", "Tail split off (SF_CUDA_SPLIT_TAIL=0) and on (auto)"),
        "SF_CUDA_SPLIT_TAIL": ("0", "auto", "Tail split off (SF_CUDA_SPLIT_TAIL=0) and on (auto)"),
        "tree": ("base", "new", "The base tree and the new one")}


def main():
    path, card = sys.argv[1], sys.argv[2]
    times = defaultdict(lambda: defaultdict(list))  # key -> arm -> [ms]
    bad, kind, seen = 0, None, []
    for line in open(path):
        r = json.loads(line)
        kind, arm = r["label"].split("=", 1)
        if arm not in seen:
            seen.append(arm)
        bad += 0 if r.get("ok", True) else 1
        if r.get("one_gpu_ms"):
            times[(r["seq"], "1 GPU", "", "")][arm].append(r["one_gpu_ms"])
        link = f"{r['inter_gbps']:g} GB/s" if r["topology"].split("x")[0] != "1" else "NVLink"
        times[(r["seq"], r["topology"], link, r["name"])][arm].append(r["ms"])
    if kind is None:
        sys.exit(f"{path}: no rows")
    if kind in ARMS and set(seen) == set(ARMS[kind][:2]):
        a, b, what = ARMS[kind]
    elif len(seen) == 2:  # other settings or any other knob: its two settings in the order they ran
        a, b = seen
        what = f"{kind}={a} and {kind}={b}"
    else:
        sys.exit(f"{path}: {kind} has settings {seen}; an A/B needs two")
    print(f"Card: {card}. {what}, alternately in the same call; medians over the rounds of each setting's medians. "
          f"Distributed outputs not matching the one-GPU result: {bad}.\n")
    print(f"| S | topology | link | scheme | {a} (ms) | {b} (ms) | {a} / {b} |")
    print("|---|---|---|---|---|---|---|")
    for key in sorted(times, key=lambda k: (k[0], k[1] != "1 GPU", k[1], k[2], k[3])):
        t = times[key]
        if a not in t or b not in t:
            continue
        ta, tb = statistics.median(t[a]), statistics.median(t[b])
        print(f"| {key[0]} | {key[1]} | {key[2]} | {key[3] or 'our kernel'} | {ta:.2f} | {tb:.2f} | {ta / tb:.3f} |")


if __name__ == "__main__":
    main()
