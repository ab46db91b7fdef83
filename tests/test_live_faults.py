"""Fault injection: worker subprocesses (``suitcase worker``) on the embedded broker, a
faulted archive fed slowly, three SIGKILLs at random moments with restarts, one worker
added and one removed; the merged estimator state then equals the batch state of the
same files exactly (nothing lost, nothing counted twice)."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from polars.testing import assert_frame_equal

from streams.commands.cli import main

pytestmark = pytest.mark.broker

SUITCASE = str(Path(sys.executable).with_name("suitcase"))


class Workers:
    """``suitcase worker`` subprocesses of one app; every one is stopped at the end."""

    def __init__(self, broker, app_id: str, tmp: Path) -> None:
        self.broker, self.app_id, self.tmp = broker, app_id, tmp
        self.running: dict[str, subprocess.Popen] = {}
        self.started = 0

    def start(self, name: str) -> None:
        self.started += 1
        log = open(self.tmp / f"{name}-{self.started}.log", "wb")
        self.running[name] = subprocess.Popen(
            [SUITCASE, "worker", "--broker", self.broker.url, "--app-id", self.app_id,
             "--metrics-port", "0", "--data-dir", str(self.tmp / name), "--no-create-topics"],
            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )

    def kill(self, name: str) -> None:
        process = self.running.pop(name)
        process.send_signal(signal.SIGKILL)
        process.wait()

    def remove(self, name: str) -> None:
        process = self.running.pop(name)
        process.send_signal(signal.SIGINT)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def close(self) -> None:
        for name in list(self.running):
            self.kill(name)


def slow_replay(events: Path, bootstrap: str, written, per_second: float, stop: threading.Event) -> None:
    """The archive (rates first) at about ``per_second`` records a second."""
    from streams.kafka.feed import archive_order, key_of, lines, producer

    prod = producer(bootstrap)
    try:
        sent = 0
        started = time.monotonic()
        for topic, path in archive_order(events):
            for raw in lines(path):
                prod.send(topic, key=key_of(topic, raw), value=raw).add_callback(written)
                sent += 1
                if sent % 50 == 0:
                    prod.flush()
                    ahead = sent / per_second - (time.monotonic() - started)
                    if ahead > 0 and stop.wait(ahead):
                        return
        prod.flush()
    finally:
        prod.close()


@pytest.fixture(scope="module")
def faulted(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("faulted")
    assert main(["simulate", "--out", str(out), "--scale", "0.01", "--weeks", "3", "--faults", "--seed", "11"]) == 0
    return out


def test_kill_9_three_times_plus_a_worker_added_and_removed_is_exact(faulted, broker, app_id, tmp_path):
    from streams.pipeline import pseudonym

    # Workers refuse to start without the key; the observer and the batch estimate here use
    # the same one, as every worker and batch run of a deployment must.
    pseudonym.use("fault-injection-test-key")
    from streams.pipeline.batch import build_tables
    from streams.kafka.feed import Written
    from streams.kafka.worker import LiveWorker, WorkerSettings

    seed = int.from_bytes(os.urandom(4), "little")
    print(f"fault schedule seed {seed}")
    rng = random.Random(seed)
    workers = Workers(broker, app_id, tmp_path)
    written = Written()
    stop = threading.Event()
    feeder = threading.Thread(target=slow_replay, args=(faulted, broker.bootstrap, written, 150.0, stop))
    during_feed: list[bool] = []

    async def run():
        # A reader of the app's state changelog only (no group, no partitions): it sees
        # every worker's progress and, at the end, merges the final state.
        from streams.kafka.broker import create_topics

        observer = LiveWorker(WorkerSettings(bootstrap=broker.bootstrap, app_id=app_id, data_dir=tmp_path / "observer"))
        create_topics(broker.bootstrap, names=(observer.changelog_topic,))
        await observer.steps.start()

        def progress() -> int:
            return sum(observer._applied_seq.values())

        async def fault(action) -> None:
            """After a few more steps of progress, at a random moment: ``action``."""
            target = progress() + 5
            deadline = time.monotonic() + 60
            while progress() < target and feeder.is_alive() and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            await asyncio.sleep(rng.uniform(0, 2))
            action()

        def kill_and_restart(name):
            def act():
                during_feed.append(feeder.is_alive() and progress() > 0)
                workers.kill(name)
                workers.start(name)
            return act

        try:
            workers.start("a")
            workers.start("b")
            feeder.start()
            await fault(kill_and_restart("a"))  # kill 1, restarted at once
            await fault(lambda: workers.start("c"))  # a worker added
            await fault(kill_and_restart("b"))  # kill 2
            await fault(lambda: workers.remove("c"))  # a worker removed
            await fault(kill_and_restart("a"))  # kill 3
            await asyncio.to_thread(feeder.join)
            await asyncio.wait_for(observer.wait_caught_up(written.last), 240)
            return observer.summaries, observer.estimate_table()
        finally:
            await observer.steps.stop()

    try:
        summaries, table = asyncio.run(run())
    finally:
        stop.set()
        workers.close()
        if feeder.is_alive():
            feeder.join()
    assert during_feed == [True, True, True], "each kill hit a worker while records flowed"
    tables, _ = build_tables(faulted)
    assert summaries.tables == tables  # every exact integer sum, every sketch
    out = tmp_path / "batch.parquet"
    assert main(["estimate", "--events", str(faulted), "--out", str(out)]) == 0
    import polars as pl

    assert_frame_equal(table, pl.read_parquet(out), check_exact=True)
