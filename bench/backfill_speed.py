"""Backfill speed: ``suitcase up --replay DIR --until-caught-up`` beside ``suitcase estimate``
on the same files, in the same run.

    .venv/bin/python -m bench.backfill_speed [--weeks 12] [--scale 0.2] [--seed 11] [--no-shuffle]

One seeded archive (the one :mod:`bench.replay_speed` uses, cached under ``bench/.cache``,
its lines shuffled unless ``--no-shuffle``). Each command runs as its own process, as a
user would run it, timed from start to exit:

- ``suitcase estimate --events DIR --out F``: the batch path;
- ``suitcase up --replay DIR --until-caught-up --allow-late``: embedded broker, topics,
  one worker and the replayer, until every replayed event is processed (its lines:
  the replay's account with the replay's own rate, the worker's account).

Printed: both times, their ratio (issue 11's target: within 3x), and the lines of ``up``
that say where the time went.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.replay_speed import archive, archive_arguments  # noqa: E402

SUITCASE = [sys.executable, "-m", "streams.commands.cli"]


def timed(argv: list[str], cwd: Path) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(SUITCASE + argv, cwd=cwd, capture_output=True, text=True, timeout=1800)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"suitcase {argv[0]} exited {done.returncode}: {done.stderr.strip()[-2000:]}")
    return seconds, done.stdout + done.stderr


def main(argv: list[str] | None = None) -> None:
    parser = archive_arguments(__doc__)
    args = parser.parse_args(argv)
    events = archive(args.weeks, args.scale, args.seed, args.shuffle)
    root = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory(prefix="suitcase-backfill-bench-") as folder:
        work = Path(folder)
        estimate_s, _ = timed(["estimate", "--events", str(events), "--out", str(work / "estimate.parquet")], root)
        up_s, output = timed(["up", "--metrics-port", "0", "--replay", str(events), "--until-caught-up",
                              "--allow-late", "--data-dir", str(work / "data")], root)
    said = [line for line in output.splitlines() if line.startswith(("replayed", "account", "caught up"))]
    print(f"archive: {events.name} (shuffled: {args.shuffle})")
    print(f"{'suitcase estimate':38} {estimate_s:7.1f} s")
    print(f"{'suitcase up --replay --until-caught-up':38} {up_s:7.1f} s")
    for line in said:
        print(f"  up: {line[:200]}")
    ratio = up_s / estimate_s
    print(f"up / estimate: {ratio:.1f}x; target within 3x: {'met' if ratio <= 3 else 'NOT met'}")


if __name__ == "__main__":
    main()
