"""When each rank's K/V sets land under the emulated NICs' flows model (nic_board.h), for the booking orders that
a 4x1 Torus layer's pulls can take (bench/sp/TRACES.md, session 21).

Four ranks each pull, in this order, Q from peers +1, +2, +3, then K and V from +1, +2, +3: nine pulls of equal
size (one time unit each). A pull crosses two FIFOs, the puller's ingress and the source's egress. In booking
order, a pull moves when neither FIFO is taken by an earlier moving pull, so an earlier pull that becomes free
takes its FIFOs back. Prints, per booking order, each rank's landing time of K/V sets 1, 2, 3 (on time: 5, 7, 9).

Then the question of session 22 (TRACES.md): how many pulls should a rank post at once, on NICs that serve in
booking order (fifo, the emulation's default) and on NICs that share their bandwidth between connections (fair: a
connection, one reader and one source, serves its pulls in order; the queues share max-min fairly)? A rank posts
its next pull when fewer than `window` of its pulls are in flight, `post` time units after the slot freed (the
release and the next post, about 15 us of a 131 us pull in the traces); "all" books the whole layer at once.

  python3 bench/sp/nic_order_sim.py
"""
import random

RANKS, STEP = 4, 0.001  # time step of the simulation, in units of one pull


def pulls_of(r):
    order = [("Q", i) for i in range(1, RANKS)]
    for i in range(1, RANKS):
        order += [("K", i), ("V", i)]
    return [(kind, i, (r + i) % RANKS) for kind, i in order]


def simulate(booked_at):
    """booked_at[(rank, n)]: when rank books its n-th pull. Returns {rank: [set 1, 2, 3 landed]}."""
    flows = [dict(rank=r, kind=k, i=i, src=src, left=1.0, done=None, at=booked_at[(r, n)])
             for r in range(RANKS) for n, (k, i, src) in enumerate(pulls_of(r))]
    flows.sort(key=lambda f: f["at"])
    t = 0.0
    while any(f["done"] is None for f in flows):
        taken = set()
        for f in flows:
            if f["done"] is not None or f["at"] > t:
                continue
            fifos = {("in", f["rank"]), ("out", f["src"])}
            if fifos & taken:
                continue
            taken |= fifos
            f["left"] -= STEP
            if f["left"] <= 1e-9:
                f["done"] = t + STEP
        t += STEP
    landed = {}
    for r in range(RANKS):
        d = {(f["kind"], f["i"]): f["done"] for f in flows if f["rank"] == r}
        landed[r] = [round(max(d[("K", i)], d[("V", i)]), 2) for i in range(1, RANKS)]
    return landed


def fair_rates(moving):
    """Max-min fair rates (progressive filling) for flows given as (ingress, egress) queue pairs, capacity 1."""
    rate, cap = [None] * len(moving), {}
    for f in moving:
        for q in f:
            cap[q] = 1.0
    while any(r is None for r in rate):
        users = {}
        for k, f in enumerate(moving):
            if rate[k] is None:
                for q in f:
                    users[q] = users.get(q, 0) + 1
        tight = min(users, key=lambda q: cap[q] / users[q])
        share = cap[tight] / users[tight]
        for k, f in enumerate(moving):
            if rate[k] is None and tight in f:
                rate[k] = share
                for q in f:
                    cap[q] -= share
    return rate


def simulate_windowed(model, window, post, start, pieces=1):
    """Each rank posts its nine pulls in order, each cut into `pieces` transfers, at most `window` transfers in
    flight (None: all, booked at start[r] + n * 0.045). Returns ({rank: [set 1, 2, 3 landed]}, last pull landed)."""
    flows = [dict(rank=r, kind=k, i=i, src=src, left=1.0 / pieces, done=None, at=None, n=n)
             for r in range(RANKS) for n, (k, i, src) in enumerate(p for p in pulls_of(r) for _ in range(pieces))]
    mine = {r: [f for f in flows if f["rank"] == r] for r in range(RANKS)}
    ready_at = {r: start[r] for r in range(RANKS)}  # when the rank can post its next pull
    if window is None:
        for f in flows:
            f["at"] = start[f["rank"]] + f["n"] * 0.045
    t = 0.0
    while any(f["done"] is None for f in flows):
        if window is not None:
            for r in range(RANKS):
                posted = [f for f in mine[r] if f["at"] is not None]
                if len(posted) < len(mine[r]) and sum(f["done"] is None for f in posted) < window and t >= ready_at[r]:
                    mine[r][len(posted)]["at"] = t
                    ready_at[r] = t
        live = sorted((f for f in flows if f["done"] is None and f["at"] is not None and f["at"] <= t),
                      key=lambda f: f["at"])
        if model == "fifo":
            taken, moving = set(), []
            for f in live:
                fifos = {("in", f["rank"]), ("out", f["src"])}
                if not fifos & taken:
                    taken |= fifos
                    moving.append((f, 1.0))
        else:  # one pull per connection, the earliest posted; connections share the queues fairly
            first = {}
            for f in live:
                first.setdefault((f["rank"], f["src"]), f)
            heads = list(first.values())
            moving = list(zip(heads, fair_rates([(("in", f["rank"]), ("out", f["src"])) for f in heads])))
        for f, rate in moving:
            f["left"] -= STEP * rate
            if f["left"] <= 1e-9:
                f["done"] = t + STEP
                ready_at[f["rank"]] = max(ready_at[f["rank"]], t + STEP + post)
        t += STEP
    landed = {}
    for r in range(RANKS):
        d = {}
        for f in mine[r]:  # a pull has landed with its last piece
            d[(f["kind"], f["i"])] = max(d.get((f["kind"], f["i"]), 0.0), f["done"])
        landed[r] = [round(max(d[("K", i)], d[("V", i)]), 2) for i in range(1, RANKS)]
    return landed, round(max(f["done"] for f in flows), 2)


def windows_table():
    print("\nPosting window (9 pulls per rank; units of one pull; post = 0.11 after a slot frees):")
    print("| NIC | window | pieces per pull | ranks | K/V sets 1, 2, 3 landed (latest rank) | last pull landed |")
    print("| --- | --- | --- | --- | --- | --- |")
    rng = random.Random(2)
    starts = {"in step": [0.0] * RANKS, "up to 0.1 apart": [rng.uniform(0, 0.1) for _ in range(RANKS)]}
    for model in ("fifo", "fair"):
        for window, pieces in ((1, 1), (2, 1), (3, 1), (None, 1), (2, 4)):
            for name, start in starts.items():
                landed, last = simulate_windowed(model, window, 0.11, start, pieces)
                latest = [max(landed[r][i] for r in range(RANKS)) for i in range(RANKS - 1)]
                print(f"| {model} | {window or 'all'} | {pieces} | {name} | {latest} | {last} |")


def main():
    gap = 0.045  # a rank books a pull every ~6 us; a pull of 6.3 MB at 50 GB/s takes ~131 us
    print("step order:", simulate({(r, n): n * gap + r * 0.001 for r in range(RANKS) for n in range(9)}))
    rng = random.Random(1)
    for _ in range(4):  # ranks up to ~13 us apart, each booking up to ~3 us late
        start = [rng.uniform(0, 0.1) for _ in range(RANKS)]
        print("jittered:  ", simulate({(r, n): start[r] + n * gap + rng.uniform(0, 0.02)
                                       for r in range(RANKS) for n in range(9)}))
    windows_table()


if __name__ == "__main__":
    main()
