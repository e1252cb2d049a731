"""Merges the JSON lines of interleaved_bench.py (or of sf_kernel_bench) into the markdown tables
of RESULTS.md."""
import json
import sys


def load(paths):
    rows = []
    for p in paths:
        with open(p) as f:
            rows += [json.loads(line) for line in f if line.startswith("{")]
    return rows


def main():
    header, paths = sys.argv[1], sys.argv[2:]
    rows = load(paths)
    # interleaved_bench.py: pass-2 rows ("streamfusion", with the path, and "emu" in the results of 07:12-07:37)
    # are the multi-chunk sweep, timed against their own one-chunk run; the main table's StreamFusion figure is
    # that path's pass-1 row, timed in the same rounds as SDPA.
    best = {}
    for r in rows:
        if r["impl"] == "streamfusion" and "path" in r:
            best[(r["H"], r["D"])] = f'streamfusion_{r["path"]}' + (f'_emu{r["emu"]}' if r.get("emu") else "")
            r["impl"] = "streamfusion_multichunk"
    for r in list(rows):
        if r["impl"] == best.get((r["H"], r["D"])) and r["q_chunks"] == 1 and r["kv_chunks"] == 1:
            rows.append(dict(r, impl="streamfusion"))
    multi = "streamfusion_multichunk" if best else "streamfusion"
    idx = {(r["impl"], r["H"], r["D"], r["S"], r["q_chunks"], r["kv_chunks"]): r for r in rows}

    def tf(impl, h, d, s, nq=1, nkv=1):
        r = idx.get((impl, h, d, s, nq, nkv))
        return r.get("tflops") if r else None

    def fmt(x):
        return "–" if x is None else f"{x:.0f}"

    shapes = sorted({(r["H"], r["D"], r["S"]) for r in rows}, key=lambda t: (-t[1], t[2]))
    order = ["hopper_ws", "hopper_ws_pp", "hopper_ws_seq_pp", "hopper_tma", "hopper_tma_pp", "hopper", "ampere"]
    found = {r["impl"][len("streamfusion_"):] for r in rows
             if r["impl"].startswith("streamfusion_") and r["impl"] != "streamfusion_multichunk"}
    paths = [p for p in order if p in found] + sorted(found - set(order))
    out = [header, "",
           "Single chunk, self-attention (Sq = Skv = S, B = 1, bf16), TFLOP/s = 4·B·H·S²·D / median time:", "",
           "| H | D | S | SDPA FlashAttention-2 | SDPA cuDNN | StreamFusion | vs FA2 | vs cuDNN | round spread | "
           + " | ".join(f"path {p}" for p in paths) + " |",
           "| --- | --- | --- | --- | --- | --- | --- | --- | --- | " + " | ".join("---" for _ in paths) + " |"]
    for h, d, s in shapes:
        fa, cu, ours = tf("sdpa_flash2", h, d, s), tf("sdpa_cudnn", h, d, s), tf("streamfusion", h, d, s)
        rel = lambda a, b: "–" if a is None or not b else f"{a / b:.2f}×"
        cols = " | ".join(fmt(tf("streamfusion_" + p, h, d, s)) for p in paths)
        # Interleaved runs (interleaved_bench.py) keep each figure's max/min over rounds: the largest in the row.
        spreads = [idx[key].get("spread") for key in idx if key[1:] == (h, d, s, 1, 1)]
        spreads = [x for x in spreads if x]
        spread = f"{(max(spreads) - 1) * 100:.1f} %" if spreads else "–"
        out.append(f"| {h} | {d} | {s} | {fmt(fa)} | {fmt(cu)} | {fmt(ours)} | {rel(ours, fa)} | {rel(ours, cu)} "
                   f"| {spread} | {cols} |")
    out += ["", "Multi-chunk cost (StreamFusion, TFLOP/s; overhead = worst multi-chunk time over the 1-chunk time):", "",
            "| H | D | S | 1 chunk | K/V in 2 | K/V in 4 | K/V in 8 | Q in 2 | Q in 2, K/V in 8 | worst overhead |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for h, d, s in shapes:
        base = tf(multi, h, d, s)
        cols = [tf(multi, h, d, s, 1, n) for n in (2, 4, 8)] + [tf(multi, h, d, s, 2, 1), tf(multi, h, d, s, 2, 8)]
        present = [c for c in cols if c]
        worst = "–" if not base or not present else f"{(base / min(present) - 1) * 100:+.1f} %"
        out.append(f"| {h} | {d} | {s} | {fmt(base)} | " + " | ".join(fmt(c) for c in cols) + f" | {worst} |")
    errors = [r for r in rows if "error" in r]
    for r in errors:
        out.append(f"\n{r['impl']} H={r['H']} D={r['D']} S={r['S']}: {r['error']}")
    print("\n".join(out))


if __name__ == "__main__":
    main()
