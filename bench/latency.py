"""Latency at a steady offered load: production to processing, and to the estimate.

    .venv/bin/python -m bench.latency [--rate 1000] [--seconds 20]

One worker on a fresh embedded broker. The cached benchmark archive's rates go first;
then its other records are produced in event-time order at ``--rate`` records/s (in
10 ms ticks, from a process of their own). For every record: *processing* latency =
processed at - Kafka record timestamp (the producer's send time); *merged*: read back
from the state changelog and merged; *estimate* latency = the end of the first
estimate recomputation that includes it - record timestamp (what a metric scrape or an
estimates-topic consumer sees; recomputation runs at most once per second).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.throughput import CACHE, workload  # noqa: E402


def quantiles(values: list[float]) -> str:
    if not values:
        return "no samples"
    v = sorted(values)
    q = lambda p: v[min(len(v) - 1, int(p * len(v)))]  # noqa: E731
    return f"p50 {q(0.50) * 1e3:7.1f} ms   p99 {q(0.99) * 1e3:7.1f} ms   max {v[-1] * 1e3:7.1f} ms   (n={len(v):,})"


def paced(bootstrap: str, records: list[tuple[str, bytes | None, bytes]], rate: float, stop: threading.Event) -> float:
    from streams.kafka.feed import producer

    prod = producer(bootstrap)
    prod.config["linger_ms"] = 0
    per_tick = max(1, int(rate / 100))
    started = time.monotonic()
    sent = 0
    for i in range(0, len(records), per_tick):
        if stop.is_set():
            break
        for topic, key, raw in records[i:i + per_tick]:
            prod.send(topic, key=key, value=raw)
        sent += len(records[i:i + per_tick])
        prod.flush()
        delay = started + sent / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    prod.close()
    return sent / (time.monotonic() - started)


def _paced_process(bootstrap: str, records: list, rate: float, offered) -> None:
    offered.value = paced(bootstrap, records, rate, threading.Event())


def paced_elsewhere(bootstrap: str, records: list, rate: float) -> float:
    """:func:`paced` in a process of its own, as a feed is: in a thread of the worker's
    process it would compete for the worker's GIL (and fall behind its rate)."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    offered = ctx.Value("d", 0.0)
    feed = ctx.Process(target=_paced_process, args=(bootstrap, records, rate, offered))
    feed.start()
    feed.join()
    if feed.exitcode != 0:
        raise RuntimeError(f"the paced feed failed (exit {feed.exitcode})")
    return offered.value


def main() -> None:
    # workers digest with a key, as in production (streams/pipeline/pseudonym.py)
    os.environ.setdefault("SUITCASE_PSEUDONYM_KEY", "bench-pseudonym-key")
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--scale", type=float, default=0.03)
    parser.add_argument("--weeks", type=int, default=2)
    parser.add_argument("--consumer", default="raw", choices=["raw"])
    args = parser.parse_args()

    from prometheus_client import CollectorRegistry

    from streams.kafka.broker import EmbeddedBroker, create_topics
    from streams.pipeline.contract import RATES
    from streams.kafka.feed import _event_time, iter_records, replay
    from streams.kafka.worker import LiveWorker, WorkerSettings

    archive = workload(args.scale, args.weeks)
    records = [r for r in iter_records(archive) if r[0] != RATES]
    records.sort(key=lambda r: _event_time(r[2]))
    records = records[: int(args.rate * args.seconds)]

    async def run(bootstrap: str):
        worker = LiveWorker(WorkerSettings(
            bootstrap=bootstrap, app_id=f"bench-lat-{uuid.uuid4().hex[:8]}", data_dir=CACHE / "latency",
            registry=CollectorRegistry(), track_latency=True, consumer=args.consumer,
        ))
        await worker.start()
        try:
            rates_only = CACHE / "latency-rates"
            rates_only.mkdir(parents=True, exist_ok=True)
            (rates_only / f"{RATES}.ndjson").write_bytes((archive / f"{RATES}.ndjson").read_bytes())
            await asyncio.to_thread(replay, rates_only, bootstrap)
            await worker.rates.sync()
            await asyncio.sleep(1.0)
            worker.processing_latencies.clear()
            worker.estimate_latencies.clear()
            getattr(worker, "merge_latencies", []).clear()
            offered = await asyncio.to_thread(paced_elsewhere, bootstrap, records, args.rate)
            deadline = time.monotonic() + 30
            while len(worker.estimate_latencies) < len(records) and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
            return offered, worker
        finally:
            await worker.stop()

    with EmbeddedBroker() as broker:
        create_topics(broker.bootstrap)
        offered, worker = asyncio.run(run(broker.bootstrap))
    print(f"consumer {args.consumer}: offered {offered:,.0f} records/s for {len(records) / offered:.0f} s ({len(records):,} records)")
    print(f"production -> processed       : {quantiles(worker.processing_latencies)}")
    if hasattr(worker, "merge_latencies"):
        print(f"production -> merged          : {quantiles(worker.merge_latencies)}")
    print(f"production -> estimate/metric : {quantiles(worker.estimate_latencies)}   (target p99 < 2000 ms)")
    print(f"last estimate recomputation   : {worker.estimate_seconds * 1e3:.0f} ms")


if __name__ == "__main__":
    main()
