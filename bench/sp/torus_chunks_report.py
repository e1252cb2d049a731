"""Table of bench/sp/torus_chunks.sh: layer time per (shape, emulated topology, link) for each Torus chunking."""
import collections
import datetime
import json
import sys


def main(path, card):
    rows = [json.loads(line) for line in open(path)]
    cell = collections.defaultdict(dict)
    for r in rows:
        model, chunks = r["label"].split(" chunks=")
        key = (model, r["seq"], r["topology"], r["inter_gbps"])
        cell[key][(r["name"], chunks)] = r
    bad = sum(1 for r in rows if not r["ok"])
    print(f"# Torus chunking, {card}, {datetime.date.today()} (bench/sp/torus_chunks.sh, one call)\n")
    print("bf16, B=1; emulated machines (inter-machine GB/s per GPU and direction, +5 us); median ms of the layer "
          f"(slowest rank). Every output checked against the one-GPU result: {len(rows) - bad} ok, {bad} wrong.\n")
    print("| model | S | topology | link | USP | SFU-NCCL c=1 | auto | c=4 | SFU-NVSHMEM c=1 | auto | c=4 |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for key in sorted(cell):
        c = cell[key]
        def ms(name, chunks):
            r = c.get((name, chunks))
            return f'{r["ms"]:.2f}' if r else "-"
        print(f"| {key[0]} | {key[1]} | {key[2]} | {key[3]:g} GB/s | {ms('USP', '1')} | "
              f"{ms('SFU-NCCL', '1')} | {ms('SFU-NCCL', '0')} | {ms('SFU-NCCL', '4')} | "
              f"{ms('SFU-NVSHMEM', '1')} | {ms('SFU-NVSHMEM', '0')} | {ms('SFU-NVSHMEM', '4')} |")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
