"""Table of loans_ab.sh: per S, the median layer time over the invocations of each arm (row loans off, or by the
speeds measured in the layer or in the compute share), the ratio to off, and each arm's efficiency against the one-GPU time / 4 and the all-4-busy compute share
(medians of the baselines its own invocations took), with the loans the measured arm made.

  python3 bench/sp/loans_ab.py loans.jsonl "card"
"""
import json
import statistics
import sys
from collections import defaultdict


def main():
    path, card = sys.argv[1], sys.argv[2]
    rows = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))  # seq -> arm -> field -> values
    loans = defaultdict(set)
    bad = 0
    for line in open(path):
        r = json.loads(line)
        arm = r["label"].split("=", 1)[1]
        bad += 0 if r.get("ok", True) else 1
        for field in ("ms", "one_gpu_ms", "concurrent_compute_ms"):
            rows[r["seq"]][arm][field].append(r[field])
        if arm != "off":
            loans[r["seq"]].add(r.get("row_loans") or "none")
    if not rows:
        sys.exit(f"{path}: no rows")
    print(f"Card: {card}. SFU-NVSHMEM on 1x4 NVLink, Flux H=24 D=128; medians over the invocations of each arm "
          f"(each the median of 30 forwards after 10 warm-ups). Distributed outputs not matching the one-GPU result: "
          f"{bad}.\n")
    print("| S | row loans | layer (ms), each invocation | median | off / this | vs one GPU / 4 | vs all-4-busy share |")
    print("|---|---|---|---|---|---|---|")
    for seq in sorted(rows):
        off = statistics.median(rows[seq]["off"]["ms"]) if rows[seq]["off"]["ms"] else None
        for arm in sorted(rows[seq], key=lambda a: a != "off"):
            f = rows[seq][arm]
            if not f["ms"]:
                continue
            ms = statistics.median(f["ms"])
            one, busy = statistics.median(f["one_gpu_ms"]), statistics.median(f["concurrent_compute_ms"])
            each = ", ".join(f"{m:.3f}" for m in f["ms"])
            ratio = f"{off / ms:.3f}" if off else "—"
            arm = "share (measured)" if arm == "measured" else arm  # runs before 22:50 named it measured
            print(f"| {seq} | {arm} | {each} | {ms:.3f} | {ratio} | {100 * one / 4 / ms:.1f} % | {100 * busy / ms:.1f} % |")
    print()
    for seq in sorted(loans):
        print(f"- S={seq}, loans made (lender->borrower rows): {'; '.join(sorted(loans[seq]))}")


if __name__ == "__main__":
    main()
