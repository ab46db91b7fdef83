"""States, not events: each step carries its partition's whole estimator states of the
weeks it touched; a reader keeps the newest per (partition, week) and merges them."""

from __future__ import annotations

import zlib

import msgspec
import pytest

from estimators import Tables
from estimators.encoding import WeekStates, decode_state, decode_tables, encode_state, encode_tables
from estimators.state import FormalExports, StratumState, WeekPayments
from streams.pipeline.encoding import decode_segment, encode_segment
from streams.pipeline import partition
from streams.pipeline.partition import PartitionState, Summaries, encode_parts
from tests.test_live_state import records, tiny_archive


def _tiny_tables(tmp_path) -> Tables:
    """The states of a small archive, as the partitions' steps release them."""
    book, by_partition = records(tiny_archive(tmp_path / "tiny"))
    tables = Tables()
    for (lane, p), recs in by_partition.items():
        for o in PartitionState(lane, p).process(recs, book).observations:
            tables.update(o)
    return tables


def test_states_round_trip_exactly(tmp_path):
    tables = _tiny_tables(tmp_path)
    for state in tables.strata.values():
        assert decode_state(encode_state(state), StratumState) == state
    for state in tables.formal.values():
        assert decode_state(encode_state(state), FormalExports) == state
    for state in tables.payments.values():
        assert decode_state(encode_state(state), WeekPayments) == state


def test_whole_tables_round_trip_and_a_cut_file_is_refused(tmp_path):
    """The benchmark's cache of a world's states: the state encoding, never a pickle."""
    tables = _tiny_tables(tmp_path)
    raw = encode_tables(tables)
    back = decode_tables(raw)
    assert back.strata == tables.strata and back.formal == tables.formal and back.payments == tables.payments
    assert len(tables.strata) > 1 and tables.formal and tables.payments
    for bad in (raw[: len(raw) // 2], b"\x80\x04\x95" + raw[3:], b""):
        with pytest.raises(ValueError):
            decode_tables(bad)


@pytest.mark.parametrize("decoded_weeks", [1, 6])
def test_merged_week_states_equal_the_observations_whatever_the_steps_and_doubles(tmp_path, monkeypatch, decoded_weeks):
    monkeypatch.setattr(partition, "DECODED_WEEKS", decoded_weeks)  # 1: weeks evicted to bytes, decoded again
    book, by_partition = records(tiny_archive(tmp_path / "tiny"))
    expected, live = Tables(), Summaries()
    for (lane, p), recs in by_partition.items():
        state = PartitionState(lane, p)
        for i in range(0, len(recs), 23):
            step = state.process(recs[i:i + 23], book)
            for o in step.observations:
                expected.update(o)
            if step.segment is None:
                continue
            for raw in encode_parts(step.segment, 3_000):  # in parts, as the worker writes them
                part = decode_segment(raw)
                assert not len(part.observations)  # states, not events
                live.put((lane, p), part.seq, part.weeks)
            live.put((lane, p), step.segment.seq, step.segment.weeks)  # a doubled step: harmless
    assert live.tables == expected


def test_a_state_that_does_not_decode_is_counted_and_skipped(tmp_path):
    book, by_partition = records(tiny_archive(tmp_path / "tiny"))
    step = PartitionState("payments", 0).process(by_partition[("payments", 0)], book)
    live = Summaries()
    week = step.segment.weeks[0]
    live.put(("payments", 0), 1, [msgspec.structs.replace(week, payments=b"\x01garbage")])
    assert not live.tables.payments and live.invalid == 1
    bomb = b"\x02" + zlib.compress(b"\x00" * (8 << 20))  # inflates past any real state
    live.put(("payments", 0), 2, [msgspec.structs.replace(week, payments=bomb)])
    assert not live.tables.payments and live.invalid == 2


def test_a_version_2_step_of_observations_still_reads(tmp_path):
    book, by_partition = records(tiny_archive(tmp_path / "tiny"))
    step = PartitionState("crossings", 0).process(by_partition[("crossings", 0)], book)
    old = msgspec.structs.replace(step.segment, weeks=[])
    old.observations = type(old.observations).of(step.observations)
    raw = encode_segment(old)
    assert raw[2] == 2
    decoded = decode_segment(raw)
    live, expected = Summaries(), Tables()
    live.fold(("crossings", 0), decoded.seq, list(decoded.observations))
    for o in step.observations:  # version 2 carried no departure's day: read as Monday's
        expected.update(o._replace(day=0) if type(o).__name__ == "DepartureSeen" else o)
    assert live.tables == expected
    assert any(o.day for o in step.observations if type(o).__name__ == "DepartureSeen")
    assert isinstance(step.segment.weeks[0], WeekStates)


def test_a_state_written_before_departures_had_days_reads_with_zero_days(tmp_path):
    """Version-2 state bodies end before ``departures_by_day``: read as zeros (so the
    nowcast, whose days no longer add up, falls back to the forecast of counts)."""
    from estimators import encoding

    tables = _tiny_tables(tmp_path)
    state = next(s for s in tables.strata.values() if s.census.departures.sum())
    census = encoding._fields(state.census)
    assert len(census) == len(type(state.census)._FIELDS)
    old = bytes((2,)) + zlib.compress(msgspec.msgpack.encode([census[:-1], encoding._fields(state.sample)]), 1)
    back = decode_state(old, StratumState)
    assert back.census.departures_by_day.sum() == 0 < state.census.departures_by_day.sum()
    back.census.departures_by_day = state.census.departures_by_day
    assert back == state
    with pytest.raises(ValueError):  # a version-3 body without the field is cut, not old
        decode_state(bytes((3,)) + old[1:], StratumState)
