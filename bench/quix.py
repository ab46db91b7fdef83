"""One live worker beside Quix Streams doing stateful per-key work, on one embedded broker.

    .venv/bin/python -m bench.quix [--scale 0.2] [--weeks 2]

The seeded archive of :mod:`bench.throughput` is produced once onto a fresh Tansu broker
(the project's :class:`streams.kafka.broker.EmbeddedBroker`); then, each with its own
group over the same records, in the same run:

- ``suitcase worker raw x1 cold``: one LiveWorker, from its first record to the final
  estimate table covering every record (decode and validate, deduplicate, join, price,
  estimator state, changelog), checked equal to the batch estimate;
- ``quix streams``: a Quix Streams 3.x application (``pip install -e .[bench]``), one
  StreamingDataFrame per contract topic, each decoding the JSON value and keeping per
  message key a record count and a sum of the event's money amounts in its RocksDB
  state store with changelog topics (Quix's defaults: the state is recoverable, exactly
  as ours), timed from its first record to its last, and to the end of its final
  checkpoint (changelog flushed, offsets committed). Records without a key (malformed
  lines the replayer could not key) are decoded and counted without state, since Quix
  keys its state by the message key.

Both run in their own process (spawned), one after the other, so each has the machine's
cores as the other had them. Printed: events/s of both, their ratio, CPU seconds.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
from queue import Empty
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.throughput import cpu_seconds, live_workers, loaded_broker, workload  # noqa: E402


def _amount(event: dict) -> float:
    """The money of one event (0 for those without): what the per-key state sums."""
    if "amount" in event:
        return float(event["amount"] or 0)
    total = 0.0
    for item in event.get("items") or ():
        if isinstance(item, dict):
            total += float(item.get("value") or item.get("assessed_value") or 0)
    return total


def _quix_process(bootstrap: str, topics: list[str], total: int, queue) -> None:
    with tempfile.TemporaryDirectory(prefix="suitcase-quix-") as state_dir:
        _quix_run(bootstrap, topics, total, queue, state_dir)


def _quix_run(bootstrap: str, topics: list[str], total: int, queue, state_dir: str) -> None:
    import logging

    from quixstreams import Application

    logging.basicConfig(level=logging.WARNING)
    app = Application(
        broker_address=bootstrap, consumer_group=f"bench-quix-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest", state_dir=state_dir, use_changelog_topics=True,
        loglevel="WARNING", auto_create_topics=True,
    )
    seen = {"n": 0, "first": None, "last": None, "bad": 0}

    def parse(value: bytes):
        try:
            event = json.loads(value)
            return event if isinstance(event, dict) else None
        except (ValueError, TypeError):
            seen["bad"] += 1
            return None

    def stamp() -> None:
        now = time.perf_counter()
        if seen["first"] is None:
            seen["first"] = now
        seen["n"] += 1
        seen["last"] = now
        if seen["n"] >= total:
            app.stop()

    def per_key(event, key, timestamp, headers, state):
        if key is not None:
            state.set("n", state.get("n", 0) + 1)
            if event is not None:
                try:
                    state.set("sum", state.get("sum", 0.0) + _amount(event))
                except (TypeError, ValueError):
                    pass
        stamp()
        return event

    for name in topics:
        topic = app.topic(name, key_deserializer="bytes", value_deserializer="bytes")
        # Tansu's DescribeConfigs reports no retention.ms, from which Quix derives its
        # changelog topics' retention: say "unlimited", as the input topics are.
        topic.broker_config.extra_config.setdefault("retention.ms", "-1")
        sdf = app.dataframe(topic)
        sdf = sdf.apply(parse)
        sdf = sdf.apply(per_key, stateful=True, metadata=True)
    cpu0 = time.process_time()
    app.run()
    done = time.perf_counter()
    queue.put({
        "n": seen["n"], "bad": seen["bad"], "processing_s": seen["last"] - seen["first"],
        "with_checkpoint_s": done - seen["first"], "cpu_s": time.process_time() - cpu0,
    })


def quix(bootstrap: str, total: int) -> dict:
    from streams.pipeline.contract import TOPICS

    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_quix_process, args=(bootstrap, list(TOPICS), total, queue))
    proc.start()
    try:
        deadline = time.monotonic() + 600
        while True:  # a child that died (Quix not installed, a crash) ends the wait at once
            try:
                result = queue.get(timeout=1)
                break
            except Empty:
                if not proc.is_alive() or time.monotonic() > deadline:
                    raise SystemExit(f"bench.quix: the Quix Streams process ended without a result "
                                     f"(exit code {proc.exitcode}); is it installed? pip install -e .[bench]")
    finally:
        proc.join(60)
        if proc.is_alive():
            proc.kill()
    result["events_per_s"] = result["n"] / result["processing_s"]
    result["events_per_s_with_checkpoint"] = result["n"] / result["with_checkpoint_s"]
    return result


def main() -> None:
    os.environ.setdefault("SUITCASE_PSEUDONYM_KEY", "bench-pseudonym-key")
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=float, default=0.2)
    parser.add_argument("--weeks", type=int, default=2)
    parser.add_argument("--archive", type=Path, help="Use this archive instead of simulating one.")
    parser.add_argument("--only", choices=["suitcase", "quix"], help="Run one of the two.")
    args = parser.parse_args()

    with loaded_broker(args.archive or workload(args.scale, args.weeks)) as (broker, total, last):
        ours = q = None
        if args.only != "quix":
            ours = run_suitcase(broker, last, total)
        if args.only != "suitcase":
            q = run_quix(broker, total)
        if ours and q:
            print(f"suitcase / quix = {ours['events_per_s'] / q['events_per_s']:.2f} (target >= 1.0: 65,000/s)")


def run_suitcase(broker, last, total) -> dict:
    before = cpu_seconds(broker._process.pid)
    ours = live_workers(broker.bootstrap, 1, last, total, None, "raw", False)
    ours_broker = cpu_seconds(broker._process.pid) - before
    print(
        f"suitcase worker raw x1 cold : {ours['events_per_s']:>10,.0f} events/s   ({ours['seconds']:.1f} s; "
        f"CPU s: worker {ours['worker_cpu_s'][0]} = {total / ours['worker_cpu_s'][0]:,.0f} events per CPU s, "
        f"broker {ours_broker:.1f}; final table equal to batch: "
        f"{ours['equal_to_batch']})"
    )
    return ours


def run_quix(broker, total) -> dict:
    before = cpu_seconds(broker._process.pid)
    q = quix(broker.bootstrap, total)
    q_broker = cpu_seconds(broker._process.pid) - before
    print(
        f"quix streams, per-key state : {q['events_per_s']:>10,.0f} events/s   ({q['processing_s']:.1f} s; "
        f"{q['events_per_s_with_checkpoint']:,.0f}/s to its final checkpoint; CPU s: app {q['cpu_s']:.1f} = {q['n'] / q['cpu_s']:,.0f} events per CPU s, "
        f"broker {q_broker:.1f}; {q['n']:,} records, {q['bad']:,} not JSON)"
    )
    return q


if __name__ == "__main__":
    main()
