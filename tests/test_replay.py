"""The replayer: event-time order through an external sort, Kafka's murmur2 partitions,
event times read in bulk as msgspec reads them, and the temporary files always removed."""

from __future__ import annotations

import datetime as dt
import random
from collections import Counter
from pathlib import Path

import msgspec
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kafka.partitioner.default import murmur2

from streams.pipeline.contract import DEPARTURES, PAYMENTS, RATES, TOPICS
from streams.kafka.feed import (
    _UNKNOWN,
    event_micros,
    event_order,
    key_of,
    murmur2_partition_hash,
    replay_order,
)
from tests.events import line

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


def shuffle_archive(source: Path, target: Path, seed: int) -> Path:
    """Every topic file of ``source`` with its lines in a seeded random order."""
    rng = random.Random(seed)
    target.mkdir(parents=True, exist_ok=True)
    for path in sorted(source.glob("*.ndjson")):
        rows = path.read_bytes().split(b"\n")
        if rows and rows[-1] == b"":
            rows.pop()
        rng.shuffle(rows)
        (target / path.name).write_bytes(b"\n".join(rows) + b"\n")
    return target


@given(st.lists(st.one_of(st.none(), st.binary(max_size=90)), max_size=60))
@settings(max_examples=200, deadline=None)
def test_partition_hashes_are_kafkas_murmur2(keys):
    expected = [-1 if k is None else murmur2(k) & 0x7FFFFFFF for k in keys]
    assert murmur2_partition_hash(keys).tolist() == expected


def test_a_crossings_three_topics_share_a_partition():
    keys = [key_of(t, line(t, crossing_id="X7fd17b807cfa3656")) for t in TOPICS[:3]]
    hashes = murmur2_partition_hash(keys)
    assert len(set(hashes.tolist())) == 1 and hashes[0] == murmur2(b"X7fd17b807cfa3656") & 0x7FFFFFFF


def _msgspec_micros(text):
    try:
        at = msgspec.convert(text, dt.datetime)
    except Exception:  # noqa: BLE001
        return _UNKNOWN
    if at.tzinfo is None:
        at = at.replace(tzinfo=dt.timezone.utc)
    return (at - EPOCH) // dt.timedelta(microseconds=1)


_OFFSETS = st.integers(-14 * 60, 14 * 60).map(lambda m: dt.timezone(dt.timedelta(minutes=m)))


@given(st.lists(st.one_of(
    st.datetimes(timezones=_OFFSETS).map(lambda d: d.isoformat(timespec="seconds")),
    st.datetimes(timezones=_OFFSETS).map(lambda d: d.isoformat()),
    st.datetimes(timezones=st.just(dt.timezone.utc)).map(lambda d: d.strftime("%Y-%m-%dT%H:%M:%SZ")),
    st.text(alphabet="0123456789-T:+Z.", min_size=18, max_size=27),
    st.text(max_size=30),
    st.none(), st.integers(), st.floats(),
), max_size=40))
@settings(max_examples=200, deadline=None)
def test_event_times_are_read_as_msgspec_reads_them(times):
    assert event_micros(times).tolist() == [_msgspec_micros(t) if type(t) is str else _UNKNOWN for t in times]


def _write(folder: Path, topic: str, rows: list[bytes]) -> None:
    (folder / f"{topic}.ndjson").write_bytes(b"\n".join(rows) + b"\n")


def test_the_external_sort_gives_every_line_once_in_event_time_order(tmp_path):
    rng = random.Random(5)
    archive = tmp_path / "archive"
    archive.mkdir()
    base = dt.datetime(2026, 3, 2, tzinfo=dt.timezone(dt.timedelta(hours=3, minutes=30)))
    rows: dict[str, list[bytes]] = {}
    for topic in (DEPARTURES, PAYMENTS, RATES):
        rows[topic] = [
            line(topic, event_id=f"{topic}-{i}", event_time=(base + dt.timedelta(minutes=rng.randrange(20_000))).isoformat())
            for i in range(700)
        ]
        rows[topic] += [b"", b"{not json", b'{"event_time": 5}', line(topic, event_id="dup")]  # keep their place
        rows[topic].append(rows[topic][3])  # a duplicate with the same time: file order
        rng.shuffle(rows[topic])
        _write(archive, topic, rows[topic])
    spill = tmp_path / "spill"
    spill.mkdir()
    streams = replay_order(archive, spill, run_lines=150)  # several runs on disk
    got = []
    for number, stream in enumerate(streams):
        for chunk in stream:
            if number == 1:
                assert any(spill.iterdir())  # the runs were spilled
            got.append([(TOPICS[t], m, v) for t, m, v in zip(chunk.topics.tolist(), chunk.micros.tolist(), chunk.values)])
    flat = [r for part in got for r in part]
    rates = [r for r in flat if r[0] == RATES]
    assert flat[:len(rates)] == rates  # fx.rates first, whole
    for part in (flat[:len(rates)], flat[len(rates):]):
        micros = [m for _, m, _ in part]
        assert micros == sorted(micros)
    assert Counter((t, v) for t, _, v in flat) == Counter((t, v) for t in rows for v in rows[t])
    # ties and unreadable lines keep file order within their topic
    for topic in rows:
        file_order = {}
        for i, v in enumerate(rows[topic]):
            file_order.setdefault(v, i)
        sent = [v for t, _, v in flat if t == topic]
        by_time = {}
        for t, m, v in flat:
            if t == topic:
                by_time.setdefault(m, []).append(file_order[v])
        assert all(a == sorted(a) for a in by_time.values()), topic
        assert len(sent) == len(rows[topic])


def test_an_unreadable_line_takes_the_time_of_the_line_before_it(tmp_path):
    rows = [line(DEPARTURES, event_id=f"d{i}", event_time=f"2026-03-0{i}T10:00:00+03:30") for i in (5, 2, 7)]
    _write(tmp_path, DEPARTURES, [rows[0], rows[1], b"{broken", rows[2]])
    spill = tmp_path / "spill"
    spill.mkdir()
    out = [v for c in event_order([(DEPARTURES, tmp_path / f"{DEPARTURES}.ndjson")], spill) for v in c.values]
    assert out == [rows[1], b"{broken", rows[0], rows[2]]


def test_an_archive_of_rates_alone_replays_them_all(tmp_path):
    """bench.latency sends the rates first, from an archive of fx.rates alone: the
    stream of the other topics then has no file at all (was ZeroDivisionError)."""
    rows = [line(RATES, event_id=f"fx-{i}", event_time=f"2026-03-0{i}T00:00:00+03:30") for i in (3, 1, 2)]
    _write(tmp_path, RATES, rows)
    spill = tmp_path / "spill"
    spill.mkdir()
    rates, others = replay_order(tmp_path, spill)
    assert [v for c in others for v in c.values] == []
    assert [v for c in rates for v in c.values] == [rows[1], rows[2], rows[0]]


def test_a_line_over_the_limit_is_not_replayed_and_the_rest_is(tmp_path):
    rows = [line(DEPARTURES, event_id=f"d{i}", event_time=f"2026-03-0{i}T10:00:00+03:30") for i in (5, 2)]
    huge = b'{"event_id": "x", "pad": "' + b"a" * (2 << 20) + b'"}'
    _write(tmp_path, DEPARTURES, [rows[0], huge, rows[1]])
    spill = tmp_path / "spill"
    spill.mkdir()
    out = [v for c in event_order([(DEPARTURES, tmp_path / f"{DEPARTURES}.ndjson")], spill) for v in c.values]
    assert out == [rows[1], rows[0]]  # no Kafka with default limits would carry it


def test_the_spill_directory_is_removed_even_when_the_replay_fails(tmp_path, faulty_small):
    from streams.kafka.broker import free_port
    from streams.kafka.feed import replay_counts

    spill_root = tmp_path / "tmp"
    spill_root.mkdir()
    with pytest.raises(Exception):  # noqa: B017 - nobody listens there
        replay_counts(faulty_small, f"127.0.0.1:{free_port()}", tmp_dir=spill_root)
    assert list(spill_root.iterdir()) == []


@pytest.fixture(scope="module")
def faulty_small(tmp_path_factory) -> Path:
    from streams.commands.cli import main

    out = tmp_path_factory.mktemp("faulty-small")
    assert main(["simulate", "--out", str(out), "--scale", "0.005", "--weeks", "1", "--faults", "--seed", "4"]) == 0
    return out


def test_merge_windows_smaller_than_a_run_of_equal_times_still_progress(tmp_path):
    rows = [line(DEPARTURES, event_id=f"d{i}", event_time="2026-03-05T10:00:00+03:30") for i in range(3000)]
    rows += [line(DEPARTURES, event_id=f"e{i}", event_time="2026-03-04T10:00:00+03:30") for i in range(10)]
    _write(tmp_path, DEPARTURES, rows)
    spill = tmp_path / "spill"
    spill.mkdir()
    out = [v for c in event_order([(DEPARTURES, tmp_path / f"{DEPARTURES}.ndjson")], spill, run_lines=1000,
                                  merge_records=1000) for v in c.values]
    assert out == rows[3000:] + rows[:3000]


@pytest.mark.parametrize("argv, words", [
    (["--record-time", "arrival"], "--record-time must be"),
    (["--tmp-dir", "/nonexistent/spill"], "is not a directory"),
])
def test_bad_replay_flags_are_one_line_and_exit_2(argv, words, faulty_small, capsys):
    from streams.commands.cli import main

    assert main(["replay", "--events", str(faulty_small), "--broker", "kafka://127.0.0.1:1", *argv]) == 2
    err = capsys.readouterr().err
    assert words in err and err.count("\n") == 1


@given(st.lists(st.tuples(
    st.integers(0, 253402300799999),
    st.one_of(st.none(), st.binary(max_size=200)),
    st.binary(max_size=400),
), min_size=1, max_size=50), st.sampled_from([10, 200, 2_000, 1 << 20]))
@settings(max_examples=200, deadline=None)
def test_a_record_batch_is_byte_for_byte_aiokafkas(records, limit):
    """The replay's batches, built from arrays, equal what aiokafka's builder makes of the
    same records one by one, and hold as many as it takes below the limit."""
    from aiokafka.record._crecords import DefaultRecordBatchBuilder

    from streams.kafka.feed import record_batch

    builder = DefaultRecordBatchBuilder(2, 0, is_transactional=0, producer_id=-1, producer_epoch=-1,
                                        base_sequence=0, batch_size=limit)
    taken = 0
    for offset, (stamp, key, value) in enumerate(records):
        if builder.append(offset, stamp, key, value, []) is None:
            break
        taken += 1
    stamps, keys, values = (list(x) for x in zip(*records))
    batch, count = record_batch(np.array(stamps), keys, values, limit)
    assert count == taken
    assert bytes(batch) == bytes(builder.build())


@pytest.mark.parametrize("run_lines", [None, 150])
def test_an_archive_without_rates_is_ordered_in_memory_and_on_disk(tmp_path, run_lines):
    """A stream with no file at all (here: no fx.rates) is an empty run list, not a failure."""
    archive = tmp_path / "archive"
    archive.mkdir()
    rows = [line(DEPARTURES, event_id=f"d-{i}") for i in range(200)]
    _write(archive, DEPARTURES, rows)
    spill = tmp_path / "spill"
    spill.mkdir()
    sent = [v for stream in replay_order(archive, spill, run_lines=run_lines) for chunk in stream for v in chunk.values]
    assert Counter(sent) == Counter(rows)


@given(st.lists(st.tuples(
    st.integers(0, 253402300799999),
    st.one_of(st.none(), st.binary(max_size=60)),
    st.binary(max_size=300),
), min_size=1, max_size=40), st.data())
@settings(max_examples=150, deadline=None)
def test_a_batch_from_lines_where_they_were_read_is_the_same_batch(records, data):
    """The replay builds a batch from keys in several buffers and values sliced from the
    blocks they were read in; the bytes are record_batch's (so aiokafka's)."""
    from streams.kafka.feed import _batch_bytes, _batch_fit, _slices, record_batch

    stamps, keys, values = (list(x) for x in zip(*records))
    want, count = record_batch(np.array(stamps), keys, values, 1 << 20)
    klen = np.array([-1 if k is None else len(k) for k in keys], dtype=np.int32)
    vlen = np.array([len(v) for v in values], dtype=np.int32)
    assert _batch_fit(np.array(stamps), klen, vlen, 1 << 20) == count == len(records)
    cuts = sorted(set(data.draw(st.lists(st.integers(0, len(records)), max_size=4))) | {0, len(records)})
    pieces = []
    for a, b in zip(cuts[:-1], cuts[1:]):  # each piece of keys in a buffer of its own, after junk
        junk = data.draw(st.binary(max_size=5))
        kpos = np.maximum(klen[a:b], 0).astype(np.int64)
        buf = np.frombuffer(junk + b"".join(k for k in keys[a:b] if k), dtype=np.uint8)
        pieces.append((buf, np.cumsum(kpos) - kpos + len(junk)))
    blocks = [b"<" + v + b">" for v in values]  # each value in a block of its own
    got_values = _slices(blocks, np.arange(len(values)), np.ones(len(values), dtype=np.int64), vlen.astype(np.int64))
    assert got_values == values
    got = _batch_bytes(np.array(stamps), klen, vlen, pieces, got_values)
    assert bytes(got) == bytes(want)


def test_produce_requests_are_encoded_as_aiokafka_encodes_them():
    """Every ProduceRequest version, encoded with one copy of its batches, gives the
    bytes aiokafka's own encoding gives."""
    from aiokafka.protocol.produce import ProduceRequest

    from streams.kafka.feed import flat_request_bytes

    topics = [("a.topic", [(0, b"\x00" * 70), (3, bytearray(b"batch"))]), ("b", [(1, b"")]), ("c", [])]
    for request_class in ProduceRequest._CLASSES:
        args = (-1, 120_000, topics) if request_class.API_VERSION < 3 else (None, 1, 30_000, topics)
        struct = request_class(*args)
        assert flat_request_bytes(struct) == struct.encode(), request_class.API_VERSION


@pytest.mark.parametrize("run_lines", [None, 150])
def test_the_batches_hold_each_partitions_records_in_replay_order(tmp_path, monkeypatch, run_lines):
    """What the builder hands aiokafka, read back with aiokafka's batch reader: per
    partition, the records of the replay order, keyed and stamped, none lost (small
    batches, so records wait across chunks and runs read back from disk)."""
    from aiokafka.record.default_records import DefaultRecordBatch

    import streams.kafka.feed as feed

    rng = random.Random(8)
    archive = tmp_path / "archive"
    archive.mkdir()
    base = dt.datetime(2026, 3, 2, tzinfo=dt.timezone.utc)
    for topic in (DEPARTURES, PAYMENTS, RATES):
        rows = [line(topic, event_id=f"{topic}-{i}", event_time=(base + dt.timedelta(minutes=rng.randrange(9_000))).isoformat())
                for i in range(600)]
        rows += [b"", b"{not json", b'{"event_time": 5}']
        rng.shuffle(rows)
        _write(archive, topic, rows)
    monkeypatch.setattr(feed, "BATCH_BYTES", 3_000)
    monkeypatch.setattr(feed, "CHUNK_RECORDS", 97)

    def expected(spill):
        want: dict = {}
        for stream in replay_order(archive, spill, run_lines=run_lines):
            for chunk in stream:
                for t, h, m, k, v in zip(chunk.topics.tolist(), chunk.hashes.tolist(), chunk.micros.tolist(),
                                         chunk.keys, chunk.values):
                    if h >= 0:  # keyless records go to a random partition
                        want.setdefault((TOPICS[t], h % 4), []).append((k, v, m // 1000))
        return want

    class Batch:
        def close(self):
            pass

    class Out:
        items: list = []

        def put(self, item):
            self.items.append(item)

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    out, sent = Out(), Counter()
    feed._build(replay_order(archive, tmp_path / "a", run_lines=run_lines), [4] * len(TOPICS), Batch, out, None,
                sent, None, "event")
    got: dict = {}
    for item in out.items:
        if item is feed._FLUSH:
            continue
        for topic, partition, batch, count in item:
            records = list(DefaultRecordBatch(bytes(batch._buffer)))
            assert len(records) == count and DefaultRecordBatch(bytes(batch._buffer)).validate_crc()
            got.setdefault((topic, partition), []).extend((r.key, r.value, r.timestamp) for r in records)
    want = expected(tmp_path / "b")
    assert sum(sent.values()) == sum(len(v) for v in got.values()) == 3 * 603
    keyed = {p: [r for r in v if r[0] is not None] for p, v in got.items()}
    assert {p: v for p, v in keyed.items() if v} == want
    assert sum(r[0] is None for v in got.values() for r in v) == 3 * 3  # the keyless lines too
