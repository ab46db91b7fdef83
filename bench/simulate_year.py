"""Time a simulated year at scale 1 and print its calibration beside the targets.

One end-to-end run of ``streams.simulation.simulator.simulate`` (52 weeks, all six topics and the
truth table written to disk), on one core. Prints the wall time beside the budget of a
few minutes, lines per topic, and the world's yearly figures beside the calibration
targets of the issue (12M departures, ~$250M informal and ~$250M formal handicraft
exports), each as a ratio.

    .venv/bin/python bench/simulate_year.py [--weeks 52] [--scale 1] [--out DIR] [--faults]
"""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
import time
from pathlib import Path

from streams.simulation.simulator import TOPICS, WorldConfig, simulate

BUDGET_S = 300.0
TARGETS = {"departures": 12e6, "informal_usd": 250e6, "formal_handicraft_usd": 250e6}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--weeks", type=int, default=52)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--start", default="2026-03-02")
    parser.add_argument("--faults", action="store_true")
    parser.add_argument("--out", type=Path, default=None, help="keep the archive here")
    args = parser.parse_args()
    config = WorldConfig(seed=args.seed, start=dt.date.fromisoformat(args.start), weeks=args.weeks,
                         scale=args.scale, faults=args.faults)
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        started = time.perf_counter()
        summary = simulate(out, config)
        elapsed = time.perf_counter() - started
        size = sum((out / f"{t}.ndjson").stat().st_size for t in TOPICS)
    lines = sum(summary.lines.values())
    print(f"simulate weeks={args.weeks} scale={args.scale} faults={args.faults}: "
          f"{elapsed:.1f} s ({elapsed / BUDGET_S:.2f} x the {BUDGET_S:.0f} s budget), "
          f"{lines:,} lines, {lines / elapsed:,.0f} lines/s, {size / 1e9:.2f} GB")
    for t in TOPICS:
        print(f"  {t:<26} {summary.lines[t]:>12,} lines")
    per_year = 52 / args.weeks / args.scale
    figures = {"departures": summary.departures * per_year,
               "informal_usd": summary.truth_total_usd * per_year,
               "formal_handicraft_usd": summary.formal_handicraft_usd * per_year}
    for name, value in figures.items():
        print(f"  {name:<22} {value:>16,.0f} a year at scale 1 "
              f"({value / TARGETS[name]:.2f} x target {TARGETS[name]:,.0f})")


if __name__ == "__main__":
    main()
