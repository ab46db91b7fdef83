"""The live path's partition state without Kafka: same observations as the batch reading,
whatever the batching, partitioning, restarts and compaction."""

from __future__ import annotations

import datetime as dt
import json
import random
import zlib
from collections import Counter
from pathlib import Path

import pytest

from streams.pipeline.archive import lines, observe, validate
from streams.pipeline.contract import DEPARTURES, INSPECTIONS, RATES, TOPIC_KEYS, TOPICS, decode
from streams.pipeline.fx import RateBook
from streams.pipeline.encoding import decode_segment, encode_segment
from streams.pipeline.partition import LANE_OF, PartitionState, Record, Summaries, base_key, encode_parts, segment_key


def put(table: dict, segment, max_bytes: int = 512 * 1024) -> dict:
    """Write a segment (a step or a snapshot) into a table as the worker does."""
    key = base_key if segment.base else segment_key
    for k, raw in enumerate(encode_parts(segment, max_bytes)):
        table[key(segment.lane, segment.partition, segment.seq, k)] = raw
    return table


def tiny_archive(out: Path, seed: int = 7, travellers: int = 400) -> Path:
    """A small archive with duplicates, out-of-order events and malformed lines."""
    rng = random.Random(seed)
    posts = ["IKA", "MEH", "BAZ", "BND"]
    rows: dict[str, list[str]] = {t: [] for t in TOPICS}
    for day in range(10):
        rows[RATES].append(json.dumps({
            "event_id": f"fx-{day}", "event_time": f"2026-03-{2 + day:02d}T00:00:00+03:30",
            "schema_version": 1, "currency": "IRR", "units_per_usd": 600000 + 1000 * day}))
    for i in range(travellers):
        day = 2 + i % 10
        t = f"2026-03-{day:02d}T{8 + i % 12:02d}:15:00+03:30"
        cid = f"x-{i}"
        post = posts[i % 4]
        rows[DEPARTURES].append(json.dumps({
            "event_id": f"dep-{i}", "event_time": t, "schema_version": 1, "crossing_id": cid,
            "traveller_id": f"t-{i % 50}", "border_post": post, "nationality": "IQ",
            "resident": bool(i % 3 == 0), "destination_country": rng.choice(["IQ", "AE", "TR", "DE"])}))
        declared = rng.random() < 0.4
        if declared:
            rows["travellers.declarations"].append(json.dumps({
                "event_id": f"dec-{i}", "event_time": t, "schema_version": 1, "crossing_id": cid,
                "traveller_id": f"t-{i % 50}", "border_post": post, "destination_country": "IQ",
                "items": [{"category": "carpet", "quantity": 1, "value": rng.randint(1, 9) * 1e7,
                           "currency": "IRR", "purpose": "resale"}]}))
        if rng.random() < 0.5:
            rows[INSPECTIONS].append(json.dumps({
                "event_id": f"ins-{i}", "event_time": t, "schema_version": 1, "crossing_id": cid,
                "traveller_id": f"t-{i % 50}", "border_post": post,
                "selection": "random" if rng.random() < 0.8 else "targeted",
                "selection_probability": 0.5, "declared": declared,
                "items": [{"category": "carpet", "quantity": 1,
                           "assessed_value": rng.randint(0, 20) * 1e7, "currency": "IRR"}]}))
        if i % 7 == 0:
            rows["customs.exports"].append(json.dumps({
                "event_id": f"exp-{i}", "event_time": t, "schema_version": 1, "declaration_id": f"d-{i}",
                "exporter_id": "e-1", "border_post": post, "destination_country": "AE",
                "items": [{"hs_code": "570110", "quantity": 3, "value": 1e8, "currency": "IRR"}]}))
        if i % 3 == 0:
            rows["payments.transactions"].append(json.dumps({
                "event_id": f"pay-{i}", "event_time": t, "schema_version": 1, "card_id": f"k-{i}",
                "card_type": "tourist", "traveller_id": f"t-{i}", "merchant_id": "m", "mcc": "5971",
                "merchant_city": "Isfahan", "amount": 2e6, "currency": "IRR", "kind": "purchase"}))
    for topic, topic_rows in rows.items():
        # duplicates, local disorder and malformed lines
        topic_rows += rng.sample(topic_rows, max(1, len(topic_rows) // 20))
        for k in range(0, len(topic_rows) - 3, 9):
            j = k + rng.randint(0, 3)
            topic_rows[k], topic_rows[j] = topic_rows[j], topic_rows[k]
        topic_rows += ["{not json", json.dumps({"event_id": "", "event_time": "x"})]
        if topic != RATES:
            rng.shuffle(topic_rows) if topic == INSPECTIONS else None
    out.mkdir(parents=True, exist_ok=True)
    for topic, topic_rows in rows.items():
        (out / f"{topic}.ndjson").write_text("\n".join(topic_rows) + "\n")
    return out


def partition_of(topic: str, raw: bytes, partitions: int) -> int:
    key_field = TOPIC_KEYS[topic]
    try:
        key = json.loads(raw).get(key_field) or ""
    except (ValueError, AttributeError):
        key = ""
    return zlib.crc32(str(key).encode()) % partitions


def records(events_dir: Path, partitions: int = 3) -> tuple[RateBook, dict[tuple[str, int], list[Record]]]:
    book = RateBook()
    for raw in lines(events_dir / f"{RATES}.ndjson"):
        rate = decode(RATES, raw)
        if hasattr(rate, "units_per_usd"):
            book.add(rate.currency, rate.event_time.timestamp(), rate.event_id, rate.units_per_usd)
    out: dict[tuple[str, int], list[Record]] = {}
    for topic in LANE_OF:
        offsets: Counter = Counter()
        for raw in lines(events_dir / f"{topic}.ndjson"):
            p = partition_of(topic, raw, partitions)
            out.setdefault((LANE_OF[topic], p), []).append(Record(topic, p, offsets[p], 0.0, raw))
            offsets[p] += 1
    return book, out


def batch_summaries(events_dir: Path) -> Summaries:
    s = Summaries()
    observe(events_dir, s.update)
    return s


def assert_same(a: Summaries, b: Summaries) -> None:
    assert a.strata.keys() == b.strata.keys()
    for k in a.strata:
        assert a.strata[k] == b.strata[k], k
    assert a.formal.keys() == b.formal.keys() and all(a.formal[k] == b.formal[k] for k in a.formal)
    assert a.payments.keys() == b.payments.keys() and all(a.payments[k] == b.payments[k] for k in a.payments)


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    return tiny_archive(tmp_path_factory.mktemp("tiny"))


@pytest.mark.parametrize("batch", [1, 17, 10_000])
def test_partition_states_release_what_the_batch_reading_does(archive, batch):
    book, by_partition = records(archive)
    live = Summaries()
    tally = Counter()
    for (lane, p), recs in by_partition.items():
        # interleave topics as a consumer would (round robin in batches)
        state = PartitionState(lane, p)
        for i in range(0, len(recs), batch):
            step = state.process(recs[i:i + batch], book)
            for obs in step.observations:
                live.update(obs)
        for topic, n in state.tally.accepted.items():
            tally[topic, "accepted"] += n
        for topic, n in state.tally.duplicates.items():
            tally[topic, "duplicates"] += n
        for (topic, _), n in state.tally.rejected.items():
            tally[topic, "rejected"] += n
    assert_same(live, batch_summaries(archive))
    expected = validate(archive)
    for topic in LANE_OF:
        assert tally[topic, "accepted"] == expected[topic].accepted
        assert tally[topic, "duplicates"] == expected[topic].duplicates
        assert tally[topic, "rejected"] == sum(expected[topic].rejected.values())


def test_restore_from_segments_and_snapshots_resumes_exactly(archive):
    book, by_partition = records(archive)
    live = Summaries()
    for (lane, p), recs in by_partition.items():
        table: dict[bytes, bytes] = {}
        state = PartitionState(lane, p)
        for i in range(0, len(recs), 13):
            if i and i % 52 == 0:  # snapshot (in small parts), then forget the segments
                table = put({}, state.snapshot(), max_bytes=2_000)
            if i and i % 39 == 0:  # restart: rebuild from the table and redo some records
                state = PartitionState.restore(lane, p, table)
                i0 = max(0, i - 20)
                step = state.process(recs[i0:i], book)  # redelivered: no effect
                assert not step.observations
            step = state.process(recs[i:i + 13], book)
            if step.segment is not None:
                put(table, step.segment)
            for obs in step.observations:
                live.update(obs)
        again = PartitionState.restore(lane, p, table)
        assert again.offsets == state.offsets and again.tally == state.tally
        assert again.crossings == state.crossings and again.held == state.held
    assert_same(live, batch_summaries(archive))


def test_an_event_without_a_rate_is_held_then_released(archive):
    book, by_partition = records(archive)
    recs = by_partition[("crossings", 0)]
    state = PartitionState("crossings", 0)
    empty = RateBook()
    state.process(recs, empty)
    assert state.held  # declarations and inspections in IRR wait
    step = state.retry_held(book)
    assert not state.held and step.observations
    assert step.segment.held_removed and decode_segment(encode_segment(step.segment)).held_removed


def test_too_late_events_are_dead_lettered():
    from tests.events import line

    state = PartitionState("crossings", 0, horizon_days=1)
    clock = [  # the watermark is the 16th newest event time: 16 departures set it
        Record(DEPARTURES, 0, 100 + i, 0.0, line(DEPARTURES, event_id=f"w{i}", crossing_id=f"w-{i}", event_time="2026-03-30T08:00:00+03:30"))
        for i in range(16)
    ]
    assert not state.process(clock, RateBook()).dead
    recs = [
        Record(DEPARTURES, 0, 200, 0.0, line(DEPARTURES, event_id="a", event_time="2026-03-30T08:00:00+03:30")),
        Record(DEPARTURES, 0, 201, 0.0, line(DEPARTURES, event_id="b", crossing_id="x-2", event_time="2026-03-14T08:00:00+03:30")),
        Record(DEPARTURES, 0, 202, 0.0, line(DEPARTURES, event_id="c", crossing_id="x-3", event_time="2026-03-29T08:00:00+03:30")),
    ]
    step = state.process(recs, RateBook())
    assert [d.reason for d in step.dead] == ["too_late"]
    assert state.tally.accepted[DEPARTURES] == 18 and state.tally.late[DEPARTURES] == 1  # Sunday after Monday


def test_a_snapshot_in_parts_restores_the_state_and_an_incomplete_one_is_ignored(archive):
    book, by_partition = records(archive)
    lane, p = "crossings", 1
    state = PartitionState(lane, p)
    table: dict[bytes, bytes] = {}
    recs = by_partition[(lane, p)]
    half = len(recs) // 2
    for i in range(0, half, 50):
        step = state.process(recs[i:min(i + 50, half)], book)
        put(table, step.segment)
    only_parts = put({}, state.snapshot(), max_bytes=2_000)
    assert len(only_parts) > 3
    again = PartitionState.restore(lane, p, only_parts)
    assert (again.offsets, again.tally, again.crossings, again.seen) == (state.offsets, state.tally, state.crossings, state.seen)
    # a snapshot missing a part is not used: the segments still give the state
    broken = dict(table)
    broken.update({k: v for k, v in list(only_parts.items())[:-1]})
    again = PartitionState.restore(lane, p, broken)
    assert (again.offsets, again.crossings, again.seen) == (state.offsets, state.crossings, state.seen)


def test_week_end_matches_the_tehran_calendar_at_every_local_midnight():
    import datetime as dt

    from streams.pipeline.crossings import TEHRAN
    from streams.pipeline.partition import week_end

    def expected(at: float) -> float:
        day = dt.datetime.fromtimestamp(at, TEHRAN).date()
        return dt.datetime.combine(day + dt.timedelta(days=7 - day.weekday()), dt.time(), TEHRAN).timestamp()

    for d in range(0, 4000, 3):  # 2015..2025 crosses the years Iran kept summer time
        midnight = dt.datetime.combine(dt.date(2015, 1, 1) + dt.timedelta(days=d), dt.time(), TEHRAN).timestamp()
        for eps in (-0.001, 0.0, 0.001, 4000.0):
            assert week_end(midnight + eps) == expected(midnight + eps)


def test_one_event_dated_2099_is_implausible_and_one_years_ahead_does_not_move_the_watermark():
    from tests.events import line

    state = PartitionState("crossings", 0)
    clock = [
        Record(DEPARTURES, 0, i, 0.0, line(DEPARTURES, event_id=f"w{i}", crossing_id=f"w-{i}", event_time="2026-03-30T08:00:00+03:30"))
        for i in range(16)
    ]
    state.process(clock, RateBook())
    before = state.watermark[DEPARTURES]
    absurd = Record(DEPARTURES, 0, 16, 0.0, line(DEPARTURES, event_id="a", crossing_id="a-1", event_time="2099-03-30T08:00:00+03:30"))
    assert [d.reason for d in state.process([absurd], RateBook()).dead] == ["implausible:event_time"]
    # Within the plausibility bounds (years ahead of the wall clock is still admitted), one
    # event is accepted but cannot move the watermark on its own.
    ahead = (dt.date.today() + dt.timedelta(days=3 * 365)).isoformat()
    future = Record(DEPARTURES, 0, 17, 0.0, line(DEPARTURES, event_id="f", crossing_id="f-1", event_time=f"{ahead}T08:00:00+03:30"))
    assert not state.process([future], RateBook()).dead
    assert state.watermark[DEPARTURES] == before
    later = Record(DEPARTURES, 0, 18, 0.0, line(DEPARTURES, event_id="v", crossing_id="v-1", event_time="2026-03-14T08:00:00+03:30"))
    step = state.process([later], RateBook())
    assert not step.dead and state.tally.accepted[DEPARTURES] == 18  # not too_late
    restored = PartitionState.restore("crossings", 0, put(put({}, state.snapshot()), step.segment))
    assert restored.watermark == state.watermark


def test_a_record_that_raises_is_dead_lettered_and_leaves_no_trace(archive, monkeypatch):
    from streams.pipeline import partition as live

    book, by_partition = records(archive)
    recs = by_partition[("crossings", 0)]
    clean = PartitionState("crossings", 0)
    clean_obs = [o for o in clean.process(recs, book).observations]
    victim = next(r for r in recs if r.topic == DEPARTURES and b'"event_id"' in r.value)
    original = live.departure_stratum

    def explode(event):
        if event.event_id == json.loads(victim.value)["event_id"]:
            raise OverflowError("boom")
        return original(event)

    monkeypatch.setattr(live, "departure_stratum", explode)
    state = PartitionState("crossings", 0)
    step = state.process(recs, book)
    assert [d.reason for d in step.dead if d.record is victim] == ["internal_error:OverflowError"]
    assert state.tally.accepted[DEPARTURES] == clean.tally.accepted[DEPARTURES] - 1
    assert len(step.observations) < len(clean_obs)
