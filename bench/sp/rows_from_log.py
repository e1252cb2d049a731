#!/usr/bin/env python3
"""Rebuilds sp.jsonl and torch.jsonl of a bench/sp/run.sh call from its run.log, for a call whose JSON files did
not come back (the device tool returns at most 8 files). The log holds every row gpu-attention printed (times to
3 decimals, bytes in MB to 1) and every line torch_peers.py printed, so make_report.py can redraw the tables and
the chart from it; the call's own RESULTS.md stays the record of the exact figures.

  python3 bench/sp/rows_from_log.py DIR      (reads DIR/run.log, writes DIR/sp.jsonl and DIR/torch.jsonl)
"""
import json
import os
import re
import sys

SHAPE = re.compile(r"B=(\d+) S=(\d+) H=(\d+) D=(\d+) (\w+)")
LABEL = re.compile(r"--label (\S+)")


def row(cells, label):
    shape, topo, link, name, transport, mesh, ms, one, _speedup, conc, intra, inter, max_abs, rel, check = cells
    b, s, h, d, dtype = SHAPE.fullmatch(shape).groups()
    gbps = 0.0 if link == "NVLink" else float(link.split()[0])
    return {"label": label, "batch": int(b), "seq": int(s), "heads": int(h), "head_dim": int(d), "dtype": dtype,
            "topology": topo, "inter_gbps": gbps, "name": name, "transport": transport, "mesh": mesh,
            "ms": float(ms), "one_gpu_ms": float(one), "concurrent_compute_ms": float(conc),
            "intra_bytes": float(intra) * 1e6, "inter_bytes": float(inter) * 1e6, "max_abs": float(max_abs),
            "rel_l2": float(rel), "ok": check.startswith("ok"), "from_log": True}


def main():
    folder = sys.argv[1]
    label, ours, peers = None, [], []
    for line in open(os.path.join(folder, "run.log")):
        if line.startswith("== ") and "gpu-attention" in line:
            m = LABEL.search(line)
            label = m.group(1) if m else None
        elif line.startswith("| B=") and label:
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if len(cells) == 15:
                ours.append(row(cells, label))
        elif line.startswith('{"label"') and '"ulysses"' in line:
            peers.append(json.loads(line))
    if not ours:
        sys.exit(f"{folder}/run.log: no gpu-attention rows")
    for name, rows in (("sp.jsonl", ours), ("torch.jsonl", peers)):
        with open(os.path.join(folder, name), "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in rows)
    print(f"{len(ours)} rows of ours, {len(peers)} of the PyTorch peers")


if __name__ == "__main__":
    main()
