"""The batch reader's many-at-once pricing of declarations and inspections equals pricing
them one by one (``priced_declaration``, ``priced_inspection``), element by element:
unpriced events, rounding, rates in force at each time and sums near int64's limit."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from estimators.reference import CATEGORIES
from streams.pipeline import contract as c
from streams.pipeline import crossings
from streams.pipeline.crossings import (
    formal_export_seen,
    formal_exports_seen,
    priced_declaration,
    priced_declarations,
    priced_inspection,
    priced_inspections,
)
from streams.pipeline.fx import RateBook

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=timezone(timedelta(hours=3, minutes=30)))
CURRENCIES = ["USD", "IRR", "EUR", "AED"]  # AED never has a rate below

amounts = st.one_of(
    st.floats(min_value=0, max_value=1e13, allow_nan=False),
    st.integers(min_value=0, max_value=10**9).map(float),
    st.sampled_from([0.005, 0.015, 2.5, 1e17, 9.2e18]),  # halves, and sums beyond int64
)
item = st.tuples(st.sampled_from(CATEGORIES), amounts, st.sampled_from(CURRENCIES), st.booleans())
event = st.tuples(
    st.lists(item, min_size=0, max_size=4),
    st.integers(min_value=-3 * 86400, max_value=3 * 86400),  # seconds from T0
    st.booleans(),
    st.text("abc", min_size=1, max_size=3),
)
rate = st.tuples(
    st.sampled_from(["IRR", "EUR"]),
    st.integers(min_value=-2 * 86400, max_value=2 * 86400),
    st.text("ab", min_size=1, max_size=2),
    st.sampled_from([1.0, 3.0, 0.7, 1_000_000.0, 42_137.5]),
)


def rate_book(rates) -> RateBook:
    book = RateBook()
    for currency, shift, event_id, value in rates:
        book.add(currency, T0.timestamp() + shift, event_id, value)
    return book


def declaration(n: int, items, shift: int, _flag: bool, who: str) -> c.Declaration:
    return c.Declaration(
        event_id=f"d{n}", event_time=T0 + timedelta(seconds=shift), schema_version=1,
        crossing_id=f"x{n}", traveller_id=who, border_post="MEH", destination_country="IQ",
        items=[c.DeclaredItem(category=k, quantity=1, value=a, currency=cur,
                              purpose="resale" if r else "personal") for k, a, cur, r in items],
    )


def inspection(n: int, items, shift: int, flag: bool, who: str) -> c.Inspection:
    return c.Inspection(
        event_id=f"i{n}", event_time=T0 + timedelta(seconds=shift), schema_version=1,
        crossing_id=f"x{n}", traveller_id=who, border_post="MEH",
        selection="random" if flag else "targeted", selection_probability=0.02 if flag else None,
        declared=flag,
        items=[c.InspectedItem(category=k, quantity=1, assessed_value=a, currency=cur)
               for k, a, cur, _ in items],
    )


def export(n: int, items, shift: int, flag: bool, who: str) -> c.FormalExport:
    codes = ["570110", "080251", "690900", "711319"]  # handicraft headings and one that is not
    return c.FormalExport(
        event_id=f"e{n}", event_time=T0 + timedelta(seconds=shift), schema_version=1,
        declaration_id=f"d{n}", exporter_id=who, border_post="BND", destination_country="AE",
        items=[c.ExportItem(hs_code=codes[(j + flag) % 4], quantity=1, value=a, currency=cur)
               for j, (_, a, cur, _) in enumerate(items)],
    )


@settings(max_examples=300, deadline=None)
@given(st.lists(event, max_size=12), st.lists(rate, max_size=6))
def test_many_at_once_equals_one_by_one(events, rates):
    book = rate_book(rates)
    declarations = [declaration(n, *e) for n, e in enumerate(events)]
    inspections = [inspection(n, *e) for n, e in enumerate(events)]
    assert priced_declarations(declarations, book) == [priced_declaration(d, book) for d in declarations]
    assert priced_inspections(inspections, book) == [priced_inspection(i, book) for i in inspections]
    exports = [export(n, *e) for n, e in enumerate(events)]
    assert formal_exports_seen(exports, book) == [formal_export_seen(e, book) for e in exports]


def test_the_vector_form_is_taken_and_counts_every_case():
    """Not only the fallback: an archive-like mix takes the numpy path and gives
    unpriced events (no AED rate, IRR before its first rate) and summed categories."""
    book = rate_book([("IRR", 0, "r", 1_000_000.0)])
    events = [
        ([("carpet", 90_000_000.0, "IRR", True), ("carpet", 20.5, "USD", False)], 10, True, "t"),
        ([("kilim", 1.0, "AED", False)], 10, False, "t"),
        ([("kilim", 5.0, "IRR", False)], -10, False, "t"),
        ([], 0, False, "t"),
    ]
    declarations = [declaration(n, *e) for n, e in enumerate(events)]
    vector = crossings._cents_by_category_many(
        [[(i.category, i.value, i.currency) for i in d.items] for d in declarations],
        [d.event_time.timestamp() for d in declarations], book)
    assert vector is not None and vector == [p and p.declared_cents for p in
                                             (priced_declaration(d, book) for d in declarations)]
    got = priced_declarations(declarations, book)
    carpet = CATEGORIES.index("carpet")
    assert got[0].declared_cents[carpet] == 9000 + 2050 and got[0].resale
    assert got[1] is None and got[2] is None
    assert got[3].declared_cents == (0,) * len(CATEGORIES) and not got[3].resale


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text("ab", max_size=3), max_size=40))
def test_first_distinct_by_hash_equals_polars(values):
    import polars as pl

    from streams.pipeline.archive import _first_distinct

    series = pl.Series(values, dtype=pl.String)
    assert _first_distinct(series).to_list() == series.is_first_distinct().to_list()
