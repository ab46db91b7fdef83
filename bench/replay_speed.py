"""Replay speed: ``suitcase replay`` beside the aiokafka ceiling, in the same run.

    .venv/bin/python -m bench.replay_speed [--weeks 12] [--scale 0.2] [--seed 11] [--no-shuffle]
    .venv/bin/python -m bench.replay_speed --order-only DIR   # any archive, e.g. a year at scale 1

One seeded archive (``suitcase simulate --faults``, cached under ``bench/.cache``), its
lines shuffled in every file (seeded) unless ``--no-shuffle``, so the replayer's
external sort does real work. Then, each onto a fresh embedded Tansu broker:

- ``suitcase replay``: :func:`streams.kafka.feed.replay_counts`, what the command runs, timed
  from the first byte read to the last record acknowledged (sorting included);
- ``aiokafka send``: the same lines already in memory, keyed and partitioned, sent
  as ready record batches with aiokafka and nothing else (the ceiling of client and
  broker for sending);
- ``aiokafka getmany``: a consumer that fetches every record back and does nothing.

Printed: records/s of each, the replay's share of the send ceiling, the same per
CPU-second of this process (the broker's excluded; on a shared machine the wall clock
also measures the other jobs), and the peak RSS of the process after the replay
(before anything else is loaded).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import resource
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.throughput import aiokafka_baseline as aiokafka_getmany  # noqa: E402 - the same ceiling in both

CACHE = Path(__file__).resolve().parent / ".cache"


def archive(weeks: int, scale: float, seed: int, shuffle: bool) -> Path:
    """The simulated archive (cached), and with ``shuffle`` a copy with every file's
    lines in a seeded random order."""
    import datetime as dt

    from streams.simulation.simulator import WorldConfig, simulate

    plain = CACHE / f"archive-s{scale}-w{weeks}-seed{seed}"
    if not (plain / "fx.rates.ndjson").exists():
        shutil.rmtree(plain, ignore_errors=True)
        plain.mkdir(parents=True)
        simulate(plain, WorldConfig(seed=seed, start=dt.date(2026, 3, 2), weeks=weeks, scale=scale, faults=True))
    if not shuffle:
        return plain
    mixed = plain.with_name(plain.name + "-shuffled")
    if not (mixed / "fx.rates.ndjson").exists():
        shutil.rmtree(mixed, ignore_errors=True)
        mixed.mkdir()
        shuffle_archive(plain, mixed, seed)
    return mixed


def shuffle_archive(source: Path, target: Path, seed: int) -> None:
    """Every topic file of ``source`` with its lines in a seeded random order."""
    rng = random.Random(seed)
    for path in sorted(source.glob("*.ndjson")):
        rows = path.read_bytes().split(b"\n")
        if rows and rows[-1] == b"":
            rows.pop()
        rng.shuffle(rows)
        (target / path.name).write_bytes(b"\n".join(rows) + b"\n")


def cpu_seconds() -> float:
    """CPU time of this process so far (all its threads; not the broker's)."""
    use = resource.getrusage(resource.RUSAGE_SELF)
    return use.ru_utime + use.ru_stime


def time_replay(events: Path) -> tuple[int, float, float]:
    """Records replayed, wall seconds and CPU seconds of this process."""
    from streams.kafka.broker import EmbeddedBroker, create_topics
    from streams.kafka.feed import replay_counts

    with EmbeddedBroker() as broker:
        create_topics(broker.bootstrap)
        started, cpu = time.perf_counter(), cpu_seconds()
        sent = replay_counts(events, broker.bootstrap)
        return sum(sent.values()), time.perf_counter() - started, cpu_seconds() - cpu


def load(events: Path) -> list[tuple[str, bytes | None, bytes, int]]:
    """Every line with its topic, key and key hash (-1: none), in memory."""
    from streams.pipeline.archive import lines
    from streams.pipeline.contract import TOPICS
    from streams.kafka.feed import key_of, murmur2_partition_hash

    out = []
    for topic in TOPICS:
        path = events / f"{topic}.ndjson"
        if path.exists():
            rows = list(lines(path))
            keys = [key_of(topic, raw) for raw in rows]
            out += zip([topic] * len(rows), keys, rows, murmur2_partition_hash(keys).tolist())
    return out


async def aiokafka_send(bootstrap: str, records) -> tuple[float, float]:
    """records/s and records per CPU second of this process."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=1, max_batch_size=1 << 20,
                                max_request_size=16 << 20)
    await producer.start()
    try:
        futures, batches = [], {}
        started, cpu = time.perf_counter(), cpu_seconds()
        for topic, key, value, hashed in records:
            partition = hashed % 4 if hashed >= 0 else 0
            batch = batches.get((topic, partition))
            if batch is None:
                batch = batches[topic, partition] = producer.create_batch()
            if batch.append(timestamp=None, key=key, value=value) is None:
                futures.append(await producer.send_batch(batch, topic, partition=partition))
                batch = batches[topic, partition] = producer.create_batch()
                batch.append(timestamp=None, key=key, value=value)
        for (topic, partition), batch in batches.items():
            batch.close()
            futures.append(await producer.send_batch(batch, topic, partition=partition))
        await asyncio.gather(*futures)
        return len(records) / (time.perf_counter() - started), len(records) / (cpu_seconds() - cpu)
    finally:
        await producer.stop()


def order_only(events: Path, tmp_dir: Path | None) -> None:
    """The replay order of an archive, sent nowhere: lines/s and peak RSS of the sort."""
    import tempfile

    from streams.kafka.feed import replay_order

    started = time.perf_counter()
    n = 0
    with tempfile.TemporaryDirectory(prefix="suitcase-replay-bench-", dir=tmp_dir) as folder:
        for stream in replay_order(events, Path(folder)):
            for chunk in stream:
                n += len(chunk)
    seconds = time.perf_counter() - started
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"archive: {events} ({n:,} lines)")
    print(f"replay order only (read, sort, spill, merge): {n / seconds:,.0f} lines/s ({seconds:.1f} s), "
          f"peak RSS {rss:,.0f} MB")


def archive_arguments(doc: str) -> argparse.ArgumentParser:
    """The parser of a bench over one simulated archive (weeks, scale, seed, shuffled)."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--weeks", type=int, default=12)
    parser.add_argument("--scale", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--no-shuffle", dest="shuffle", action="store_false")
    return parser


def main(argv: list[str] | None = None) -> None:
    parser = archive_arguments(__doc__)
    parser.add_argument("--order-only", type=Path, metavar="DIR",
                        help="only sort this archive into replay order (no broker): lines/s and peak RSS")
    parser.add_argument("--tmp-dir", type=Path, help="where the sort spills (with --order-only)")
    args = parser.parse_args(argv)
    if args.order_only is not None:
        order_only(args.order_only, args.tmp_dir)
        return

    from streams.kafka.broker import EmbeddedBroker, create_topics

    events = archive(args.weeks, args.scale, args.seed, args.shuffle)
    sent, seconds, cpu = time_replay(events)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    records = load(events)
    assert len(records) == sent, (len(records), sent)
    with EmbeddedBroker() as broker:
        create_topics(broker.bootstrap)
        send, send_cpu = asyncio.run(aiokafka_send(broker.bootstrap, records))
        getmany = asyncio.run(aiokafka_getmany(broker.bootstrap, len(records)))
    replay = sent / seconds
    print(f"archive: {events.name} ({sent:,} lines, shuffled: {args.shuffle})")
    print(f"{'suitcase replay (sort + send)':34} {replay:>10,.0f} records/s  ({seconds:.2f} s, peak RSS {rss:,.0f} MB); "
          f"{sent / cpu:,.0f} records per CPU-second of the process")
    print(f"{'aiokafka send (ready batches)':34} {send:>10,.0f} records/s; {send_cpu:,.0f} records per CPU-second")
    print(f"{'aiokafka getmany (read back)':34} {getmany:>10,.0f} records/s")
    print(f"replay / send ceiling: {replay / send:.2f} (per CPU-second: {sent / cpu / send_cpu:.2f}); "
          f"target 200,000 records/s: {'met' if replay >= 200_000 else 'NOT met'}")


if __name__ == "__main__":
    main()
