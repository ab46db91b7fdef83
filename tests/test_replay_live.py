"""Backfills on a real embedded Tansu broker: a shuffled multi-week archive replayed into
``suitcase up`` gives exactly the batch estimate and dead-letters exactly what
``validate`` rejects; ``suitcase replay`` keys, partitions and stamps records as Kafka
clients do; events too late for a worker make ``up --until-caught-up`` exit 3."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import polars as pl
import pytest
from kafka.partitioner.default import murmur2

from streams.commands.cli import main
from streams.pipeline.contract import TOPICS
from streams.kafka.feed import key_of
from tests.test_live_kafka import _read_all, assert_same_rows, batch_table
from tests.test_replay import shuffle_archive

pytestmark = pytest.mark.broker


@pytest.fixture(scope="module")
def shuffled_archive(tmp_path_factory) -> Path:
    plain = tmp_path_factory.mktemp("weeks12")
    assert main(["simulate", "--out", str(plain), "--scale", "0.01", "--weeks", "12", "--faults", "--seed", "7"]) == 0
    return shuffle_archive(plain, tmp_path_factory.mktemp("weeks12-shuffled"), seed=7)


def _rejections(events: Path, capsys) -> Counter:
    assert main(["validate", "--events", str(events), "--json"]) == 0
    expected = Counter()
    for topic, tally in json.loads(capsys.readouterr().out).items():
        for reason, n in tally["rejected"].items():
            expected[topic, reason] += n
    return expected


def test_up_replay_of_a_shuffled_12_week_archive_equals_the_batch_estimate(shuffled_archive, broker, app_id, tmp_path, capsys):
    expected_dead = _rejections(shuffled_archive, capsys)
    assert sum(expected_dead.values()) > 0
    out = tmp_path / "live.parquet"
    code = main([
        "up", "--broker", broker.url, "--app-id", app_id, "--metrics-port", "0", "--data-dir", str(tmp_path / "data"),
        "--replay", str(shuffled_archive), "--until-caught-up", "--estimates-out", str(out),
    ])
    printed = capsys.readouterr().out
    assert code == 0, printed
    live = pl.read_parquet(out)
    batch = batch_table(shuffled_archive, tmp_path)
    assert live["week"].n_unique() >= 12
    assert_same_rows(live, batch)
    account = [row for row in printed.splitlines() if row.startswith("account:")]
    assert len(account) == 1 and account[0].endswith("; too late 0")
    assert f"rejected {sum(expected_dead.values()):,} (" in account[0]
    got = Counter()
    for message in _read_all(broker.bootstrap, "suitcase.deadletter"):
        headers = {k: v.decode() for k, v in message.headers}
        got[headers["topic"], headers["reason"]] += 1
    assert got == expected_dead


def test_replay_keys_partitions_and_stamps_records_as_kafka_clients_do(broker, tmp_path, capsys):
    archive = tmp_path / "archive"
    assert main(["simulate", "--out", str(archive), "--scale", "0.003", "--weeks", "1", "--faults", "--seed", "8"]) == 0
    capsys.readouterr()
    assert main(["replay", "--events", str(archive), "--broker", broker.url]) == 0
    printed = capsys.readouterr().out.strip().splitlines()
    lines = {t: (archive / f"{t}.ndjson").read_bytes().count(b"\n") for t in TOPICS}
    assert len(printed) == 1
    for topic, n in lines.items():
        assert f"{topic} {n:,}" in printed[0]
    from streams.kafka.feed import event_micros

    for topic in TOPICS:
        records = _read_all(broker.bootstrap, topic)
        assert len(records) == lines[topic]
        sent = Counter(r.value for r in records)
        assert sent == Counter((archive / f"{topic}.ndjson").read_bytes().splitlines())
        stamps = []
        for r in records:
            key = key_of(topic, r.value)
            assert r.key == key
            if key is not None:
                assert r.partition == (murmur2(key) & 0x7FFFFFFF) % 4
            try:
                stamps.append((r.timestamp, json.loads(r.value)["event_time"]))
            except (ValueError, KeyError, TypeError):
                pass
        micros = event_micros([t for _, t in stamps])
        assert [s for s, _ in stamps] == [m // 1000 if m >= 0 else s for (s, _), m in zip(stamps, micros.tolist())]


def test_events_too_late_for_the_worker_make_up_exit_3_unless_allowed(broker, app_id, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SUITCASE_PSEUDONYM_KEY", "test-key")  # no key-made warning line on stderr
    later, older = tmp_path / "later", tmp_path / "older"
    assert main(["simulate", "--out", str(later), "--scale", "0.003", "--weeks", "1", "--start", "2026-06-01", "--seed", "9"]) == 0
    assert main(["simulate", "--out", str(older), "--scale", "0.003", "--weeks", "1", "--start", "2026-03-02", "--seed", "9"]) == 0
    assert main(["replay", "--events", str(later), "--broker", broker.url]) == 0  # a live topic runs ahead
    capsys.readouterr()
    argv = ["up", "--broker", broker.url, "--metrics-port", "0", "--replay", str(older), "--until-caught-up"]
    assert main([*argv, "--app-id", app_id, "--data-dir", str(tmp_path / "a")]) == 3
    captured = capsys.readouterr()
    account = [row for row in captured.out.splitlines() if row.startswith("account:")]
    late = int(account[0].rsplit("too late ", 1)[1].replace(",", ""))
    assert late > 0
    assert "too late" in captured.err and "--allow-late" in captured.err and captured.err.count("\n") == 1
    assert main([*argv, "--app-id", app_id + "-b", "--data-dir", str(tmp_path / "b"), "--allow-late"]) == 0


def test_allow_late_needs_until_caught_up(capsys):
    assert main(["up", "--allow-late"]) == 2
    assert "--allow-late needs --until-caught-up" in capsys.readouterr().err
