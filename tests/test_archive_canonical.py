"""The canonical-layout reader never accepts a line that ``decode`` refuses, and gives the
values ``decode`` gives for every line it accepts; the archive reading built on it equals
``decode`` line by line, rejections and their reasons included."""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from estimators.reference import HANDICRAFT_MCCS
from streams.pipeline import archive, canonical
from streams.pipeline import contract as c
from streams.pipeline.crossings import departure_stratum, week_of
from tests.events import EXAMPLES

TOPICS = [c.DEPARTURES, c.PAYMENTS]


def compact(topic: str, **changes) -> bytes:
    """The example event as a producer writes it (compact JSON, the contract's order)."""
    event = dict(EXAMPLES[topic])
    for name, value in changes.items():
        if value is ...:
            event.pop(name, None)
        else:
            event[name] = value
    return json.dumps(event, separators=(",", ":")).encode()


def check_against_decode(topic: str, chunk: bytes) -> int:
    """Assert the canonical reader agrees with decode on every line; returns how many it took."""
    starts, ends = canonical.lines_of(chunk)
    frame, ok = canonical.read(topic, chunk, starts, ends)
    assert frame.height == int(ok.sum())
    rows = iter(frame.iter_rows(named=True))
    for i in range(len(starts)):
        if not ok[i]:
            continue
        raw = chunk[starts[i] : ends[i]]
        event = c.decode(topic, raw)
        assert type(event) is not c.Rejection, (raw, event)  # never accepts what decode refuses
        row = next(rows)
        assert row["line"] == i
        assert row["event_id"] == event.event_id
        assert row["at"] == event.event_time.timestamp()
        if topic == c.DEPARTURES:
            assert row["crossing_id"] == event.crossing_id
            assert canonical._POSTS[row["post"]] == event.border_post
            assert row["resident"] is event.resident
            assert row["country"].to_bytes(2, "big").decode() == event.destination_country
        else:
            assert row["tourist"] is (event.card_type == "tourist")
            assert f"{row['mcc']:04d}" == event.mcc
            assert row["amount"] == event.amount and type(row["amount"]) is float
            assert row["currency"] == event.currency
            assert row["purchase"] is (event.kind == "purchase")
    return int(ok.sum())


def test_canonical_lines_are_taken():
    """The producers' layout takes the fast path (else it would only be slow, not wrong)."""
    chunk = b"\n".join([compact(c.DEPARTURES), compact(c.PAYMENTS, event_id="p")])
    assert check_against_decode(c.DEPARTURES, chunk) == 1
    assert check_against_decode(c.PAYMENTS, chunk) == 1
    domestic = compact(c.PAYMENTS, card_type="domestic", traveller_id=None, kind="refund",
                       original_event_id="pay-0", amount=12.25, currency="USD", merchant_city="")
    assert check_against_decode(c.PAYMENTS, domestic) == 1


@pytest.mark.parametrize("topic, changes", [
    (c.DEPARTURES, {"event_time": "2026-02-29T08:15:00+03:30"}),  # no such day in 2026
    (c.DEPARTURES, {"event_time": "2026-04-31T08:15:00+03:30"}),
    (c.DEPARTURES, {"event_time": "1999-12-31T08:15:00+03:30"}),  # before the bounds
    (c.DEPARTURES, {"event_time": "9999-12-31T08:15:00+03:30"}),  # after them
    (c.DEPARTURES, {"event_id": "x" * 129}),
    (c.DEPARTURES, {"border_post": "XXX"}),
    (c.DEPARTURES, {"traveller_id": ""}),
    (c.PAYMENTS, {"traveller_id": None}),  # a tourist card names its traveller
    (c.PAYMENTS, {"kind": "refund"}),  # and a refund its purchase
    (c.PAYMENTS, {"amount": 1e13 + 1}),
    (c.PAYMENTS, {"amount": 10_000_001, "currency": "USD"}),
    (c.PAYMENTS, {"amount": -1}),
])
def test_what_decode_refuses_is_left_to_it(topic, changes):
    raw = compact(topic, **changes)
    assert type(c.decode(topic, raw)) is c.Rejection
    assert check_against_decode(topic, raw) == 0


def test_bounds_set_at_run_time_apply():
    raw = compact(c.PAYMENTS, amount=5000)
    assert check_against_decode(c.PAYMENTS, raw) == 1
    before = c.BOUNDS
    try:
        c.configure(c.parse_bounds("max_amount=1000,max_traveller_usd=100"))
        assert check_against_decode(c.PAYMENTS, raw) == 0
    finally:
        c.configure(before)


# --- hypothesis: lines near the canonical layout, mutated ----------------------------

_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=6)
_TIMES = st.builds(
    lambda y, mo, d, h, mi, s, sign, oh, om, tail: f"{y:04d}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}{tail or f'{sign}{oh:02d}:{om:02d}'}",
    st.sampled_from([1, 1999, 2000, 2001, 2024, 2026, 2030, 2036, 2100, 9999]), st.integers(0, 13), st.integers(0, 32),
    st.integers(0, 24), st.integers(0, 60), st.integers(0, 61), st.sampled_from("+-"),
    st.integers(0, 25), st.integers(0, 60), st.sampled_from(["", "", "", "Z", ".5+03:30", "+0330"]),
)
_VALUES = st.one_of(
    _TEXT, st.integers(-10, 10**20), st.floats(allow_nan=True, allow_infinity=True), st.none(),
    st.booleans(), st.sampled_from(["IKA", "IQ", "USD", "IRR", "5971", "tourist", "domestic", "purchase",
                                    "refund", "reversal", "x", "", "A" * 129, "é", "a\\b", 'a"b'])
)


_PLAUSIBLE = st.one_of(  # values of the right shape for some field, often for this one
    st.from_regex(r"[A-Za-z0-9_.:\-]{1,20}", fullmatch=True), st.from_regex(r"[A-Z]{2,3}", fullmatch=True),
    st.from_regex(r"[0-9]{4}", fullmatch=True), st.sampled_from(c.BorderPost.__args__), st.booleans(),
    st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=8),
)


def _field_changes(topic: str):
    names = list(EXAMPLES[topic])
    return st.dictionaries(
        st.sampled_from(names),
        st.one_of(_PLAUSIBLE, _VALUES, _TIMES, st.just(...)),
        max_size=3,
    )


_AMOUNTS = st.one_of(
    st.integers(0, 10**16), st.decimals(0, 10**14, places=6, allow_nan=False).map(lambda d: float(d)),
    st.floats(0, 1e14, allow_nan=False), st.sampled_from([0.1, 1e-7, 123456789.123456, 9007199254740993]),
)


@st.composite
def near_canonical(draw, topic: str) -> bytes:
    changes = draw(_field_changes(topic))
    if topic == c.PAYMENTS and draw(st.booleans()):
        changes["amount"] = draw(_AMOUNTS)
    if draw(st.booleans()):
        changes["event_time"] = draw(_TIMES)
    raw = compact(topic, **changes)
    for _ in range(draw(st.sampled_from([0, 0, 0, 1, 2]))):  # byte-level damage
        at = draw(st.integers(0, len(raw)))
        how = draw(st.sampled_from(["insert", "delete", "replace"]))
        byte = bytes([draw(st.sampled_from(b' "\\{}[],:0.-eE\x7f\x00\xc3\xa9tn1'))])
        raw = raw[:at] + byte + raw[at + (how != "insert"):] if how != "delete" else raw[:at] + raw[at + 1:]
    return raw.replace(b"\n", b"")


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), topic=st.sampled_from(TOPICS))
def test_canonical_reader_agrees_with_decode(data, topic):
    lines = data.draw(st.lists(st.one_of(near_canonical(topic), st.just(compact(topic))), min_size=1, max_size=12))
    taken = check_against_decode(topic, b"\n".join(lines))
    assert taken >= sum(raw == compact(topic) for raw in lines)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.function_scoped_fixture])
@given(data=st.data(), topic=st.sampled_from(TOPICS))
def test_read_unit_equals_decode_line_by_line(tmp_path, monkeypatch, data, topic):
    """Rows (in file order, duplicates kept) and rejection reasons are decode's, line by
    line, whichever way each line went; small chunks put canonical and other lines apart."""
    lines = data.draw(st.lists(st.one_of(near_canonical(topic), st.just(compact(topic))), min_size=1, max_size=30))
    monkeypatch.setattr(archive, "CHUNK_BYTES", data.draw(st.sampled_from([1, 300, 1 << 20])))
    path = tmp_path / "topic.ndjson"
    path.write_bytes(b"\n".join(lines) + data.draw(st.sampled_from([b"", b"\n"])))
    frame, weeks, rejected = archive.read_unit(topic, str(path), 0, None)
    want_rows, want_rejected = [], Counter()
    for raw in archive.lines(path):
        event = c.decode(topic, raw)
        if type(event) is c.Rejection:
            want_rejected[event.reason] += 1
        elif topic == c.DEPARTURES:
            want_rows.append((event.event_id, event.crossing_id, departure_stratum(event)))
        else:
            want_rows.append((event.event_id, week_of(event.event_time), event.card_type, event.mcc in HANDICRAFT_MCCS,
                              event.amount, event.currency, event.kind == "purchase", event.event_time.timestamp()))
    got = []
    for row in frame.iter_rows(named=True):
        if topic == c.DEPARTURES:
            got.append((row["event_id"], row["crossing_id"], archive._departure_cell(row["cell"], weeks)))
        else:
            got.append((row["event_id"], *archive._payment_cell(row["cell"], weeks), row["amount"],
                        row["currency"], row["purchase"], row["at"]))
    assert got == want_rows
    assert rejected == want_rejected


def test_week_of_whole_seconds():
    """Whole epoch seconds get week_of's label and their Tehran day of the week, across
    Tehran midnights, summer time (before 2022) and years."""
    import numpy as np

    from streams.pipeline.crossings import tehran_date

    at = np.array([0, 1_772_400_000, 1_772_400_000 + 20 * 3600 + 1800, 1_772_400_000 + 20 * 3600 + 1799,
                   1_640_000_000, 1_900_000_000, 946_684_800, 1_600_000_000, 1_600_000_000 + 7 * 3600],
                  dtype=np.int64)
    labels: dict[str, int] = {}
    codes, days = archive._week_codes_of_seconds(at, labels)
    names = list(labels)
    instants = [datetime.fromtimestamp(int(t), timezone.utc) for t in at]
    assert [names[k] for k in codes] == [week_of(t) for t in instants]
    assert days.tolist() == [tehran_date(t).weekday() for t in instants]
