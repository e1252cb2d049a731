"""When each rank's K/V sets land under the emulated NICs' flows model (nic_board.h), for the booking orders that
a 4x1 Torus layer's pulls can take (bench/sp/TRACES.md, session 21).

Four ranks each pull, in this order, Q from peers +1, +2, +3, then K and V from +1, +2, +3: nine pulls of equal
size (one time unit each). A pull crosses two FIFOs, the puller's ingress and the source's egress. In booking
order, a pull moves when neither FIFO is taken by an earlier moving pull, so an earlier pull that becomes free
takes its FIFOs back. Prints, per booking order, each rank's landing time of K/V sets 1, 2, 3 (on time: 5, 7, 9).

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


def main():
    gap = 0.045  # a rank books a pull every ~6 us; a pull of 6.3 MB at 50 GB/s takes ~131 us
    print("step order:", simulate({(r, n): n * gap + r * 0.001 for r in range(RANKS) for n in range(9)}))
    rng = random.Random(1)
    for _ in range(4):  # ranks up to ~13 us apart, each booking up to ~3 us late
        start = [rng.uniform(0, 0.1) for _ in range(RANKS)]
        print("jittered:  ", simulate({(r, n): start[r] + n * gap + rng.uniform(0, 0.02)
                                       for r in range(RANKS) for n in range(9)}))


if __name__ == "__main__":
    main()
