"""A live worker's peak memory over a long replay, and its restart time against history.

    .venv/bin/python -m bench.restart_memory memory ARCHIVE [--trace]
    .venv/bin/python -m bench.restart_memory restart ARCHIVE_1W ARCHIVE_4W ARCHIVE_12W

Archives come from ``suitcase simulate --out DIR --scale 0.02 --weeks N --seed 7``.
Each run gets a fresh embedded broker; the archive is sent by ``suitcase replay`` in a
child process, so the replayer's sort buffers are not counted as the worker's.

- ``memory``: one worker in this process, from start until every replayed record is in
  its merged state (``wait_caught_up``); prints the peak RSS of this process (sampled
  every 0.25 s) and the time. ``--trace`` adds tracemalloc's largest holders (slow).
- ``restart``: per archive, worker A processes everything and stops; then worker B (same
  group) starts and is timed from ``start()`` to the moment its merged state covers every
  record (it recovered its partitions and read the changelog: what it needs before its
  estimates are whole again). The group join after the old member left (15-20 s on
  Tansu) is in every figure alike, and the changelog reader runs during it, so the
  history part (every step read and merged: it grows with history, the join does not) is
  printed apart, and so is the first estimate table after it (which merges what was read). Printed: seconds per archive and the ratios last/first (issue 11's bar:
  within 20% from 1 to 12 weeks).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def rss_mb() -> float:
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def replay(archive: Path, broker_url: str) -> None:
    subprocess.run([sys.executable, "-m", "streams.commands.cli", "replay", "--events", str(archive),
                    "--broker", broker_url], check=True, stdout=subprocess.DEVNULL)


async def last_offsets(bootstrap: str) -> dict[tuple[str, int], int]:
    """(topic, partition) -> offset of its last record, read to the end (Tansu 0.6's
    ListOffsets answers short of the last record batch, see BroadcastReader.end_offsets)."""
    from aiokafka import TopicPartition

    from streams.kafka.broker import DEFAULT_PARTITIONS
    from streams.kafka.worker import kafka_consumer
    from streams.pipeline.partition import LANE_OF

    consumer = kafka_consumer(bootstrap, group_id=None, enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    last: dict[tuple[str, int], int] = {}
    try:
        consumer.assign([TopicPartition(t, p) for t in LANE_OF for p in range(DEFAULT_PARTITIONS)])
        quiet = 0
        while quiet < 3:
            batches = await consumer.getmany(timeout_ms=500, max_records=50_000)
            quiet = 0 if batches else quiet + 1
            for tp, messages in batches.items():
                last[(tp.topic, tp.partition)] = messages[-1].offset
    finally:
        await consumer.stop()
    return last


async def caught_up_worker(bootstrap: str, app_id: str, data_dir: Path, last) -> tuple[object, float, float]:
    """A started worker once its merged state covers ``last`` (group joined, partitions
    recovered, every step merged); seconds to that, and to the merge alone (its changelog
    reader starts with the worker, so it runs during the group join)."""
    from streams.kafka.worker import LiveWorker, WorkerSettings

    worker = LiveWorker(WorkerSettings(bootstrap=bootstrap, app_id=app_id, data_dir=data_dir))
    started = time.monotonic()
    merged: list[float] = []

    async def watch() -> None:  # the history part: every step read and merged
        while not worker.observed_through(last):
            await asyncio.sleep(0.02)
        merged.append(time.monotonic() - started)

    watching = asyncio.create_task(watch())
    await worker.start()
    await worker.wait_caught_up(last)
    await watching
    return worker, time.monotonic() - started, merged[0]


def memory(archive: Path, trace: bool) -> None:
    from streams.kafka.broker import EmbeddedBroker

    if trace:
        import tracemalloc

        tracemalloc.start(4)
    peak = [rss_mb()]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.25):
            peak[0] = max(peak[0], rss_mb())

    with EmbeddedBroker() as broker, tempfile.TemporaryDirectory() as tmp:
        t0 = time.monotonic()
        replay(archive, broker.url)
        sent = time.monotonic() - t0
        last = asyncio.run(last_offsets(broker.bootstrap))
        base = rss_mb()
        threading.Thread(target=sample, daemon=True).start()

        async def run() -> float:
            worker, seconds, _ = await caught_up_worker(broker.bootstrap, f"mem-{uuid.uuid4().hex[:6]}", Path(tmp), last)
            worker.estimate_table()
            peak[0] = max(peak[0], rss_mb())
            if trace:
                import tracemalloc

                snap = tracemalloc.take_snapshot()
                for s in snap.statistics("traceback")[:12]:
                    print(f"{s.size / 1e6:8.1f} MB {s.count:8d}  " + " <- ".join(
                        f"{Path(f.filename).name}:{f.lineno}" for f in reversed(s.traceback)))
            await worker.stop()
            return seconds

        seconds = asyncio.run(run())
        done.set()
    records = sum(v + 1 for v in last.values())
    print(f"{archive.name}: {records:,} records replayed in {sent:.1f} s; worker caught up after "
          f"{seconds:.1f} s; RSS before the worker {base:.0f} MB, peak {peak[0]:.0f} MB")


def restart(archives: list[Path]) -> None:
    from streams.kafka.broker import EmbeddedBroker

    times, history = [], []
    for archive in archives:
        with EmbeddedBroker() as broker, tempfile.TemporaryDirectory() as tmp:
            replay(archive, broker.url)
            last = asyncio.run(last_offsets(broker.bootstrap))
            app_id = f"restart-{uuid.uuid4().hex[:6]}"

            async def run() -> tuple[float, float, float, float]:
                a, first, _ = await caught_up_worker(broker.bootstrap, app_id, Path(tmp) / "a", last)
                await a.stop()
                b, again, merged = await caught_up_worker(broker.bootstrap, app_id, Path(tmp) / "b", last)
                t0 = time.monotonic()
                b.estimate_table()  # the first whole estimate (merging what was read)
                estimate = time.monotonic() - t0
                await b.stop()
                return first, again, merged, estimate

            first, again, merged, estimate = asyncio.run(run())
        records = sum(v + 1 for v in last.values())
        times.append(again)
        history.append(merged)
        print(f"{archive.name}: {records:,} records; first worker caught up after {first:.1f} s; "
              f"restarted worker whole again after {again:.1f} s (group join and recovery); its "
              f"changelog read and merged after {merged:.1f} s; then its first estimate table took "
              f"{estimate:.1f} s", flush=True)
    print(f"restart time, last/first archive: {times[-1] / times[0]:.2f}; changelog part "
          f"{history[-1] / history[0]:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    m = sub.add_parser("memory")
    m.add_argument("archive", type=Path)
    m.add_argument("--trace", action="store_true")
    r = sub.add_parser("restart")
    r.add_argument("archives", type=Path, nargs="+")
    args = parser.parse_args()
    os.environ.setdefault("SUITCASE_PSEUDONYM_KEY", "bench-restart-memory")
    if args.what == "memory":
        memory(args.archive, args.trace)
    else:
        restart(args.archives)


if __name__ == "__main__":
    main()
