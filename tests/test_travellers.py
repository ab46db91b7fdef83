"""Traveller facts per departure (trips in 90 days, tourist-card spend in the 14 days before)
and the frequency post-strata of ``suitcase estimate --traveller-strata``: against
brute-force loops, end to end on simulated archives, and the default left unchanged."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from estimators import Tables
from estimators.observations import DeclarationSeen, DepartureSeen, InspectionSeen, Stratum
from streams.pipeline.travellers import CLASSES, card_cents, traveller_codes, trip_class, trips_90d
from tests.test_estimators import observations

DAY = 86_400.0

times = st.one_of(
    st.integers(0, 200).map(lambda d: d * DAY),  # whole days: many ties at the window ends
    st.floats(0, 200 * DAY, allow_nan=False),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), times), max_size=40),
       st.lists(st.tuples(st.integers(0, 5), times, st.integers(-10**9, 10**9)), max_size=40))
def test_window_sums_equal_a_loop_per_traveller(deps, pays):
    code = np.array([c for c, _ in deps], dtype=np.int64)
    at = np.array([t for _, t in deps], dtype=float)
    pc = np.array([c for c, _, _ in pays], dtype=np.int64)
    pt = np.array([t for _, t, _ in pays], dtype=float)
    pv = np.array([v for _, _, v in pays], dtype=np.int64)
    trips = trips_90d(code, at)
    around = trips_90d(code, at, 90.0)
    card = card_cents(code, at, pc, pt, pv)
    for i, (c, t) in enumerate(deps):
        assert trips[i] == sum(1 for c2, t2 in deps if c2 == c and t - 90 * DAY < t2 <= t)
        assert around[i] == sum(1 for c2, t2 in deps if c2 == c and t - 90 * DAY < t2 <= t + 90 * DAY)
        assert card[i] == sum(v for c2, t2, v in pays if c2 == c and t - 14 * DAY <= t2 < t)
    assert [CLASSES[k] for k in trip_class(trips)] == [
        "1" if n == 1 else "2-4" if n <= 4 else "5+" for n in trips.tolist()]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(-1, 6), st.integers(0, 40 * 86_400), st.integers(-10**12, 10**12)), max_size=60),
       st.lists(st.tuples(st.integers(-1, 6), st.integers(0, 40 * 86_400)), max_size=30), st.booleans())
def test_whole_second_sums_equal_the_merged_sort(data, queries, data_first):
    """The one-sort path (whole seconds) and the merged sort give the same integers."""
    from streams.pipeline.travellers import _before, _before_merged

    dc, dt, dw = (np.array([x[k] for x in data], dtype=np.int64) for k in range(3))
    qc, qt = (np.array([x[k] for x in queries], dtype=np.int64) for k in range(2))
    fast = _before(qc, qt.astype(float), dc, dt.astype(float), dw, data_first)
    merged = _before_merged(qc, qt.astype(float), dc, dt.astype(float), dw, data_first)
    assert fast.tolist() == merged.tolist()  # both count the data of every lower code too


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(["a", "b", "t-1", "t-2", ""]), max_size=12),
       st.lists(st.one_of(st.none(), st.sampled_from(["a", "b", "z"])), max_size=12))
def test_traveller_codes_are_one_code_per_id_across_columns(x, y):
    cx, cy = traveller_codes(pl.Series(x, dtype=pl.String), pl.Series(y, dtype=pl.String))
    ids = x + y
    codes = cx.tolist() + cy.tolist()
    for i in range(len(ids)):
        for j in range(len(ids)):
            if ids[i] is not None and ids[j] is not None:
                assert (ids[i] == ids[j]) == (codes[i] == codes[j])
    assert all(c == -1 for i, c in zip(ids, codes) if i is None)


# ------------------------------------------------------------ merge laws of the post-strata

def _with_classes(obs, k):
    """An observation with a frequency class in its stratum's group."""
    if isinstance(obs, (DepartureSeen, DeclarationSeen, InspectionSeen)):
        s = obs.stratum
        return obs._replace(stratum=Stratum(s.week, s.border_post, f"{s.group}|{CLASSES[k % 3]}"))
    return obs


def _tables(obs) -> Tables:
    t = Tables()
    t.update_many(obs)
    return t


@settings(max_examples=40, deadline=None)
@given(observations, observations, st.lists(st.integers(0, 2), min_size=80, max_size=80))
def test_collapsed_post_strata_equal_the_unsplit_tables_under_any_split(x, y, classes):
    """Collapsing the frequency classes gives the states without them, whatever the
    partition of the observations and the order of merging."""
    xs = [_with_classes(o, k) for o, k in zip(x, classes)]
    ys = [_with_classes(o, k) for o, k in zip(y, classes[40:])]
    whole = _tables(x + y)
    assert _tables(xs + ys).collapsed() == whole
    assert (_tables(ys) + _tables(xs)).collapsed() == whole
    assert _tables(xs).collapsed() + _tables(ys).collapsed() == whole


# ------------------------------------------------------------------ archives end to end

@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    """A small faulty world (duplicates, late and malformed lines) with repeat traders."""
    from streams.simulation.simulator import WorldConfig, simulate

    out = tmp_path_factory.mktemp("travellers") / "w"
    simulate(out, WorldConfig(seed=5, weeks=3, scale=0.01, faults=True, traders=20_000, trader_trips_per_year=60.0))
    return out


def _brute_force(archive: Path):
    """(Counter of departures by (stratum with class, region), per-class summary), one
    decoded line at a time with the live path's functions."""
    from streams.pipeline import contract as c
    from streams.pipeline.crossings import departure_stratum, payment_seen
    from streams.pipeline.fx import RateBook

    def events(topic):
        seen = set()
        for raw in (archive / f"{topic}.ndjson").read_bytes().splitlines():
            e = c.decode(topic, raw)
            if type(e) is c.Rejection or e.event_id in seen:
                continue
            seen.add(e.event_id)
            yield e

    rates = RateBook()
    for r in events(c.RATES):
        rates.add(r.currency, r.event_time.timestamp(), r.event_id, r.units_per_usd)
    spend = []
    for p in events(c.PAYMENTS):
        seen = payment_seen(p, rates)
        if seen is not None and seen.card_type == "tourist" and seen.handicraft:
            spend.append((p.traveller_id, p.event_time.timestamp(), seen.amount_cents))
    crossings, deps = set(), []
    for d in events(c.DEPARTURES):
        if d.crossing_id not in crossings:
            crossings.add(d.crossing_id)
            deps.append(d)
    out, summary = Counter(), {k: [0, 0, 0] for k in CLASSES}
    for d in deps:
        t = d.event_time.timestamp()
        n = sum(1 for e in deps if e.traveller_id == d.traveller_id and t - 90 * DAY < e.event_time.timestamp() <= t)
        cls = "1" if n == 1 else "2-4" if n <= 4 else "5+"
        card = sum(v for who, at, v in spend if who == d.traveller_id and t - 14 * DAY <= at < t)
        stratum, region, day = departure_stratum(d)
        out[Stratum(stratum.week, stratum.border_post, f"{stratum.group}|{cls}"), region, day] += 1
        summary[cls][0] += 1
        summary[cls][1] += card != 0
        summary[cls][2] += card
    return out, {k: tuple(v) for k, v in summary.items()}


@pytest.mark.parametrize("workers", [0, 2])
def test_archive_classes_equal_a_loop_over_decoded_lines(archive, workers):
    from streams.pipeline.archive import observe

    got = Counter()

    def sink(o):
        if isinstance(o, DepartureSeen):
            got[o.stratum, o.region, o.day] += 1

    def bulk(stratum, region, day, n):
        got[stratum, region, day] += n

    report = observe(archive, sink, departures=bulk, workers=workers, traveller_strata=True)
    want, summary = _brute_force(archive)
    assert got == want
    assert report.traveller_classes == summary
    assert summary["5+"][0] > 0 and summary["2-4"][0] > 0 and any(v[1] for v in summary.values())


def test_traveller_strata_collapse_to_the_default_tables(archive):
    from streams.pipeline.batch import build_tables

    default, r0 = build_tables(archive)
    split, r1 = build_tables(archive, traveller_strata=True)
    assert r0.tallies == r1.tallies and r0.unpriced == r1.unpriced and r0.traveller_classes is None
    assert {s.group for s in split.strata} <= {f"{g}|{k}" for g in ("resident", "visitor") for k in CLASSES}
    assert split.collapsed() == default
    a, b = default.estimate(), split.estimate()
    assert a.select("week", "domain", "key").equals(b.select("week", "domain", "key"))
    assert a["n_departures"].equals(b["n_departures"])
    # the census is the same; only the float sum over more strata rounds differently
    assert np.allclose(a["declared_usd"].to_numpy(), b["declared_usd"].to_numpy(), rtol=1e-12, atol=0)


def test_cli_flag_is_off_by_default_and_changes_only_what_it_says(archive, tmp_path):
    from typer.testing import CliRunner

    from streams.commands.cli import app, main

    assert main(["estimate", "--events", str(archive), "--out", str(tmp_path / "a.csv")]) == 0
    assert main(["estimate", "--events", str(archive), "--out", str(tmp_path / "b.csv")]) == 0
    assert main(["estimate", "--events", str(archive), "--out", str(tmp_path / "t.csv"), "--traveller-strata"]) == 0
    a, t = (pl.read_csv(tmp_path / f) for f in ("a.csv", "t.csv"))
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    assert a.select("week", "domain", "key", "n_departures").equals(t.select("week", "domain", "key", "n_departures"))
    assert not a["estimate_usd"].equals(t["estimate_usd"])
    assert main(["estimate", "--events", str(archive), "--out", str(tmp_path / "c.csv"), "--traveller-strata",
                 "--traveller-window", "centred"]) == 0
    assert not pl.read_csv(tmp_path / "c.csv")["estimate_usd"].equals(t["estimate_usd"])
    text = " ".join(CliRunner().invoke(app, ["estimate", "--help"], terminal_width=200).output.split())
    assert "--traveller-strata" in text and "live" in text and "Off by default" in text
    assert "--traveller-window" in text


def test_ids_never_reach_the_report_or_the_states(archive):
    from streams.pipeline.batch import build_tables

    tables, report = build_tables(archive, traveller_strata=True)
    ids = {raw.split(b'"traveller_id":"')[1].split(b'"')[0].decode()
           for raw in (archive / "border.departures.ndjson").read_bytes().splitlines() if b'"traveller_id":"' in raw}
    text = repr(report) + repr(sorted(tables.strata))
    assert ids and not any(i in text for i in list(ids)[:500])


def test_a_thin_class_is_learnt_from_its_own_inspections_not_from_everyone():
    """Class 5+ has 3 inspected non-declarers (fewer than min_sample), all carrying $1,000;
    class 1 has 500 carrying $10 each. The class's own mean applies to its 100 departures
    (widened over posts and weeks, never mixed with class 1 while it has inspections)."""
    from estimators.reference import CATEGORIES

    t = Tables()
    C = len(CATEGORIES)
    key = iter(range(1, 10**6))
    for cls, n_dep, n_insp, cents in (("1", 10_000, 500, 1_000), ("5+", 100, 3, 100_000)):
        s = Stratum("2026-W10", "MEH", f"visitor|{cls}")
        for _ in range(n_dep - n_insp):
            t.update(DepartureSeen(s, "iraq"))
        for _ in range(n_insp):
            k = next(key)
            t.update(DepartureSeen(s, "iraq"))
            t.update(InspectionSeen(s, "iraq", k, True, 0.05, False, (cents,) + (0,) * (C - 1), (0,) * C, False, k))
    total = t.estimate().filter(domain="total").row(0, named=True)
    assert total["estimate_usd"] == pytest.approx(100 * 1_000 + 10_000 * 10, rel=1e-9)
    # the same states without classes: one mean for everyone
    one = t.collapsed().estimate().filter(domain="total").row(0, named=True)
    assert one["estimate_usd"] == pytest.approx(10_100 * (500 * 10 + 3 * 1_000) / 503, rel=1e-9)
