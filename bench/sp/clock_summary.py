"""Summary of a clock log written by sf_start_clock_log (bench/sp/common.sh): SM clock, power and temperature of
the GPUs while GPU 0 alone was busy (the one-GPU baseline) and while all of them were (the distributed layer).

    python3 bench/sp/clock_summary.py clocks.csv

A sample counts as busy at >= 50 % utilization. nvidia-smi prints one line per GPU per sampling round; rounds
are told apart by the repeating GPU index."""
import statistics
import sys


def rounds(path):
    """Yields {gpu index: (sm MHz, watts, deg C, util %, reasons)} per sampling round."""
    current = {}
    with open(path) as f:
        for line in f:
            cols = [c.strip() for c in line.split(",")]
            if len(cols) < 7 or not cols[1].isdigit():
                continue  # header or an error line
            try:
                gpu = int(cols[1])
                sample = (float(cols[2].split()[0]), float(cols[4].split()[0]), float(cols[5]),
                          float(cols[6].split()[0]), cols[7] if len(cols) > 7 else "")
            except ValueError:
                continue
            if gpu in current:
                yield current
                current = {}
            current[gpu] = sample
    if current:
        yield current


def main():
    groups = {"GPU 0 alone busy": [], "all GPUs busy": []}
    n_gpus = 0
    for r in rounds(sys.argv[1]):
        n_gpus = max(n_gpus, len(r))
        busy = {g for g, s in r.items() if s[3] >= 50}
        if busy == {0}:
            groups["GPU 0 alone busy"].append({0: r[0]})
        elif len(busy) == len(r) and len(r) > 1:
            groups["all GPUs busy"].append(r)
    print(f"| phase | samples | GPU | SM clock MHz (median) | power W (median) | temperature C (max) | event reasons seen |")
    print("|---|---|---|---|---|---|---|")
    for name, rs in groups.items():
        for g in range(n_gpus):
            s = [r[g] for r in rs if g in r]
            if not s:
                continue
            reasons = sorted({x[4] for x in s if x[4]})
            print(f"| {name} | {len(s)} | {g} | {statistics.median(x[0] for x in s):.0f} | "
                  f"{statistics.median(x[1] for x in s):.0f} | {max(x[2] for x in s):.0f} | {' '.join(reasons)} |")


if __name__ == "__main__":
    main()
