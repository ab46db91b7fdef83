"""Wall time and peak memory of the batch estimate over one archive.

Times :func:`streams.pipeline.batch.estimate_archive` (reading, validation, dedup, FX, join, state
updates, then the estimator) on an archive directory and prints the seconds of each phase
and the peak resident memory of this process and of its child processes
(``resource.getrusage(...).ru_maxrss``). Make an archive first, for example the issue's
26 weeks at scale 1 (about 6 million departures):

    .venv/bin/suitcase simulate --out /tmp/arch26 --weeks 26 --scale 1
    .venv/bin/python bench/estimate_speed.py /tmp/arch26

Target of the issue: under 60 s and under 4 GB on a 2-core machine.
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path


def peak_mb(who: int) -> float:
    return resource.getrusage(who).ru_maxrss / 1024  # kilobytes on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("events", type=Path, help="archive directory of <topic>.ndjson files")
    args = parser.parse_args()

    start = time.perf_counter()
    from streams.pipeline.batch import build_tables

    tables, report = build_tables(args.events)
    read = time.perf_counter() - start
    table = tables.estimate()
    total = time.perf_counter() - start

    for topic, tally in report.tallies.items():
        rejected = sum(tally.rejected.values())
        print(f"{topic:26} accepted {tally.accepted:>10,}  duplicates {tally.duplicates:>8,}  rejected {rejected:>6,}")
    print(f"strata {len(tables.strata):,}, rows {len(table):,}, open inspections {report.open_inspections:,}")
    print(f"read + states: {read:6.1f} s")
    print(f"estimate:      {total - read:6.1f} s")
    print(f"total:         {total:6.1f} s")
    print(f"peak RSS: {peak_mb(resource.RUSAGE_SELF):,.0f} MB (this process), "
          f"{peak_mb(resource.RUSAGE_CHILDREN):,.0f} MB (largest child)")


if __name__ == "__main__":
    main()
