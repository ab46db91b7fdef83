"""Hostile input against a running worker on the embedded broker: arbitrary bytes and JSON
on every input topic, tombstones, and crafted records on the internal state changelog.
The worker stays alive, catches up, and its estimates equal the batch estimate of the
valid events; a task that fails takes the worker down loudly."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import msgspec
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.commands.cli import main
from streams.pipeline.contract import TOPICS
from streams.kafka.feed import Written, replay

pytestmark = pytest.mark.broker

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)

#: Inputs that stopped a worker for good before (issue 9), beside the generated ones.
KNOWN = [
    None,  # a tombstone
    b'{"event_id": "\xff\xfe", "event_time": "2026-03-14T08:00:00+03:30"}',  # not UTF-8 in a string
    b'{"x": ' + b"[" * 5000 + b"]" * 5000 + b"}",  # nested 5,000 deep in an unknown field
    b'{"event_id": "e", "event_time": "9999-12-31T23:59:59+14:00"}',
    b'{"event_id": "e", "event_time": "0001-01-01T00:00:00+14:00"}',
    b"\x00" * 100,
    b"",
]


def hostile_records() -> list[tuple[str, bytes | None]]:
    found: list[tuple[str, bytes | None]] = []

    @settings(max_examples=60, database=None, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.sampled_from(TOPICS), st.one_of(
        st.binary(max_size=200),
        json_values.map(lambda v: json.dumps(v).encode()),
        st.dictionaries(st.sampled_from(["event_id", "event_time", "crossing_id", "items", "amount"]),
                        json_values, max_size=5).map(lambda v: json.dumps(v).encode()),
    ))
    def collect(topic, value):
        found.append((topic, value))

    collect()
    return found + [(topic, value) for topic in TOPICS for value in KNOWN]


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("hostile")
    assert main(["simulate", "--out", str(out), "--scale", "0.005", "--weeks", "2", "--faults", "--seed", "5"]) == 0
    return out


def batch_table(events: Path, tmp: Path) -> pl.DataFrame:
    out = tmp / "batch.parquet"
    assert main(["estimate", "--events", str(events), "--out", str(out)]) == 0
    return pl.read_parquet(out)


def crafted_internal_records() -> list[bytes]:
    from streams.pipeline.encoding import _mac

    def framed(body: bytes, version: int = 1) -> bytes:
        return b"SC" + bytes((version,)) + _mac(version, body) + body

    return [
        b"garbage",
        b"\x80\x04\x95" + b"\x00" * 30,  # a pickle header
        msgspec.msgpack.encode({"kind": "segment", "seq": 1}),
        framed(msgspec.msgpack.encode(["segment", "crossings", 0, 1, 0, 0, 1])),  # wrong shape
        framed(b"\xdd\xff\xff\xff\xff"),  # an array claiming 4 billion items
        b"SC\x07" + b"\x00" * 40,  # an unknown version
        b"SC\x01" + b"\x00" * 40,  # a wrong MAC
    ]


def test_hostile_input_and_crafted_internal_records_leave_the_worker_right(archive, broker, app_id, tmp_path):
    from kafka import KafkaProducer
    from prometheus_client import CollectorRegistry

    from streams.kafka.worker import LiveWorker, WorkerSettings

    hostile = hostile_records()
    crafted = crafted_internal_records()
    registry = CollectorRegistry()

    async def run():
        worker = LiveWorker(WorkerSettings(bootstrap=broker.bootstrap, app_id=app_id,
                                           data_dir=tmp_path / app_id, registry=registry))
        await worker.start()
        try:
            written = Written()

            def send_hostile():
                producer = KafkaProducer(bootstrap_servers=broker.bootstrap)
                for topic, value in hostile:
                    producer.send(topic, key=b"k", value=value).add_callback(written)
                for raw in crafted:  # before and (below) after the valid events
                    producer.send(worker.changelog_topic, key=b"crossings|0|999999999999|0000", value=raw)
                producer.flush()
                producer.close()

            await asyncio.to_thread(send_hostile)
            await asyncio.to_thread(replay, archive, broker.bootstrap, None, None, written)
            await asyncio.to_thread(send_hostile)
            await worker.wait_caught_up(written.last)
            while worker.invalid_records().get(worker.changelog_topic, 0) < 2 * len(crafted):
                await asyncio.sleep(0.05)
            assert worker.healthy()
            return worker.estimate_table(), worker.tallies(), worker.invalid_records()
        finally:
            await worker.stop()

    table, tally, invalid = asyncio.run(run())
    batch = batch_table(archive, tmp_path)
    assert table.columns == batch.columns and len(table) == len(batch) > 0
    from polars.testing import assert_frame_equal

    assert_frame_equal(table, batch, check_exact=False, rel_tol=1e-9, abs_tol=1e-6)
    from streams.pipeline.archive import validate

    expected = validate(archive)
    for topic in TOPICS:
        assert (tally.accepted[topic], tally.duplicates[topic]) == (expected[topic].accepted, expected[topic].duplicates)
    rejected = sum(tally.rejected.values()) - sum(sum(v.rejected.values()) for v in expected.values())
    assert rejected == 2 * len(hostile)  # every hostile record dead-lettered, with a reason
    assert tally.rejected[(TOPICS[0], "tombstone")] == 2
    assert invalid == {worker_changelog(app_id): 2 * len(crafted)}
    assert registry.get_sample_value("suitcase_worker_healthy") == 1.0


def worker_changelog(app_id: str) -> str:
    return f"{app_id}-partition-state-changelog"


def test_a_failing_task_marks_the_worker_unhealthy_and_stops_it(broker, app_id, tmp_path):
    from streams.kafka.worker import LiveWorker, WorkerSettings

    async def run():
        worker = LiveWorker(WorkerSettings(bootstrap=broker.bootstrap, app_id=app_id, data_dir=tmp_path / app_id))

        async def broken():
            raise RuntimeError("housekeeping broke")

        worker.housekeeping = broken
        await worker.start()
        try:
            with pytest.raises(SystemExit) as stopped:
                await worker.until_failed(asyncio.sleep(120))
            assert stopped.value.code == 70
            assert not worker.healthy()
            assert "housekeeping broke" in str(await worker.wait_failed())
        finally:
            await worker.stop()

    asyncio.run(run())
