"""An independent client against a running worker: confluent-kafka (librdkafka) produces
contract events with every codec and reads the estimates and dead-letter topics; with
librdkafka's default partitioner (CRC32, not murmur2) crossings do not join, and the
unjoined-crossings metric and alert show it. Plus the expiry hook itself, without Kafka."""

from __future__ import annotations

import asyncio
import json
import math
import uuid
from collections import Counter
from pathlib import Path

import pytest

from streams.commands.cli import main
from streams.pipeline.contract import DECLARATIONS, DEPARTURES, EXPORTS, INSPECTIONS, PAYMENTS, RATES, TOPICS
from streams.kafka.feed import archive_order, key_of
from streams.pipeline.archive import lines

CODECS = ("gzip", "snappy", "lz4", "zstd")
DEADLETTER, ESTIMATES = "suitcase.deadletter", "suitcase.estimates"


# --------------------------------------------------------------------------- the hook


def test_pieces_that_never_meet_their_departure_are_counted_when_they_expire():
    from streams.pipeline.fx import RateBook
    from streams.pipeline.partition import WATERMARK_RANK, PartitionState, Record, id_digest
    from tests.events import line

    usd = [{"category": "kilim", "quantity": 1, "value": 10.0, "currency": "USD", "purpose": "resale"}]
    assessed = [{"category": "kilim", "quantity": 1, "assessed_value": 10.0, "currency": "USD"}]

    def piece(topic, crossing, post, at, n):
        extra = {"items": usd} if topic == DECLARATIONS else {"items": assessed, "declared": False} if topic == INSPECTIONS else {}
        return topic, line(topic, event_id=f"{topic}-{n}", crossing_id=crossing, border_post=post, event_time=at, **extra)

    week1, later = "2026-03-03T08:00:00+03:30", "2026-03-25T08:00:00+03:30"  # later: > week end + 1 + 7 days
    records = [
        # x-alone: a declaration and an inspection whose departure went to another partition
        piece(DECLARATIONS, "x-alone", "BAZ", week1, 1), piece(INSPECTIONS, "x-alone", "BAZ", week1, 2),
        # x-met: its departure and declaration are both here
        piece(DEPARTURES, "x-met", "IKA", week1, 3), piece(DECLARATIONS, "x-met", "IKA", week1, 4),
    ] + [  # the watermark is the WATERMARK_RANK-th newest event time: that many later crossings
        piece(t, f"late-{k}", "MEH", later, 5 + 3 * k + i)
        for k in range(WATERMARK_RANK) for i, t in enumerate((DEPARTURES, DECLARATIONS, INSPECTIONS))
    ]
    state = PartitionState("crossings", 0, horizon_days=1)
    for offset, (topic, raw) in enumerate(records):
        state.process([Record(topic=topic, partition=0, offset=offset, timestamp=0.0, value=raw)], RateBook())
    assert id_digest("x-alone") not in state.crossings and id_digest("x-met") not in state.crossings  # both expired
    assert sum(state.tally.accepted.values()) == len(records)
    assert state.tally.unjoined == Counter({(DECLARATIONS, "BAZ"): 1, (INSPECTIONS, "BAZ"): 1})


def test_open_crossings_expire_when_a_backfill_sends_topic_by_topic():
    """Departures of four weeks first (each in its own step), then the declarations, then
    the inspections: the crossing sweep must not wait another day of event time once the
    lane's last topic appears."""
    from streams.pipeline.fx import RateBook
    from streams.pipeline.partition import WATERMARK_RANK, PartitionState, Record, id_digest
    from tests.events import line

    usd = [{"category": "kilim", "quantity": 1, "value": 10.0, "currency": "USD", "purpose": "resale"}]
    days = [f"2026-03-{d:02d}T08:00:00+03:30" for d in range(2, 27)]
    records = [(DEPARTURES, line(DEPARTURES, event_id=f"p{i}", crossing_id=f"x{i}", event_time=at))
               for i, at in enumerate(days)]
    records.append((DECLARATIONS, line(DECLARATIONS, event_id="d-alone", crossing_id="x-alone",
                                       border_post="BAZ", items=usd, event_time=days[0])))
    # Enough whole crossings on the last day for every topic's watermark (the WATERMARK_RANK-th
    # newest event time) to reach it; their departures come with the other departures.
    records[len(days):len(days)] = [(DEPARTURES, line(DEPARTURES, event_id=f"p-last-{k}", crossing_id=f"y{k}",
                                                      event_time=days[-1])) for k in range(WATERMARK_RANK)]
    for k in range(WATERMARK_RANK):
        records.append((DECLARATIONS, line(DECLARATIONS, event_id=f"d-last-{k}", crossing_id=f"y{k}",
                                           items=usd, event_time=days[-1])))
    for k in range(WATERMARK_RANK):
        records.append((INSPECTIONS, line(INSPECTIONS, event_id=f"i-last-{k}", crossing_id=f"y{k}",
                                          declared=True, event_time=days[-1])))
    state = PartitionState("crossings", 0, horizon_days=1)
    for offset, (topic, raw) in enumerate(records):
        state.process([Record(topic=topic, partition=0, offset=offset, timestamp=0.0, value=raw)], RateBook())
    assert id_digest("x-alone") not in state.crossings
    assert state.tally.unjoined == Counter({(DECLARATIONS, "BAZ"): 1})


# --------------------------------------------------------------------------- on the broker


@pytest.fixture(scope="module")
def faulty_archive(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("interop-faulty")
    assert main(["simulate", "--out", str(out), "--scale", "0.01", "--weeks", "2", "--faults", "--seed", "5"]) == 0
    return out


def _produce(archive: Path, bootstrap: str, partitioner: dict[str, str], codecs=CODECS) -> dict[tuple[str, int], int]:
    """Send the archive as replay does (rates first, topic by topic), with confluent-kafka:
    each topic in len(codecs) consecutive chunks, each chunk by a producer of the next
    codec (flushed before the next, so every partition keeps the file's order).
    ``partitioner`` maps topic -> librdkafka partitioner (default: librdkafka's own)."""
    from confluent_kafka import Producer

    written: dict[tuple[str, int], int] = {}
    errors = []

    def delivered(err, msg):
        if err is not None:
            errors.append(err)
            return
        key = (msg.topic(), msg.partition())
        written[key] = max(written.get(key, -1), msg.offset())

    for topic, path in archive_order(archive):
        records = list(lines(path))
        size = -(-len(records) // len(codecs))
        for i, codec in enumerate(codecs):
            config = {"bootstrap.servers": bootstrap, "compression.type": codec, "linger.ms": 20,
                      "client.id": f"interop-{codec}"}
            if topic in partitioner:
                config["partitioner"] = partitioner[topic]
            producer = Producer(config)
            for raw in records[i * size:(i + 1) * size]:
                producer.produce(topic, value=raw, key=key_of(topic, raw), on_delivery=delivered)
                producer.poll(0)
            assert producer.flush(60) == 0
    assert errors == []
    return written


def _consume_all(bootstrap: str, topic: str, idle_s: float = 5.0) -> list:
    """Every record of ``topic`` from the start, read with confluent-kafka."""
    from confluent_kafka import Consumer

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"interop-{uuid.uuid4().hex[:8]}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([topic])
    out, idle = [], 0.0
    try:
        while idle < idle_s:
            msg = consumer.poll(0.5)
            if msg is None:
                idle += 0.5 if out else 0.1  # wait longer for the assignment than between records
                continue
            assert msg.error() is None, msg.error()
            out.append(msg)
            idle = 0.0
    finally:
        consumer.close()
    return out


def _worker(bootstrap: str, app_id: str, tmp: Path, registry=None, **settings):
    from streams.kafka.worker import LiveWorker, WorkerSettings

    return LiveWorker(WorkerSettings(bootstrap=bootstrap, app_id=app_id, data_dir=tmp / app_id,
                                     registry=registry, consumer="raw", **settings))


@pytest.mark.broker
def test_confluent_kafka_with_every_codec_and_murmur2_gives_the_batch_estimate(faulty_archive, broker, app_id, tmp_path, capsys):
    from tests.test_live_kafka import assert_same_rows, batch_table

    murmur2 = {topic: "murmur2_random" for topic in TOPICS}

    async def run():
        live = _worker(broker.bootstrap, app_id, tmp_path)
        await live.start()
        try:
            written = await asyncio.to_thread(_produce, faulty_archive, broker.bootstrap, murmur2)
            await live.wait_caught_up(written)
            await live.publish(force=True)
            await live.app.producer.flush()
            return live.estimate_table(), live.tallies()
        finally:
            await live.stop()

    table, tally = asyncio.run(run())
    batch = batch_table(faulty_archive, tmp_path)
    assert_same_rows(table, batch)
    assert sum(tally.unjoined.values()) == 0

    # The estimates topic, read by librdkafka: the last row per key is the batch row.
    latest = {}
    for msg in _consume_all(broker.bootstrap, ESTIMATES):
        latest[msg.key().decode()] = json.loads(msg.value())
    rows = {f"{r['week']}|{r['domain']}|{r['key']}": r for r in batch.iter_rows(named=True)}
    assert set(latest) == set(rows)
    for key, row in rows.items():
        for column, value in row.items():
            got = latest[key][column]
            if isinstance(value, float) and not math.isnan(value):
                assert got == pytest.approx(value, rel=1e-6, abs=1e-6), (key, column)
            elif isinstance(value, float) or value is None:
                assert got is None, (key, column)
            else:
                assert got == value, (key, column)

    # The dead-letter topic holds every refused line with its reason, as validate counts them.
    capsys.readouterr()
    assert main(["validate", "--events", str(faulty_archive), "--json"]) == 0
    expected = Counter()
    for topic, counts in json.loads(capsys.readouterr().out).items():
        for reason, n in counts["rejected"].items():
            expected[topic, reason] += n
    got = Counter()
    for msg in _consume_all(broker.bootstrap, DEADLETTER):
        headers = {k: v.decode() for k, v in msg.headers()}
        got[headers["topic"], headers["reason"]] += 1
    assert sum(expected.values()) > 0 and got == expected


@pytest.mark.broker
def test_the_changelog_tombstones_obsolete_steps_and_its_compaction_gives_the_same_estimates(
        faulty_archive, broker, app_id, tmp_path, monkeypatch):
    """The state changelog, read by librdkafka after a run of many small steps: obsolete
    step records are tombstoned, and what compaction would keep (the newest record per
    key, tombstoned keys gone) gives a new worker the batch estimate."""
    from types import SimpleNamespace

    import streams.kafka.worker as worker_module
    from tests.test_live_kafka import assert_same_rows, batch_table

    # many steps and snapshots (the defaults make them only in long runs)
    monkeypatch.setattr(worker_module, "COMPACT_EVERY", 4)
    monkeypatch.setattr(worker_module, "BATCH_MAX", 100)
    monkeypatch.setattr(worker_module, "BATCH_MAX_CATCHING_UP", 100)

    async def run():
        live = _worker(broker.bootstrap, app_id, tmp_path)
        await live.start()
        try:
            written = await asyncio.to_thread(_produce, faulty_archive, broker.bootstrap,
                                              {t: "murmur2_random" for t in TOPICS})
            await live.wait_caught_up(written)
            await live.steps.sync()  # the last snapshots read back, their tombstones sent
            await live.app.producer.flush()
            return live.changelog_topic, live.estimate_table(), live.tombstoned, written
        finally:
            await live.stop()

    topic, table, tombstoned, written = asyncio.run(run())
    batch = batch_table(faulty_archive, tmp_path)
    assert_same_rows(table, batch)
    log = _consume_all(broker.bootstrap, topic)
    step_tombstones = [m for m in log if m.value() is None and b"|base|" not in m.key()]
    assert tombstoned > 0 and len(step_tombstones) == tombstoned
    newest = {}
    for m in sorted(log, key=lambda m: (m.partition(), m.offset())):
        newest[m.partition(), m.key()] = m
    kept = sorted((m for m in newest.values() if m.value() is not None), key=lambda m: (m.partition(), m.offset()))
    steps = [m for m in log if m.value() is not None and b"|base|" not in m.key()]
    assert len([m for m in kept if b"|base|" not in m.key()]) < len(steps) / 2
    fresh = _worker("127.0.0.1:9", app_id + "-fresh", tmp_path)
    for m in kept:
        fresh._add_segment(SimpleNamespace(topic=topic, key=m.key(), value=m.value()))
    assert_same_rows(fresh.estimate_table(), batch)
    assert fresh.observed_through(written)  # the newest step of every partition was kept


@pytest.mark.broker
@pytest.mark.servers
def test_librdkafkas_default_partitioner_leaves_crossings_unjoined_and_the_alert_fires(broker, app_id, tmp_path):
    from prometheus_client import CollectorRegistry, start_http_server

    from deploy.mixin import FAST, alerts, render
    from tests.servers import eventually, prometheus

    archive = tmp_path / "archive"
    assert main(["simulate", "--out", str(archive), "--scale", "0.01", "--weeks", "4", "--seed", "11"]) == 0
    # Departures (and the rest) as a Java client or kafka-python places them; declarations
    # and inspections from a librdkafka producer left at its default partitioner.
    partitioner = {t: "murmur2_random" for t in (DEPARTURES, EXPORTS, PAYMENTS, RATES)}
    registry = CollectorRegistry()
    server, _ = start_http_server(0, addr="127.0.0.1", registry=registry)
    port = server.server_port
    # The fast profile (2m window, for 10s), firing from the first unjoined piece: a small
    # world leaves only a few per post, and the default limit (5) is pinned by promtool.
    profile = FAST.replace(crossings_unjoined_min=0)
    expr = next(r.expr for g in alerts.groups(profile) for r in g.rules if r.alert == "SuitcaseCrossingsUnjoined")
    files = render(profile, "fast")
    config = f"""
global: {{scrape_interval: 1s, evaluation_interval: 1s}}
rule_files: [suitcase-alerts.yml]
scrape_configs:
  - job_name: suitcase
    static_configs: [{{targets: ["127.0.0.1:{port}"]}}]
"""
    try:
        with prometheus(tmp_path / "prometheus", config,
                        {"suitcase-alerts.yml": files["prometheus/rules/suitcase-alerts.yml"]}) as prom:

            async def run():
                live = _worker(broker.bootstrap, app_id, tmp_path, registry, horizon_days=1)
                await live.start()
                try:
                    # Prometheus has seen every (topic, post) series at 0 before anything expires.
                    await asyncio.to_thread(eventually, lambda: len(prom.query(
                        'suitcase_crossings_unjoined_total{job="suitcase"} == 0')) == 32)
                    written = await asyncio.to_thread(_produce, archive, broker.bootstrap, partitioner)
                    await live.wait_caught_up(written)
                    unjoined = live.tallies().unjoined
                    assert {t for t, _ in unjoined} == {DECLARATIONS, INSPECTIONS}
                    scraped = {(t, p): registry.get_sample_value("suitcase_crossings_unjoined_total",
                                                                 {"topic": t, "border_post": p}) for t, p in unjoined}
                    assert scraped == dict(unjoined)
                    # The alert's own expression, evaluated by Prometheus on the scraped series,
                    # and the alert itself.
                    firing = await asyncio.to_thread(eventually, lambda: prom.query(expr))
                    alerts_now = await asyncio.to_thread(eventually, lambda: [
                        a for a in prom.alerts()
                        if a["labels"]["alertname"] == "SuitcaseCrossingsUnjoined" and a["state"] == "firing"])
                    return unjoined, firing, alerts_now
                finally:
                    await live.stop()

            unjoined, firing, alerts_now = asyncio.run(run())
    finally:
        server.shutdown()
    assert sum(unjoined.values()) > 0
    assert {(s["metric"]["topic"], s["metric"]["border_post"]) for s in firing} <= set(unjoined)
    assert {(a["labels"]["topic"], a["labels"]["border_post"]) for a in alerts_now} <= set(unjoined)


def test_the_workers_kafka_client_has_every_codec():
    """aiokafka reads snappy, lz4 and zstd batches only with cramjam installed (a runtime
    dependency); without it the consumer raises UnsupportedCodecError on the first batch."""
    from aiokafka import codec

    assert codec.has_gzip() and codec.has_snappy() and codec.has_lz4() and codec.has_zstd()
