"""Table of ring_lead_ab.sh: per S, the median layer time over the rounds of each ring lead share (and of the
planner's choice), each against the two-call default (rows: share 1, every row leading; pieces: share 0, no lead
pieces; share: ring_share off; heads: ring_heads_per_step 0, whole blocks; first: ring_first_wave_heads 0, about the
first wave pulled peer by peer), and the planner's layer against one GPU /
P and the all-P-busy compute share (P GPUs, 1xP NVLink).

  python3 bench/sp/ring_lead_ab.py lead.jsonl "card" [rows|pieces|share|heads|first]
"""
import json
import statistics
import sys
from collections import defaultdict


def main():
    path, card = sys.argv[1], sys.argv[2]
    mode = sys.argv[3] if len(sys.argv) > 3 else "rows"
    modes = {"rows": ("1", "plan_ring_lead_fraction", "ring lead share"),
             "pieces": ("0", "plan_ring_lead_pieces", "ring lead pieces share"),
             "share": ("off", "plan_ring_share", "ring_share"),
             "heads": ("0", "plan_ring_heads_per_step", "ring heads per step"),
             "first": ("0", "ring_first_wave_heads", "ring first-wave heads (planner: in force)")}
    if mode not in modes:
        sys.exit(f"the mode must be rows, pieces, share, heads or first, found '{mode}'")
    ref_arm, field, what = modes[mode]
    times = defaultdict(lambda: defaultdict(list))  # seq -> arm -> [ms]
    base = defaultdict(lambda: defaultdict(list))   # seq -> one_gpu / concurrent -> [ms]
    chosen, bad, helped, gpus, heads, dim = {}, 0, [], 4, 24, 128
    for line in open(path):
        r = json.loads(line)
        gpus = int(r["topology"].split("x")[1])  # 1xP
        heads, dim = r["heads"], r["head_dim"]
        arm = r["label"].split("=", 1)[1]
        bad += 0 if r.get("ok", True) else 1
        if arm in ("planner", "baseline"):
            chosen[r["seq"]] = r.get(field)
        if r.get("one_gpu_ms", 0) > 0:  # the round's first run (before session 26: the planner's arm)
            base[r["seq"]]["one"].append(r["one_gpu_ms"])
            base[r["seq"]]["busy"].append(r["concurrent_compute_ms"])
        if arm == "baseline":  # timed right after the one-GPU layer, while GPU 0 alone is hot: no arm
            continue
        times[r["seq"]][arm].append(r["ms"])
        if r.get("plan_ring_share"):
            helped.append(f"S={r['seq']}: {r.get('helped_blocks', '')}")
    if not times:
        sys.exit(f"{path}: no rows")
    print(f"Card: {card}. SFU-NVSHMEM on 1x{gpus} NVLink, H={heads} D={dim}; medians over the rounds of each setting's "
          f"median of 30 forwards. Distributed outputs not matching the one-GPU result: {bad}.\n")
    if helped:
        print("Blocks of each rank's last call taken by the others in the last forward of each run "
              f"(ring_share on): {'; '.join(helped)}.\n")
    print(f"| S | {what} | layer (ms) | / share {ref_arm} | efficiency vs one GPU / {gpus} "
          f"| vs all-{gpus}-busy share |")
    print("|---|---|---|---|---|---|")
    for seq in sorted(times):
        t = times[seq]
        ref = statistics.median(t[ref_arm]) if ref_arm in t else None
        one = statistics.median(base[seq]["one"]) if base[seq]["one"] else None
        busy = statistics.median(base[seq]["busy"]) if base[seq]["busy"] else None
        def order(a):
            try:
                return (a != "planner", -float(a), a)
            except ValueError:
                return (a != "planner", 0.0, a)

        for arm in sorted(t, key=order):
            ms = statistics.median(t[arm])
            planned = chosen.get(seq)
            shown = planned if isinstance(planned, bool) else f"{planned or 0:.3f}"
            name = f"planner ({shown})" if arm == "planner" else arm
            ratio = f"{ms / ref:.3f}" if ref else ""
            eff = f"{one / gpus / ms * 100:.1f} %" if one else ""
            vs_busy = f"{busy / ms * 100:.1f} %" if busy else ""
            print(f"| {seq} | {name} | {ms:.3f} | {ratio} | {eff} | {vs_busy} |")
        if one:
            print(f"| {seq} | one GPU: {one:.2f} ms; all-{gpus}-busy share: {busy:.2f} ms | | | | |")


if __name__ == "__main__":
    main()
