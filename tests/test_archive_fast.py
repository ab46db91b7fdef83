"""The fast archive reading (block decoding, columns, worker processes, bulk state updates)
gives exactly what the simple line-by-line reading gives: tallies, unpriced counts, open
inspections and every estimator state."""

from __future__ import annotations

import json
import random
from collections import Counter
from datetime import datetime, timedelta, timezone
from datetime import time as dtime
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from estimators import Tables
from estimators.observations import DepartureSeen, PaymentSeen, Stratum
from estimators.state import CensusState, WeekPayments
from streams.pipeline import archive
from streams.pipeline import contract as c
from streams.pipeline.batch import build_tables
from streams.pipeline.fx import RateBook
from tests.events import line


def simple_reading(events_dir: Path):
    """The reading as it was: line by line, one Crossing per departure, one update each."""
    from streams.pipeline.crossings import (
        Crossing,
        departure_stratum,
        formal_export_seen,
        payment_seen,
        priced_declaration,
        priced_inspection,
    )

    def read_topic(path, topic, tally):
        seen = set()
        for raw in archive.lines(path):
            event = c.decode(topic, raw)
            if type(event) is c.Rejection:
                tally.rejected[event.reason] += 1
            elif event.event_id in seen:
                tally.duplicates += 1
            else:
                seen.add(event.event_id)
                tally.accepted += 1
                yield event

    tables = Tables()
    files = archive.topic_files(events_dir)
    tallies = {topic: archive.TopicTally() for topic in files}
    unpriced: Counter = Counter()
    rates = RateBook()
    files = {t: files.get(t, Path("/dev/null")) for t in c.TOPICS}  # a missing file reads empty
    tallies = {t: tallies.get(t, archive.TopicTally()) for t in c.TOPICS}
    for rate in read_topic(files[c.RATES], c.RATES, tallies[c.RATES]):
        rates.add(rate.currency, rate.event_time.timestamp(), rate.event_id, rate.units_per_usd)
    crossings: dict[str, Crossing] = {}

    def crossing(crossing_id):
        return crossings.setdefault(crossing_id, Crossing())

    for dep in read_topic(files[c.DEPARTURES], c.DEPARTURES, tallies[c.DEPARTURES]):
        for obs in crossing(dep.crossing_id).add_departure(*departure_stratum(dep)):
            tables.update(obs)
    for topic, price, add in (
        (c.DECLARATIONS, priced_declaration, Crossing.add_declaration),
        (c.INSPECTIONS, priced_inspection, Crossing.add_inspection),
    ):
        for event in read_topic(files[topic], topic, tallies[topic]):
            priced = price(event, rates)
            if priced is None:
                unpriced[topic] += 1
            else:
                for obs in add(crossing(event.crossing_id), priced):
                    tables.update(obs)
    for topic, convert in ((c.PAYMENTS, payment_seen), (c.EXPORTS, formal_export_seen)):
        for event in read_topic(files[topic], topic, tallies[topic]):
            seen = convert(event, rates)
            if seen is None:
                unpriced[topic] += 1
            else:
                tables.update(seen)
    open_inspections = sum(x.open_inspections for x in crossings.values())
    tallies = {t: x for t, x in tallies.items() if files[t].name != "null"}
    return tables, tallies, unpriced, open_inspections


def _insert(path: Path, extra: list[bytes], seed: int) -> None:
    """Put ``extra`` lines at random places among the file's lines."""
    rows = path.read_bytes().split(b"\n")
    rng = random.Random(seed)
    for raw in extra:
        rows.insert(rng.randrange(len(rows)), raw)
    path.write_bytes(b"\n".join(rows))


@pytest.fixture(scope="module")
def faulty(tmp_path_factory) -> Path:
    """A simulated faulty archive, plus lines made to trip a block decoder."""
    from streams.simulation.simulator import WorldConfig, simulate

    out = tmp_path_factory.mktemp("faulty")
    simulate(out, WorldConfig(seed=3, weeks=2, scale=0.01, faults=True))
    dep_path = out / f"{c.DEPARTURES}.ndjson"
    deps = [json.loads(r) for r in dep_path.read_bytes().splitlines()[:200] if r.startswith(b"{")]
    dep = json.dumps(deps[0]).encode()
    half = len(dep) // 2
    again = dict(deps[1], event_id="again")  # a new event id for a crossing already seen
    _insert(dep_path, [
        b"", b"   ", dep + b" ", b" " + dep, dep + b"\r",
        dep + b" " + dep, dep + dep,  # two values on one line
        dep[:half], dep[half:],  # one value over two lines (and both halves apart)
        dep[:half] + b"\n" + dep[half:] + b"\n" + dep + b" " + dep,  # merged and split: same count
        json.dumps(again).encode(), json.dumps(dict(deps[2], event_id="late")).encode(),
        json.dumps(dict(deps[3], event_id="late", border_post="XXX")).encode(),
        json.dumps(dict(deps[4], event_time="2026-03-02T20:30:00+00:00")).encode(),  # Tehran midnight
        json.dumps(dict(deps[5], event_id="edge", event_time="2026-03-08T23:59:59.9999+03:30")).encode(),
        b'{"event_id": "x\nnewline"}',
        json.dumps(dict(deps[6], event_id="d\u00e9part\n")).encode(),  # not ASCII, a newline
    ], seed=1)
    pay_path = out / f"{c.PAYMENTS}.ndjson"
    _insert(pay_path, [
        line(c.PAYMENTS, event_id="p-no-traveller", traveller_id=None),
        line(c.PAYMENTS, event_id="p-refund", kind="refund"),  # no original_event_id
        line(c.PAYMENTS, event_id="p-refund", kind="refund", original_event_id="pay-1"),
        line(c.PAYMENTS, event_id="p-usd", currency="USD", amount=12.345),
        line(c.PAYMENTS, event_id="p-xxx", currency="XXX"),  # no rate: unpriced
        line(c.PAYMENTS, event_id="p-early", event_time="2020-01-01T00:00:00+00:00"),  # before any rate
        b"{oops", b"",
        line(c.PAYMENTS, event_id="p\u00e4y", currency="USD"),
    ], seed=2)
    return out


@pytest.mark.parametrize("workers", [0, 2, None])
def test_fast_reading_equals_line_by_line(faulty, workers, monkeypatch):
    monkeypatch.setattr(archive, "BLOCK_BYTES", 2048)  # many blocks, many with a bad line
    monkeypatch.setattr(archive, "CHUNK_BYTES", 1 << 14)  # many chunks
    monkeypatch.setattr(archive, "THREADED_BYTES", 0)  # None: reader threads
    tables, tallies, unpriced, open_inspections = simple_reading(faulty)
    report = archive.observe(faulty, (fast := Tables()).update, workers=workers, unit_bytes=1 << 16)
    assert {t: x.as_dict() for t, x in report.tallies.items()} == {t: x.as_dict() for t, x in tallies.items()}
    assert report.tallies[c.DEPARTURES].rejected["not_json"] >= 8
    assert report.tallies[c.PAYMENTS].rejected["missing_field:traveller_id"] >= 1
    assert report.unpriced == unpriced and unpriced[c.PAYMENTS] >= 2
    assert report.open_inspections == open_inspections
    assert fast == tables
    bulk, bulk_report = build_tables(faulty, workers=workers)
    assert bulk == tables and bulk_report.unpriced == unpriced
    assert bulk.estimate().equals(tables.estimate())
    assert {t: x.as_dict() for t, x in archive.validate(faulty).items()} == {
        t: x.as_dict() for t, x in tallies.items()
    }


@pytest.mark.parametrize("workers", [0, 2])
def test_files_with_nothing_valid(tmp_path, workers):
    (tmp_path / f"{c.DEPARTURES}.ndjson").write_bytes(b"{oops\n\n")
    (tmp_path / f"{c.PAYMENTS}.ndjson").write_bytes(b"")
    (tmp_path / f"{c.RATES}.ndjson").write_bytes(line(c.RATES) + b"\n")
    tables, tallies, unpriced, _ = simple_reading(tmp_path)
    fast, report = build_tables(tmp_path, workers=workers)
    assert fast == tables and report.unpriced == unpriced
    assert {t: x.as_dict() for t, x in report.tallies.items()} == {t: x.as_dict() for t, x in tallies.items()}


VALID = [line(t) for t in (c.DEPARTURES, c.PAYMENTS)] + [  # and JSON objects refused
    line(c.PAYMENTS, traveller_id=None), line(c.PAYMENTS, amount=-1), line(c.DEPARTURES, border_post="X"),
]
BAD = [b"", b" ", b"{", b"}", b"{}", b"[]", b"{} {}", b'{"a": 1}', b"\xff", b"\r"]


@settings(max_examples=200, deadline=None)
@given(
    topic=st.sampled_from([c.DEPARTURES, c.PAYMENTS]),
    pieces=st.lists(
        st.one_of(
            st.sampled_from(VALID + BAD),
            st.sampled_from(VALID).map(lambda v: v[: len(v) // 2]),
            st.sampled_from(VALID).map(lambda v: v[len(v) // 2 :]),
            st.binary(max_size=8),
        ),
        min_size=1,
        max_size=40,
    ),
)
def test_decode_block_is_decode_of_each_line(topic, pieces):
    block = b"\n".join(p.replace(b"\n", b"") for p in pieces)
    assert archive.decode_block(topic, block) == [c.decode(topic, raw) for raw in block.split(b"\n")]


def test_blocks_give_the_lines(tmp_path):
    for data in (b"", b"\n", b"a", b"a\n", b"a\n\nb", b"ab\ncd\n" * 50 + b"tail"):
        path = tmp_path / "x.ndjson"
        path.write_bytes(data)
        want = list(archive.lines(path))
        for size in (1, 3, 64):
            got = [raw for block in archive.blocks(path, size=size) for raw in block.split(b"\n")]
            assert got == want
            units = archive._units(path, size)
            got = [
                raw for a, b in units for block in archive.blocks(path, a, b, size=5)
                for raw in block.split(b"\n")
            ]
            assert got == want


def test_rates_vectorised_equal_one_by_one():
    rng = np.random.default_rng(4)
    book = RateBook()
    t0 = 1_773_000_000.0
    for i in range(50):
        book.add("IRR", t0 + 3600 * i, f"r{i}", float(rng.uniform(9e5, 1.1e6)))
        book.add("EUR", t0 + 3600 * i, f"e{i}", float(rng.uniform(0.8, 1.0)))
    book.add("IRR", t0 + 3600 * 7, "r7b", 1.0e6)  # a tie in time, broken by event id
    at = t0 + rng.uniform(-7200, 3600 * 52, 5000)
    at[:50] = t0 + 3600 * np.arange(50)  # exactly at a rate's time
    amount = np.round(rng.exponential(5e7, 5000), 2)
    amount[:5] = [0.5, 1.5, 2.5, 0.0, 1e12]
    for currency in ("IRR", "EUR", "USD", "XXX"):
        cents, priced = book.to_cents_array(currency, amount, at)
        want = [book.to_cents(float(a), currency, float(t)) for a, t in zip(amount, at)]
        assert list(priced) == [w is not None for w in want]
        assert [int(x) for x, p in zip(cents, priced) if p] == [w for w in want if w is not None]


def test_bulk_state_updates_equal_single_ones():
    one, bulk = CensusState(), CensusState()
    for _ in range(7):
        one.update(DepartureSeen(Stratum("2026-W10", "IKA", "visitor"), "gulf"))
    bulk.add_departures("gulf", 7)
    bulk.add_departures("iraq", 0)
    assert one == bulk
    with pytest.raises(ValueError):
        bulk.add_departures("mars", 1)
    one, bulk = WeekPayments(), WeekPayments()
    for cents in (500, -200, 12_345):
        one.update(PaymentSeen("2026-W10", "tourist", True, cents))
    one.update(PaymentSeen("2026-W10", "domestic", False, 99))
    bulk.add_payments("tourist", True, 3, 500 - 200 + 12_345)
    bulk.add_payments("domestic", False, 1, 99)
    assert one == bulk
    with pytest.raises(ValueError):
        bulk.add_payments("gold", True, 1, 1)


@settings(max_examples=300, deadline=None)
@given(
    times=st.lists(
        st.tuples(
            st.datetimes(min_value=datetime(1900, 1, 2), max_value=datetime(2100, 1, 1)),
            st.integers(min_value=-12 * 60, max_value=14 * 60),
            st.sampled_from([0, 1800, 3600 * 20 + 1800, 3600 * 19 + 1800]),
        ),
        min_size=1,
        max_size=30,
    )
)
def test_week_codes_are_week_of(times):
    """Per day and offset, per half hour, or one by one: always the label week_of gives."""
    from streams.pipeline.crossings import week_of

    class E:  # an event with just a time
        def __init__(self, t):
            self.event_time = t

    events = []
    for naive, minutes, snap in times:
        zone = timezone(timedelta(minutes=minutes))
        t = naive.replace(tzinfo=zone)
        if snap:  # near Tehran midnights and half hours
            t = datetime.combine(t.date(), dtime(0), tzinfo=timezone.utc) + timedelta(seconds=snap)
        events.append(E(t))
    want = [week_of(e.event_time) for e in events]
    for codes_of in (
        lambda labels: archive._week_codes_by_day(events, labels),
        lambda labels: archive._week_codes(events, [e.event_time.timestamp() for e in events], labels),
    ):
        labels: dict[str, int] = {}
        codes = codes_of(labels)
        names = list(labels)
        assert [names[k] for k in codes] == want


def test_a_killed_reader_process_costs_time_not_results(faulty, monkeypatch):
    """If a worker process dies (killed from outside), its parts are read in this process."""
    import os
    import signal
    from concurrent.futures import ProcessPoolExecutor

    submit = ProcessPoolExecutor.submit
    calls = []

    def submit_then_kill(self, fn, *args, **kwargs):
        future = submit(self, fn, *args, **kwargs)
        calls.append(1)
        if len(calls) == 3:
            os.kill(next(iter(self._processes)), signal.SIGKILL)
        return future

    monkeypatch.setattr(ProcessPoolExecutor, "submit", submit_then_kill)
    tables, tallies, unpriced, _ = simple_reading(faulty)
    with pytest.warns(UserWarning, match="reader process died"):
        report = archive.observe(faulty, (fast := Tables()).update, workers=2, unit_bytes=1 << 16)
    assert fast == tables and report.unpriced == unpriced
    assert {t: x.as_dict() for t, x in report.tallies.items()} == {t: x.as_dict() for t, x in tallies.items()}
