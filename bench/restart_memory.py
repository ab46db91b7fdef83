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
  estimates are whole again). The group join (about half the session timeout on Tansu)
  is in every figure alike. Printed: seconds per archive and the ratio last/first
  (issue 11's bar: within 20% from 1 to 12 weeks).
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
    from aiokafka import TopicPartition

    from streams.kafka.worker import kafka_consumer
    from streams.pipeline.partition import LANE_OF

    consumer = kafka_consumer(bootstrap)
    await consumer.start()
    try:
        tps = [TopicPartition(t, p) for t in LANE_OF for p in consumer.partitions_for_topic(t) or ()]
        ends = await consumer.end_offsets(tps)
    finally:
        await consumer.stop()
    return {(tp.topic, tp.partition): end - 1 for tp, end in ends.items() if end > 0}


async def caught_up_worker(bootstrap: str, app_id: str, data_dir: Path, last) -> tuple[object, float]:
    from streams.kafka.worker import LiveWorker, WorkerSettings

    worker = LiveWorker(WorkerSettings(bootstrap=bootstrap, app_id=app_id, data_dir=data_dir))
    started = time.monotonic()
    await worker.start()
    await worker.wait_caught_up(last)
    return worker, time.monotonic() - started


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
            worker, seconds = await caught_up_worker(broker.bootstrap, f"mem-{uuid.uuid4().hex[:6]}", Path(tmp), last)
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

    times = []
    for archive in archives:
        with EmbeddedBroker() as broker, tempfile.TemporaryDirectory() as tmp:
            replay(archive, broker.url)
            last = asyncio.run(last_offsets(broker.bootstrap))
            app_id = f"restart-{uuid.uuid4().hex[:6]}"

            async def run() -> tuple[float, float]:
                a, first = await caught_up_worker(broker.bootstrap, app_id, Path(tmp) / "a", last)
                await a.stop()
                b, again = await caught_up_worker(broker.bootstrap, app_id, Path(tmp) / "b", last)
                await b.stop()
                return first, again

            first, again = asyncio.run(run())
        records = sum(v + 1 for v in last.values())
        times.append(again)
        print(f"{archive.name}: {records:,} records; first worker caught up after {first:.1f} s; "
              f"restarted worker whole again after {again:.1f} s", flush=True)
    print(f"restart time, last/first archive: {times[-1] / times[0]:.2f}")


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
