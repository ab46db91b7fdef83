"""Decode + validate throughput of the contract code on one core.

Seeded workload with no network and no clock: a mix of the six topics in the
proportions of a simulated border (departures dominate). Prints events/s of
``streams.pipeline.contract.decode`` beside plain ``json.loads`` on the same lines, as a ratio.

    .venv/bin/python bench/decode.py [--events 300000]
"""

from __future__ import annotations

import argparse
import json
import random
import time

from streams.pipeline import contract as c
from tests.events import line

MIX = {c.DEPARTURES: 80, c.DECLARATIONS: 8, c.INSPECTIONS: 2, c.PAYMENTS: 8, c.EXPORTS: 1, c.RATES: 1}


def workload(n: int, seed: int = 7) -> list[tuple[str, bytes]]:
    rng = random.Random(seed)
    topics = rng.choices(list(MIX), weights=list(MIX.values()), k=n)
    return [(t, line(t, event_id=f"e-{i}")) for i, t in enumerate(topics)]


def best_of(runs: int, fn) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=300_000)
    args = parser.parse_args()
    events = workload(args.events)
    decode, loads = c.decode, json.loads
    ours = best_of(5, lambda: [decode(t, raw) for t, raw in events])
    plain = best_of(5, lambda: [loads(raw) for _, raw in events])
    print(f"events: {len(events):,} (mixed topics)")
    print(f"decode + validate (msgspec): {len(events) / ours:,.0f} events/s")
    print(f"json.loads only (baseline):  {len(events) / plain:,.0f} events/s")
    print(f"speed-up over json.loads:    {plain / ours:.2f}x")


if __name__ == "__main__":
    main()
