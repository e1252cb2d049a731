#!/usr/bin/env python3
"""Turns the JSON lines of bench/sp/run.sh (sp.jsonl: ours, torch.jsonl: PyTorch peers, links.jsonl: emulated
links) into RESULTS.md tables and a chart (sp_chart.png, when matplotlib is there)."""
import argparse
import collections
import datetime
import json
import math
import os


def load(path):
    if not os.path.exists(path):
        return []
    rows = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith("{"):
                rows.append(json.loads(line))
    return rows


def link_name(r):
    if r["topology"].startswith("1x"):
        return f'{r["topology"]} NVLink'
    return f'{r["topology"]} @{r["inter_gbps"]:g} GB/s'


ORDER = ["USP", "TAS", "SFU-NCCL", "SFU-NVSHMEM", "Ring", "Ulysses"]


def world_of(r):
    m, n_per = (int(x) for x in r["topology"].split("x"))
    return m * n_per


def concurrent_ms(rows):
    """The compute share (own rows, all keys) with all ranks busy at once, slowest rank; None in files written
    before gpu-attention measured it (or run with --no-concurrent)."""
    v = rows[0].get("concurrent_compute_ms") or 0
    return v if v > 0 else None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--card", default="?")
    ap.add_argument("--out", default=None)
    ap.add_argument("--made-by", default="`bench/sp/run.sh` in one GPU call",
                    help="what made the run (the header's sentence)")
    ap.add_argument("--timing", default="times are the median of the timed forwards (Flux 30 after 10 warm-ups, "
                    "CogVideoX 5 after 1; CUDA events around the whole layer, slowest rank)",
                    help="how every time was taken (the header's sentence)")
    a = ap.parse_args()
    ours = load(os.path.join(a.dir, "sp.jsonl"))
    peers = load(os.path.join(a.dir, "torch.jsonl"))
    links = load(os.path.join(a.dir, "links.jsonl"))
    out = []
    w = out.append
    date = datetime.datetime.utcnow().strftime("%Y-%m-%d")
    gpus = world_of(ours[0]) if ours else 0  # every topology of one run has the same number of GPUs
    emulated = sorted({r["topology"] for r in ours if not r["topology"].startswith("1x")})
    w(f"# Sequence-parallel attention: one layer, {gpus} GPUs\n")
    w(f"Card: **{a.card}** (one host, NVLink between all GPUs). Date: {date}. Made by "
      f"{a.made_by}; every number below comes from that same run. bf16, batch 1, softmax scale 1/sqrt(D); "
      f"{a.timing}. The planner that picks each scheme's Torus segmentation gets the links' speeds and "
      "the kernel's rate measured on the shape's one-GPU run. "
      "**Multi-machine rows are emulated** (DESIGN.md section 6): transfers between emulated machines really move "
      "over NVLink but complete only as a NIC of the stated bandwidth per GPU and direction (+5 us latency) would "
      "let them. `1-GPU` is our own kernel on the whole layer on one GPU of the same run. Every distributed output "
      "was checked against that one-GPU result (column `check`)."
      + (" `all-P-at-once compute share` is every GPU timing its own query rows against all keys, all GPUs at "
         "the same time (barrier before each iteration), slowest GPU: the compute of 1/P of the layer under the "
         "clocks and power of P busy GPUs; the efficiencies against it are a second figure, the one-GPU ones stay "
         "the primary." if any(r.get("concurrent_compute_ms") for r in ours) else "") + "\n")
    if links:
        w("## Emulated links (gpu-links, two emulated machines)\n")
        w("| backend | pair | size | setting | achieved | verdict |")
        w("|---|---|---|---|---|---|")
        for l in links:
            if l.get("beside_attention"):
                continue
            setting = "off" if l["setting_gbps"] == 0 else f'{l["setting_gbps"]:g} GB/s'
            w(f'| {l["backend"]} | {l["pair"]} | {l["mib"]} MiB | {setting} | {l["gbps"]:.2f} GB/s | {l["verdict"]} |')
        w("")
        beside = [l for l in links if l.get("beside_attention")]
        if beside:
            w("Beside an attention call that holds every SM (four inter-machine transfers of half the call's time, "
              "issued before it; delivered = the last one's arrival after the call's start, rank whose landed last):\n")
            w("| backend | setting | call alone | transfers at setting | delivered | verdict |")
            w("|---|---|---|---|---|---|")
            for l in beside:
                w(f'| {l["backend"]} | {l["setting_gbps"]:g} GB/s | {l["call_ms"]:.3f} ms '
                  f'| {l["transfer_ms"]:.3f} ms | {l["delivered_ms"]:.3f} ms | {l["verdict"]} |')
            w("")
    by_shape = collections.OrderedDict()
    for r in ours:
        key = (r["label"], r["seq"], r["heads"], r["head_dim"])
        by_shape.setdefault(key, []).append(r)
    peer_by = {(p["label"], p["seq"]): p for p in peers}
    targets = []
    speedups, within = [], []  # per emulated setting: SFU over USP; (within 10 % vs one-GPU, vs busy share)
    for key, rows in by_shape.items():
        label, S, H, D = key
        one = rows[0]["one_gpu_ms"]
        conc = concurrent_ms(rows)
        world_all = world_of(rows[0])  # every topology of one run has the same number of GPUs
        share = (f"; all-{world_all}-at-once compute share: {conc:.2f} ms (= {conc / (one / world_all) * 100:.0f} % "
                 f"of 1-GPU/{world_all})" if conc and one else "")
        w(f"## {label}: S={S}, H={H}, D={D} (1-GPU: {one:.2f} ms{share})\n")
        cols = list(collections.OrderedDict((link_name(r), 1) for r in rows).keys())
        names = [n for n in ORDER if any(r["name"] == n for r in rows)] + sorted(
            {r["name"] for r in rows} - set(ORDER))
        w("| scheme | " + " | ".join(cols) + " |")
        w("|---|" + "---|" * len(cols))
        cell = {(r["name"], link_name(r)): r for r in rows}
        for n in names:
            cells = []
            for c in cols:
                r = cell.get((n, c))
                if not r:
                    cells.append("—")
                    continue
                mark = "" if r["ok"] else " ✗"
                cells.append(f'{r["ms"]:.2f} ms ({one / r["ms"]:.2f}x){mark}')
            w(f"| {n} | " + " | ".join(cells) + " |")
        p = peer_by.get((label, S))
        if p:
            cells = []
            for c in cols:
                if c.endswith("NVLink") and p.get("ulysses"):
                    base = p.get("single") or 0
                    cells.append(f'{p["ulysses"]:.2f} ms' + (f' ({base / p["ulysses"]:.2f}x vs cuDNN 1-GPU)' if base else ""))
                else:
                    cells.append("—")
            w("| PyTorch Ulysses (all_to_all + cuDNN) | " + " | ".join(cells) + " |")
            cells = []
            for c in cols:
                if c.endswith("NVLink") and p.get("ring"):
                    base = p.get("single") or 0
                    cells.append(f'{p["ring"]:.2f} ms' + (f' ({base / p["ring"]:.2f}x vs cuDNN 1-GPU)' if base else ""))
                elif c.endswith("NVLink") and p.get("ring_error"):
                    cells.append("error")
                else:
                    cells.append("—")
            w("| PyTorch context_parallel ring | " + " | ".join(cells) + " |")
            if p.get("single"):
                w(f'\nPyTorch cuDNN SDPA on one GPU, same shape: {p["single"]:.2f} ms'
                  + (f' (S rounded to {p["seq"]})' if p["seq"] != S else "") + ".")
            if p.get("ring_error"):
                w(f'\nPyTorch ring peer failed: `{p["ring_error"]}`')
        w("")
        w("Bytes per GPU per forward (intra / inter, MB), from the backends' counters:\n")
        w("| scheme | " + " | ".join(cols) + " |")
        w("|---|" + "---|" * len(cols))
        for n in names:
            cells = []
            for c in cols:
                r = cell.get((n, c))
                cells.append(f'{r["intra_bytes"] / 1e6:.0f} / {r["inter_bytes"] / 1e6:.0f}' if r else "—")
            w(f"| {n} | " + " | ".join(cells) + " |")
        w("")
        # Targets. World size from the topology ("MxN"), so 8-GPU runs report against one GPU / 8.
        for c in cols:
            best = min((cell[(n, c)] for n in names if (n, c) in cell), key=lambda r: r["ms"])
            world = world_of(best)
            if c.endswith("NVLink"):
                what = "best scheme scaling efficiency vs own 1-GPU"
                measured = f'{best["name"]}: {one / best["ms"] / world * 100:.0f} %'
                if conc:  # second figure: against the compute share timed with all GPUs busy
                    what += f"; second figure: vs all-{world}-at-once compute share"
                    measured += (f'; vs all-{world}-at-once compute share ({conc:.2f} ms): '
                                 f'{conc / best["ms"] * 100:.0f} %')
                targets.append((label, S, c, what, measured))
            else:
                usp = cell.get(("USP", c))
                sfu = cell.get(("SFU-NVSHMEM", c)) or cell.get(("SFU-NCCL", c))
                if usp and sfu:
                    comp = one / world
                    xfer = sfu["inter_bytes"] / (sfu["inter_gbps"] * 1e9) * 1e3 if sfu["inter_gbps"] else 0
                    bound = max(comp, xfer)
                    what = "SFU-NVSHMEM speedup over USP; SFU ms / max(compute, transfer)"
                    measured = (f'{usp["ms"] / sfu["ms"]:.2f}x; {sfu["ms"] / bound:.2f} '
                                f'(compute {comp:.1f} ms, inter transfer {xfer:.1f} ms)')
                    if conc:  # the same bound with the compute share timed with all GPUs busy
                        what += f"; the same with compute = all-{world}-at-once share"
                        measured += f'; {sfu["ms"] / max(conc, xfer):.2f} (all-{world}-at-once compute {conc:.1f} ms)'
                    own = sfu.get("free_links_ms", 0)  # --free-links: the plan's own calls, links at NVLink speed
                    if own:
                        what += "; the same with compute = this plan with the links at NVLink speed"
                        measured += f'; {sfu["ms"] / max(own, xfer):.2f} (that plan\'s compute {own:.1f} ms)'
                    targets.append((label, S, c, what, measured))
                    speedups.append(usp["ms"] / sfu["ms"])
                    within.append((sfu["ms"] / bound <= 1.10, sfu["ms"] / max(conc, xfer) <= 1.10 if conc else None,
                                   sfu["ms"] / max(own, xfer) <= 1.10 if own else None))
    if speedups:  # the aggregate targets over every emulated setting of this run
        w("## Summary over the emulated settings\n")
        geo = math.exp(sum(math.log(x) for x in speedups) / len(speedups))
        w(f"- SFU over USP: **{sum(speedups) / len(speedups):.2f}× on average** (geo-mean {geo:.2f}×), "
          f"{max(speedups):.2f}× at best, {min(speedups):.2f}× at worst, over {len(speedups)} settings "
          "(targets: ≥ 1.35× average, ≥ 1.77× best).")
        line = (f"- SFU within 10 % of max(compute alone, inter-machine transfer alone): "
                f"{sum(1 for a, _, _ in within if a)} of {len(within)} with compute = one-GPU time / world")
        if any(b is not None for _, b, _ in within):  # runs that timed the all-GPUs-busy compute share
            line += f", {sum(1 for _, b, _ in within if b)} of {len(within)} with the all-GPUs-busy compute share"
        if any(c is not None for _, _, c in within):  # --free-links: the plan's own compute
            line += (f", {sum(1 for _, _, c in within if c)} of {sum(1 for _, _, c in within if c is not None)} "
                     "with compute = the same plan timed with the links at NVLink speed")
        w(line + ".\n")
    if targets:
        w("## Against the issue's targets\n")
        w("| model | S | setting | what | measured |")
        w("|---|---|---|---|---|")
        for t in targets:
            w("| " + " | ".join(str(x) for x in t) + " |")
        w("")
    clocks = os.path.join(a.dir, "clocks.md")  # run.sh: clock_summary.py over the GPUs' clock log
    if os.path.exists(clocks):
        w("## GPU clocks and power during the run\n")
        w("Sampled every 50 ms by nvidia-smi while our layers and the PyTorch peers ran (bench/sp/clock_summary.py). "
          "`GPU 0 alone busy` is mostly the one-GPU baseline. Event reason 0x4 is the software power cap: every "
          "figure here was taken at the 700 W limit, where the SM clock, and with it every time, moves by several "
          "percent between GPUs and over a run.\n")
        with open(clocks) as f:
            w(f.read())
    md = "\n".join(out) + "\n"
    with open(a.out or os.path.join(a.dir, "RESULTS.md"), "w") as f:
        f.write(md)
    print(md)
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except Exception as e:  # chart is optional where matplotlib is missing
        print("no chart:", e)
        return
    shapes = list(by_shape.keys())
    if not shapes:
        return
    fig, axes = plt.subplots(len(shapes), 1, figsize=(13, 3.2 * len(shapes)), squeeze=False)
    for ax, key in zip(axes[:, 0], shapes):
        rows = by_shape[key]
        one = rows[0]["one_gpu_ms"]
        cols = list(collections.OrderedDict((link_name(r), 1) for r in rows).keys())
        names = [n for n in ORDER if any(r["name"] == n for r in rows)]
        cell = {(r["name"], link_name(r)): r for r in rows}
        p = peer_by.get((key[0], key[1]))
        series = names + (["PyTorch Ulysses", "PyTorch ring"] if p else [])
        torch_base = (p or {}).get("single") or 0
        width = 0.8 / max(1, len(series))
        for i, n in enumerate(series):
            xs, ys = [], []
            for j, c in enumerate(cols):
                if n == "PyTorch Ulysses":
                    v = p.get("ulysses") if c.endswith("NVLink") else None
                elif n == "PyTorch ring":
                    v = p.get("ring") if c.endswith("NVLink") else None
                else:
                    r = cell.get((n, c))
                    v = r["ms"] if r else None
                if v:
                    xs.append(j + (i - len(series) / 2 + 0.5) * width)
                    # PyTorch peers against PyTorch's own one-GPU cuDNN time (same run), ours against ours.
                    ys.append((torch_base if n.startswith("PyTorch") else one) / v)
            if xs:
                label = n + (" (vs its cuDNN 1-GPU)" if n.startswith("PyTorch") else "")
                ax.bar(xs, ys, width, label=label, hatch="//" if n.startswith("PyTorch") else None)
        ax.axhline(gpus, color="grey", lw=0.8, ls="--")
        ax.set_xticks(range(len(cols)))
        ax.set_xticklabels(cols)
        ax.set_ylabel("speedup vs own 1 GPU")
        ax.set_title(f"{key[0]} S={key[1]} H={key[2]} D={key[3]} (1 GPU {one:.1f} ms); dashed = ideal {gpus}x")
    axes[0, 0].legend(ncol=4, fontsize=8)
    fig.suptitle(f"One attention layer on {gpus} GPUs ({a.card}, {date}); {' and '.join(emulated) or 'no'} "
                 "emulated machines")
    fig.tight_layout()
    fig.savefig(os.path.join(a.dir, "sp_chart.png"), dpi=110)
    print("chart:", os.path.join(a.dir, "sp_chart.png"))


if __name__ == "__main__":
    main()
