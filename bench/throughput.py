"""End-to-end throughput of the live worker beside two baselines, on one embedded broker.

    .venv/bin/python -m bench.throughput [--scale 0.03] [--weeks 2] [--workers 1 2] [--profile]

One seeded, cached archive (``suitcase simulate --faults``) is produced once onto a fresh
Tansu broker (production timed apart); then, each with a fresh group id, over the same
records:

- ``aiokafka getmany``: a consumer that fetches everything and does nothing;
- ``plain faust``: one faust agent over the six topics that json-decodes each value;
- ``suitcase worker x1``: one LiveWorker, timed from its first record to the final
  estimate table of every record (the observation log covering every written offset);
- ``suitcase worker x2``: two worker processes in one group, same measure.

Every consumer is timed from its first record to its last, so group joins (about half
the session timeout on Tansu) are not counted. Printed: events/s and ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CACHE = Path(os.environ.get("SUITCASE_BENCH_CACHE", "/tmp/suitcase-bench"))


def workload(scale: float, weeks: int, seed: int = 11) -> Path:
    """The seeded archive, simulated once and cached."""
    out = CACHE / f"archive-s{scale}-w{weeks}-seed{seed}"
    if not (out / "border.departures.ndjson").exists():
        from streams.simulator import WorldConfig, simulate

        out.mkdir(parents=True, exist_ok=True)
        simulate(out, WorldConfig(seed=seed, start=__import__("datetime").date(2026, 3, 2), weeks=weeks, scale=scale, faults=True))
    return out


def produce(archive: Path, bootstrap: str):
    from streams.feed import Written, replay

    written = Written()
    started = time.perf_counter()
    sent = replay(archive, bootstrap, written=written)
    return sent, time.perf_counter() - started, written.last


async def aiokafka_baseline(bootstrap: str, total: int) -> float:
    from aiokafka import AIOKafkaConsumer

    from streams.contract import TOPICS

    consumer = AIOKafkaConsumer(
        *TOPICS, bootstrap_servers=bootstrap, group_id=f"bench-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest", enable_auto_commit=False, max_partition_fetch_bytes=4 << 20,
        fetch_max_bytes=16 << 20,
    )
    await consumer.start()
    n, first = 0, None
    try:
        while n < total:
            batches = await consumer.getmany(timeout_ms=200, max_records=10000)
            for messages in batches.values():
                if first is None and messages:
                    first = time.perf_counter()
                n += len(messages)
        return n / (time.perf_counter() - first)
    finally:
        await consumer.stop()


async def faust_baseline(bootstrap: str, total: int) -> float:
    import faust

    from streams.contract import TOPICS

    app = faust.App(
        f"bench-faust-{uuid.uuid4().hex[:8]}", broker=f"kafka://{bootstrap}", store="memory://",
        web_enabled=False, broker_session_timeout=10, key_serializer="raw", value_serializer="raw",
        consumer_auto_offset_reset="earliest", topic_partitions=4, autodiscover=False,
        datadir=str(CACHE / "faust-baseline"),
    )
    topic = app.topic(*TOPICS, key_serializer="raw", value_serializer="raw")
    state = {"n": 0, "first": None, "done": asyncio.Event()}

    @app.agent(topic)
    async def decode(stream):
        async for value in stream:
            if state["first"] is None:
                state["first"] = time.perf_counter()
            try:
                json.loads(value)
            except ValueError:
                pass
            state["n"] += 1
            if state["n"] >= total:
                state["end"] = time.perf_counter()
                state["done"].set()

    await app.start()
    try:
        await state["done"].wait()
        return state["n"] / (state["end"] - state["first"])
    finally:
        await app.stop()


def _worker_process(bootstrap: str, app_id: str, last: dict, queue, profile: str | None) -> None:
    import logging

    logging.basicConfig(level=logging.WARNING)

    async def run():
        from streams.worker import LiveWorker, WorkerSettings

        worker = LiveWorker(WorkerSettings(bootstrap=bootstrap, app_id=app_id, data_dir=CACHE / app_id))
        await worker.start()
        try:
            await worker.wait_caught_up(last)
            table = worker.estimate_table()
            done = time.time()
            tally = worker.tallies()
            queue.put({
                "first": worker.first_record_at, "done": done, "rows": len(table),
                "processed_here": sum(tally.accepted.values()) + sum(tally.duplicates.values()) + sum(tally.rejected.values()),
                "estimate_s": worker.estimate_seconds,
            })
        finally:
            await worker.stop()

    if profile:
        import cProfile

        cProfile.runctx("asyncio.run(run())", globals(), locals(), profile)
    else:
        asyncio.run(run())


def live_workers(bootstrap: str, n: int, last: dict, total: int, profile: str | None = None) -> dict:
    app_id = f"bench-live-{uuid.uuid4().hex[:8]}"
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [
        ctx.Process(target=_worker_process, args=(bootstrap, app_id, last, queue, profile if i == 0 else None))
        for i in range(n)
    ]
    for p in procs:
        p.start()
    results = [queue.get(timeout=600) for _ in procs]
    for p in procs:
        p.join(60)
    first = min(r["first"] for r in results if r["first"])
    done = max(r["done"] for r in results)
    return {
        "events_per_s": total / (done - first),
        "seconds": done - first,
        "split": [r["processed_here"] for r in results],
        "estimate_s": max(r["estimate_s"] for r in results),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=float, default=0.03)
    parser.add_argument("--weeks", type=int, default=2)
    parser.add_argument("--workers", type=int, nargs="*", default=[1, 2])
    parser.add_argument("--archive", type=Path, help="Use this archive instead of simulating one.")
    parser.add_argument("--profile", action="store_true", help="cProfile the first worker to /tmp/suitcase-worker.prof")
    args = parser.parse_args()

    from streams.broker import EmbeddedBroker, create_topics

    archive = args.archive or workload(args.scale, args.weeks)
    with EmbeddedBroker() as broker:
        create_topics(broker.bootstrap)
        total, seconds, last = produce(archive, broker.bootstrap)
        print(f"workload: {archive.name}, {total:,} records; produced in {seconds:.1f} s ({total / seconds:,.0f}/s)")
        base = asyncio.run(aiokafka_baseline(broker.bootstrap, total))
        print(f"aiokafka getmany, no work : {base:>10,.0f} events/s")
        plain = asyncio.run(faust_baseline(broker.bootstrap, total))
        print(f"plain faust, json.loads   : {plain:>10,.0f} events/s   ({plain / base:.3f} x aiokafka)")
        results = {}
        for n in args.workers:
            r = results[n] = live_workers(broker.bootstrap, n, last, total, "/tmp/suitcase-worker.prof" if args.profile and n == args.workers[0] else None)
            print(
                f"suitcase worker x{n}       : {r['events_per_s']:>10,.0f} events/s   "
                f"({r['events_per_s'] / plain:.3f} x plain faust; {r['seconds']:.1f} s; records per worker {r['split']}; "
                f"last estimate {r['estimate_s']:.2f} s)"
            )
        if 1 in results and 2 in results:
            print(f"two workers / one worker  : {results[2]['events_per_s'] / results[1]['events_per_s']:.2f} x (target >= 1.6)")
        if 1 in results:
            print(f"one worker / plain faust  : {results[1]['events_per_s'] / plain:.2f} x (target >= 0.75)")


if __name__ == "__main__":
    main()
