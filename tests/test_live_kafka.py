"""The live path on a real embedded Tansu broker: live equals batch, dead letters, a
restart mid-replay, and an event held until its exchange rate arrives."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from streams.commands.cli import main
from streams.pipeline.contract import DECLARATIONS, DEPARTURES, RATES, TOPICS
from streams.kafka.feed import Written, key_of, replay

pytestmark = pytest.mark.broker


@pytest.fixture(scope="module")
def faulty_archive(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("faulty")
    assert main(["simulate", "--out", str(out), "--scale", "0.01", "--weeks", "2", "--faults", "--seed", "3"]) == 0
    return out


def batch_table(events: Path, tmp: Path) -> pl.DataFrame:
    out = tmp / "batch.parquet"
    assert main(["estimate", "--events", str(events), "--out", str(out)]) == 0
    return pl.read_parquet(out)


def assert_same_rows(live: pl.DataFrame, batch: pl.DataFrame) -> None:
    assert live.columns == batch.columns
    assert len(live) == len(batch) > 0
    assert_frame_equal(live, batch, check_exact=False, rel_tol=1e-6, abs_tol=1e-6)


def worker(bootstrap: str, app_id: str, tmp: Path, registry=None, consumer: str = "raw"):
    from streams.kafka.worker import LiveWorker, WorkerSettings

    return LiveWorker(WorkerSettings(
        bootstrap=bootstrap, app_id=app_id, data_dir=tmp / app_id, registry=registry, consumer=consumer,
    ))


@pytest.mark.parametrize("consumer", ["raw"])
def test_up_replay_until_caught_up_equals_the_batch_estimate(faulty_archive, broker, app_id, tmp_path, consumer):
    out = tmp_path / "live.parquet"
    code = main([
        "up", "--broker", broker.url, "--app-id", app_id, "--metrics-port", "0", "--consumer", consumer,
        "--replay", str(faulty_archive), "--until-caught-up", "--estimates-out", str(out),
        "--data-dir", str(tmp_path / "data"),
    ])
    assert code == 0
    assert_same_rows(pl.read_parquet(out), batch_table(faulty_archive, tmp_path))


def test_up_starts_its_own_broker(faulty_archive, tmp_path):
    out = tmp_path / "live.csv"
    code = main([
        "up", "--metrics-port", "0", "--replay", str(faulty_archive), "--until-caught-up",
        "--estimates-out", str(out), "--data-dir", str(tmp_path / "data"),
    ])
    assert code == 0
    assert_same_rows(pl.read_csv(out), pl.read_csv(_csv(batch_table(faulty_archive, tmp_path), tmp_path)))


def _csv(table: pl.DataFrame, tmp: Path) -> Path:
    path = tmp / "batch.csv"
    table.write_csv(path)
    return path


def test_dead_letter_topic_holds_every_malformed_line_with_its_reason(faulty_archive, broker, app_id, tmp_path, capsys):
    assert main(["validate", "--events", str(faulty_archive), "--json"]) == 0
    expected = Counter()
    for topic, tally in json.loads(capsys.readouterr().out).items():
        for reason, n in tally["rejected"].items():
            expected[topic, reason] += n
    assert sum(expected.values()) > 0

    async def run():
        live = worker(broker.bootstrap, app_id, tmp_path)
        await live.start()
        try:
            written = Written()
            await asyncio.to_thread(replay, faulty_archive, broker.bootstrap, None, None, written)
            await live.wait_caught_up(written.last)
            await live.app.producer.flush()
        finally:
            await live.stop()
        return live

    live = asyncio.run(run())
    got = Counter()
    originals = set()
    for message in _read_all(broker.bootstrap, "suitcase.deadletter"):
        headers = {k: v.decode() for k, v in message.headers}
        got[headers["topic"], headers["reason"]] += 1
        originals.add(message.value)
    assert got == expected
    assert {(t, r) for (t, r), n in live.tallies().rejected.items() for _ in range(n)} == set(expected)
    malformed = {raw for topic in TOPICS for raw in (faulty_archive / f"{topic}.ndjson").read_bytes().splitlines()
                 if raw in originals}
    assert malformed == originals  # the value is the original line, byte for byte


def _read_all(bootstrap: str, topic: str):
    from kafka import KafkaConsumer

    from streams.kafka.security import kafka_python_kwargs

    consumer = KafkaConsumer(topic, **kafka_python_kwargs(), bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             consumer_timeout_ms=3000, group_id=None)
    try:
        return list(consumer)
    finally:
        consumer.close()


@pytest.mark.parametrize("consumer", ["raw"])
def test_a_worker_stopped_and_restarted_mid_replay_ends_with_the_same_estimates(faulty_archive, broker, app_id, tmp_path, consumer):
    async def run():
        first = worker(broker.bootstrap, app_id, tmp_path, consumer=consumer)
        await first.start()
        written = Written()
        feeding = asyncio.ensure_future(asyncio.to_thread(replay, faulty_archive, broker.bootstrap, None, None, written))
        while sum(first.tallies().accepted.values()) < 2000:  # part-way through
            await asyncio.sleep(0.05)
        partial = sum(first.tallies().accepted.values())
        await first.stop()
        await feeding
        second = worker(broker.bootstrap, app_id, tmp_path, consumer=consumer)
        await second.start()
        try:
            await second.wait_caught_up(written.last)
            return partial, second.estimate_table(), second.tallies()
        finally:
            await second.stop()

    partial, table, tally = asyncio.run(run())
    assert 0 < partial < sum(tally.accepted.values())
    assert_same_rows(table, batch_table(faulty_archive, tmp_path))
    from streams.pipeline.archive import validate

    expected = validate(faulty_archive)
    got = {t: (tally.accepted[t], tally.duplicates[t]) for t in TOPICS}
    assert got == {t: (expected[t].accepted, expected[t].duplicates) for t in TOPICS}


@pytest.mark.parametrize("consumer", ["raw"])
def test_an_event_that_arrives_before_its_rate_is_held_not_lost(broker, app_id, tmp_path, consumer):
    from kafka import KafkaProducer
    from prometheus_client import CollectorRegistry

    from tests.events import line

    departure = line(DEPARTURES, crossing_id="x-held", event_time="2026-03-14T08:00:00+03:30")
    declaration = line(DECLARATIONS, crossing_id="x-held", event_time="2026-03-14T08:00:00+03:30", items=[
        {"category": "kilim", "quantity": 1, "value": 400.0, "currency": "EUR", "purpose": "resale"}])
    rate = line(RATES, event_id="fx-eur", currency="EUR", units_per_usd=0.8, event_time="2026-03-13T00:00:00+03:30")
    registry = CollectorRegistry()

    def send(topic, raw):
        from streams.kafka.security import kafka_python_kwargs

        producer = KafkaProducer(bootstrap_servers=broker.bootstrap, **kafka_python_kwargs())
        producer.send(topic, key=key_of(topic, raw), value=raw)
        producer.flush()
        producer.close()

    async def until(condition):
        while not condition():
            await asyncio.sleep(0.05)

    async def run():
        live = worker(broker.bootstrap, app_id, tmp_path, registry, consumer)
        await live.start()
        try:
            send(DEPARTURES, departure)
            send(DECLARATIONS, declaration)
            await until(lambda: live.held().get(DECLARATIONS) == 1)
            assert registry.get_sample_value("suitcase_events_held", {"topic": DECLARATIONS}) == 1
            assert registry.get_sample_value("suitcase_events_accepted_total", {"topic": DECLARATIONS}) == 1
            send(RATES, rate)
            await until(lambda: live.held().get(DECLARATIONS) == 0)
            await until(lambda: sum(int(s.census.declarations.sum()) for s in live.summaries.strata.values()) == 1)
            declared = sum(int(s.census.declared_cents.sum()) for s in live.summaries.strata.values())
            assert declared == 50_000  # 400 EUR at 0.8 EUR per USD = 500 USD
            assert registry.get_sample_value("suitcase_events_held", {"topic": DECLARATIONS}) == 0
        finally:
            await live.stop()

    asyncio.run(run())
