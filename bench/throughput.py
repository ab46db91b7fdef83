"""End-to-end throughput of the live worker beside two baselines, on one embedded broker.

    .venv/bin/python -m bench.throughput [--scale 0.03] [--weeks 2] [--workers 1 2 3] [--no-baselines] [--profile]

One seeded, cached archive (``suitcase simulate --faults``) is produced once onto a fresh
Tansu broker (production timed apart); then, each with a fresh group id, over the same
records:

- ``aiokafka getmany``: a consumer that fetches everything and does nothing;
- ``plain faust``: one faust agent over the six topics that json-decodes each value;
- ``suitcase worker <mode> x1 cold``: one LiveWorker timed like the baselines, from its
  first record to the final estimate table of every record (the observation log covering
  every written offset); mode ``faust`` (lane agents) or ``raw`` (record batches from one
  aiokafka consumer);
- ``... x1 settled``, ``x2 settled`` and ``x3 settled``: one, two and three worker processes in one group,
  timed from a common start signal once the group has settled (no rebalance inside
  the timed run); their ratios are the scaling figures (the machine's cores bound them).

Every consumer is timed from its first record (the baselines) or from a start signal
given once the group has settled (the workers: each joined, was assigned its partitions
and recovered its state) to its last record, so group joins (about half the session
timeout on Tansu) are not counted. Printed: events/s, ratios, and CPU seconds of the
workers and of the broker during the timed run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
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
        from streams.simulation.simulator import WorldConfig, simulate

        out.mkdir(parents=True, exist_ok=True)
        simulate(out, WorldConfig(seed=seed, start=__import__("datetime").date(2026, 3, 2), weeks=weeks, scale=scale, faults=True))
    return out


def produce(archive: Path, bootstrap: str):
    from streams.kafka.feed import Written, replay

    written = Written()
    started = time.perf_counter()
    sent = replay(archive, bootstrap, written=written)
    return sent, time.perf_counter() - started, written.last


async def aiokafka_baseline(bootstrap: str, total: int) -> float:
    from aiokafka import AIOKafkaConsumer

    from streams.pipeline.contract import TOPICS

    from streams.kafka.security import aiokafka_kwargs

    consumer = AIOKafkaConsumer(
        *TOPICS, **aiokafka_kwargs(), bootstrap_servers=bootstrap, group_id=f"bench-{uuid.uuid4().hex[:8]}",
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

    from streams.pipeline.contract import TOPICS

    from streams.kafka.security import faust_kwargs

    app = faust.App(
        f"bench-faust-{uuid.uuid4().hex[:8]}", broker=f"kafka://{bootstrap}", **faust_kwargs(), store="memory://",
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


def _worker_process(bootstrap: str, app_id: str, last: dict, queue, go, profile: str | None, consumer: str, paused: bool) -> None:
    import logging

    logging.basicConfig(level=logging.WARNING)

    async def run():
        from streams.kafka.worker import LiveWorker, WorkerSettings

        worker = LiveWorker(WorkerSettings(
            bootstrap=bootstrap, app_id=app_id, data_dir=CACHE / app_id, consumer=consumer, start_paused=paused,
        ))
        await worker.start()
        try:
            queue.put(("ready", sorted(worker.states)))
            await asyncio.to_thread(go.wait)
            cpu0 = time.process_time()
            started = time.time()
            worker.resume()
            await worker.wait_caught_up(last)
            if not paused:
                started = worker.first_record_at
            table = worker.estimate_table()
            done = time.time()
            table.write_parquet(CACHE / f"{app_id}-{os.getpid()}.parquet")
            tally = worker.tallies()
            queue.put(("done", {
                "first": started, "done": done, "rows": len(table), "states": sorted(worker.states),
                "processed_here": sum(tally.accepted.values()) + sum(tally.duplicates.values()) + sum(tally.rejected.values()),
                "estimate_s": worker.estimate_seconds,
                "cpu_s": time.process_time() - cpu0,
            }))
        finally:
            await worker.stop()

    if profile:
        import cProfile

        cProfile.runctx("asyncio.run(run())", globals(), locals(), profile)
    else:
        asyncio.run(run())


def live_workers(bootstrap: str, n: int, last: dict, total: int, profile: str | None = None,
                 consumer: str = "raw", paused: bool = True) -> dict:
    """n worker processes in one group, timed to the final estimates from a common start
    signal given once the group has settled (every worker joined and recovered) or, not
    ``paused``, from the first record processed (as the baselines are timed). Paused
    workers prefetch while they wait (faust fills its stream buffers, aiokafka its fetch
    buffers), so paused figures suit the one-to-two-workers ratio, not the baselines."""
    app_id = f"bench-live-{uuid.uuid4().hex[:8]}"
    ctx = mp.get_context("spawn")
    queue, go = ctx.Queue(), ctx.Event()
    procs = [
        ctx.Process(target=_worker_process, args=(bootstrap, app_id, last, queue, go, profile if i == 0 else None, consumer, paused))
        for i in range(n)
    ]
    for p in procs:
        p.start()
    for _ in procs:
        kind, _states = queue.get(timeout=120)
        assert kind == "ready"
    if paused:
        time.sleep(3 * n)  # let a rebalance triggered by the last join settle
    go.set()
    results = [queue.get(timeout=300)[1] for _ in procs]
    for p in procs:
        p.join(60)
    from polars.testing import assert_frame_equal

    batch = _batch_table()
    equal = True
    for p in procs:
        live = __import__("polars").read_parquet(CACHE / f"{app_id}-{p.pid}.parquet")
        try:
            assert_frame_equal(live, batch, check_exact=False, rel_tol=1e-6)
        except AssertionError:
            equal = False
    first = min(r["first"] for r in results)
    done = max(r["done"] for r in results)
    return {
        "events_per_s": total / (done - first),
        "seconds": done - first,
        "split": [r["processed_here"] for r in results],
        "estimate_s": max(r["estimate_s"] for r in results),
        "worker_cpu_s": [round(r["cpu_s"], 1) for r in results],
        "equal_to_batch": equal,
    }


_BATCH: dict = {}


def _batch_table():
    return _BATCH["table"]


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def loaded_broker(archive: Path):
    """A fresh embedded broker holding ``archive``'s records, and the batch estimate of the
    same archive that every live run is checked against: yields (broker, records, last offsets)."""
    from streams.kafka.broker import EmbeddedBroker, create_topics
    from streams.pipeline.batch import estimate_archive

    with EmbeddedBroker() as broker:
        create_topics(broker.bootstrap)
        total, seconds, last = produce(archive, broker.bootstrap)
        _BATCH["table"] = estimate_archive(archive)
        print(f"workload: {archive.name}, {total:,} records; produced in {seconds:.1f} s ({total / seconds:,.0f}/s)")
        yield broker, total, last


def main() -> None:
    # workers digest with a key, as in production (streams/pipeline/pseudonym.py)
    os.environ.setdefault("SUITCASE_PSEUDONYM_KEY", "bench-pseudonym-key")
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=float, default=0.03)
    parser.add_argument("--weeks", type=int, default=2)
    parser.add_argument("--workers", type=int, nargs="*", default=[1, 2], help="of 1, 2 and 3")
    parser.add_argument("--no-baselines", action="store_true", help="Skip the aiokafka and plain faust runs.")
    parser.add_argument("--consumers", nargs="*", default=["raw"], help="worker consumer modes to run (only raw)")
    parser.add_argument("--archive", type=Path, help="Use this archive instead of simulating one.")
    parser.add_argument("--profile", action="store_true", help="cProfile the cold one-worker runs to /tmp/suitcase-worker-<mode>.prof")
    args = parser.parse_args()

    with loaded_broker(args.archive or workload(args.scale, args.weeks)) as (broker, total, last):
        base = plain = float("nan")
        if not args.no_baselines:
            base = asyncio.run(aiokafka_baseline(broker.bootstrap, total))
            print(f"aiokafka getmany, no work : {base:>10,.0f} events/s")
            plain = asyncio.run(faust_baseline(broker.bootstrap, total))
            print(f"plain faust, json.loads   : {plain:>10,.0f} events/s   ({plain / base:.3f} x aiokafka)")
        results = {}
        runs = [(c, n, p) for c in args.consumers for n, p in ((1, False), (1, True), (2, True), (3, True)) if n in args.workers]
        for consumer, n, paused in runs:
            prof = f"/tmp/suitcase-worker-{consumer}.prof" if args.profile and n == 1 and not paused else None
            before = cpu_seconds(broker._process.pid)
            r = results[consumer, n, paused] = live_workers(broker.bootstrap, n, last, total, prof, consumer, paused)
            r["broker_cpu_s"] = cpu_seconds(broker._process.pid) - before
            label = f"{consumer} x{n} {'settled' if paused else 'cold'}"
            print(
                f"suitcase worker {label:18}: {r['events_per_s']:>10,.0f} events/s   "
                f"({r['events_per_s'] / plain:.2f} x plain faust; {r['seconds']:.1f} s; records per worker "
                f"{r['split']}; CPU s: workers {r['worker_cpu_s']}, broker {r['broker_cpu_s']:.1f}; "
                f"final tables equal to batch: {r['equal_to_batch']})"
            )
        for consumer in args.consumers:
            cold, one, two, three = (results.get((consumer, n, p)) for n, p in ((1, False), (1, True), (2, True), (3, True)))
            if cold:
                print(f"{consumer:5}: one worker (cold) / plain faust = {cold['events_per_s'] / plain:.2f} (target >= 0.75)", end="")
            if one and two:
                print(f"; two workers / one (settled) = {two['events_per_s'] / one['events_per_s']:.2f} (target >= 1.8)", end="")
            if one and three:
                print(f"; three / one = {three['events_per_s'] / one['events_per_s']:.2f} (target >= 2.5)", end="")
            print()
            # On a machine with fewer free cores than workers the wall-clock ratios say more
            # about the machine than the workers; the busiest worker's CPU seconds bound the
            # ratio the workers would give with a core each.
            for n, many in ((2, two), (3, three)):
                if one and many:
                    print(f"{consumer:5}: CPU s of one worker / of the busiest of {n} = "
                          f"{max(one['worker_cpu_s']) / max(many['worker_cpu_s']):.2f}")

if __name__ == "__main__":
    main()
