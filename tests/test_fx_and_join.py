"""The FX rule of the contract, and the crossing join's independence from arrival order."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.pipeline import contract as c
from streams.pipeline.crossings import (
    Crossing,
    priced_declaration,
    departure_stratum,
    payment_seen,
    priced_inspection,
    week_of,
)
from streams.pipeline.fx import RateBook, usd_cents
from tests.events import line

T0 = 1_773_000_000.0


def book(*rates):
    b = RateBook()
    for currency, at, event_id, value in rates:
        b.add(currency, at, event_id, value)
    return b


def test_amount_uses_the_latest_rate_not_after_its_time():
    b = book(("IRR", T0, "a", 1_000_000), ("IRR", T0 + 100, "b", 1_100_000))
    assert b.rate("IRR", T0 - 1) is None
    assert b.rate("IRR", T0) == 1_000_000
    assert b.rate("IRR", T0 + 99.9) == 1_000_000
    assert b.rate("IRR", T0 + 100) == 1_100_000
    assert b.rate("IRR", T0 + 10**6) == 1_100_000


def test_dollars_need_no_rate_and_other_currencies_do():
    b = book(("IRR", T0, "a", 1_000_000))
    assert b.to_cents(12.345, "USD", T0 - 10**6) == 1234
    assert b.to_cents(1, "EUR", T0) is None


def test_the_book_is_a_function_of_the_set_of_rates():
    rates = [("IRR", T0, "b", 2.0), ("IRR", T0, "a", 3.0), ("IRR", T0 - 5, "c", 5.0), ("IRR", T0, "b", 2.0)]
    answers = set()
    for order in itertools.permutations(rates):
        b = book(*order)
        answers.add((b.rate("IRR", T0), b.rate("IRR", T0 - 1), len(b)))
    assert answers == {(2.0, 5.0, 3)}  # same time: the larger event id is the later rate


def test_usd_cents_round_half_even_on_exact_halves():
    assert usd_cents(1_500_000, 1_000_000) == 150
    assert usd_cents(0.005, 1) in (0, 1)


def test_week_is_counted_in_tehran_time():
    # Sunday 22:00 UTC is already Monday 01:30 in Tehran: the next ISO week.
    dep = c.decode(c.DEPARTURES, line(c.DEPARTURES, event_time="2026-03-15T22:00:00Z"))
    assert week_of(dep.event_time) == "2026-W12"
    assert departure_stratum(dep)[0].group == "visitor"
    assert departure_stratum(dep)[1] == "iraq"


def test_refunds_and_reversals_count_negative():
    rates = book(("IRR", T0 - 10**7, "r", 1_000_000))
    purchase = c.decode(c.PAYMENTS, line(c.PAYMENTS))
    refund = c.decode(c.PAYMENTS, line(c.PAYMENTS, kind="refund", original_event_id="pay-1"))
    assert payment_seen(purchase, rates).amount_cents == 500
    assert payment_seen(refund, rates).amount_cents == -500
    assert payment_seen(purchase, rates).handicraft


def crossing_events(declared: bool, inspections: int):
    events = [("departure", c.decode(c.DEPARTURES, line(c.DEPARTURES)))]
    if declared:
        events.append(("declaration", c.decode(c.DECLARATIONS, line(c.DECLARATIONS))))
    for i in range(inspections):
        raw = line(c.INSPECTIONS, event_id=f"ins-{i}", declared=declared)
        events.append(("inspection", c.decode(c.INSPECTIONS, raw)))
    return events


def release(order, rates):
    crossing, out = Crossing(), []
    for kind, event in order:
        if kind == "departure":
            out += crossing.add_departure(*departure_stratum(event))
        elif kind == "declaration":
            out += crossing.add_declaration(priced_declaration(event, rates))
        else:
            out += crossing.add_inspection(priced_inspection(event, rates))
    return crossing, out


@settings(max_examples=60, deadline=None)
@given(declared=st.booleans(), inspections=st.integers(0, 2), data=st.data())
def test_join_releases_the_same_observations_in_any_order(declared, inspections, data):
    rates = book(("IRR", T0 - 10**7, "r", 1_000_000))
    events = crossing_events(declared, inspections)
    _, expected = release(events, rates)
    _, got = release(data.draw(st.permutations(events)), rates)
    assert sorted(got, key=repr) == sorted(expected, key=repr)
    assert len(expected) == 1 + declared + inspections


def test_declared_inspection_waits_for_its_declaration():
    rates = book(("IRR", T0 - 10**7, "r", 1_000_000))
    events = dict(crossing_events(True, 1))
    crossing, out = release([("departure", events["departure"]), ("inspection", events["inspection"])], rates)
    assert [type(o).__name__ for o in out] == ["DepartureSeen"]
    assert crossing.open_inspections == 1
    later = crossing.add_declaration(priced_declaration(events["declaration"], rates))
    assert [type(o).__name__ for o in later] == ["DeclarationSeen", "InspectionSeen"]
    assert later[1].declared_cents == later[0].declared_cents == (9_000, 0, 0, 2050, 0, 0, 0, 0)
    assert later[1].assessed_cents[0] == 15_000


def test_crossing_pickles_for_the_table_changelog():
    import pickle

    rates = book(("IRR", T0 - 10**7, "r", 1_000_000))
    crossing, _ = release(crossing_events(True, 1)[:2], rates)
    assert pickle.loads(pickle.dumps(crossing)) == crossing
    assert "t-1" not in repr(crossing) and "x-1" not in repr(crossing)


def test_join_carries_resale_and_traveller_digests_never_ids():
    rates = book(("IRR", T0 - 10**7, "r", 1_000_000))
    _, out = release(crossing_events(True, 1), rates)
    declaration, inspection = out[1], out[2]
    assert declaration.resale and inspection.resale  # the example declares a carpet for resale
    assert declaration.traveller_key == inspection.traveller_key != 0
    assert "t-1" not in repr(out)
