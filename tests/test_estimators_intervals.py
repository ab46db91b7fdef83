"""Intervals of thin cells and of periods: never a certain value where the sample is thin,
and period totals whose interval carries the error the weeks share."""

from __future__ import annotations

import math

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from estimators import Tables
from estimators.estimate import estimate_period, period_label
from estimators.observations import DeclarationSeen, DepartureSeen, InspectionSeen, Stratum
from tests.synthetic import synthetic_world
from estimators.reference import CATEGORIES, DESTINATION_REGIONS

C = len(CATEGORIES)
WEEKS = ("2026-W10", "2026-W11", "2026-W12")
POSTS = ("IKA", "MEH", "NOR")


@st.composite
def small_worlds(draw):
    """A few strata with a handful of departures and 0-4 random inspections each; loads
    are mostly zero, sometimes one category, sometimes a heavy one."""
    obs = []
    key = 0
    value = st.one_of(st.just(0), st.just(0), st.integers(1, 5_000), st.integers(50_000, 3_000_000))
    for week in draw(st.lists(st.sampled_from(WEEKS), min_size=1, max_size=3, unique=True)):
        for post in draw(st.lists(st.sampled_from(POSTS), min_size=1, max_size=3, unique=True)):
            group = draw(st.sampled_from(("resident", "visitor")))
            s = Stratum(week, post, group)
            n = draw(st.integers(1, 60))
            n_insp = draw(st.integers(0, min(4, n)))
            for i in range(n):
                region = DESTINATION_REGIONS[i % 2]
                obs.append(DepartureSeen(s, region))
                declares = draw(st.booleans()) if i < 6 else False
                cats = draw(st.lists(st.integers(0, C - 1), max_size=2)) if (declares or i < n_insp) else []
                assessed = [0] * C
                for c in cats:
                    assessed[c] += draw(value)
                declared = [a // 2 for a in assessed] if declares else [0] * C
                if declares:
                    obs.append(DeclarationSeen(s, region, tuple(declared)))
                if i < n_insp:
                    key += 1
                    obs.append(InspectionSeen(s, region, key * 7919, True, draw(st.sampled_from((0.05, 0.2, 1.0))),
                                              declares, tuple(assessed), tuple(declared)))
    return obs


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(small_worlds())
def test_no_zero_width_interval_on_a_thin_cell(obs):
    """A cell with uninspected departures and fewer than 3 random inspections is never
    published as a certain value, when anything at all was seen carried in the world."""
    t = Tables()
    for o in obs:
        t.update(o)
    seen = any(isinstance(o, InspectionSeen) and sum(o.assessed_cents) > 0 for o in obs)
    if not seen:
        return
    out = t.estimate()
    thin = out.filter((pl.col("n_inspected") < 3) & (pl.col("n_departures") > pl.col("n_inspected")))
    for row in thin.iter_rows(named=True):
        lo, hi = row["ci_low_usd"], row["ci_high_usd"]
        if lo != lo:  # no interval at all (reported as such), never a certain value
            continue
        assert hi > lo, row


def _tables(obs) -> Tables:
    t = Tables()
    for o in obs:
        t.update(o)
    return t


def test_period_of_one_week_is_that_week():
    obs, _ = synthetic_world(seed=2, weeks=3, posts=("IKA", "MEH"), scale=0.01)
    t = _tables(obs)
    week = t.estimate()["week"][1]
    one = estimate_period(t.strata, t.formal, t.payments, weeks=[week])
    assert one.equals(t.estimate(weeks=[week]).filter(pl.col("week") == week))


def test_period_rows_add_the_weeks_and_carry_their_shared_error():
    """Points and counts add exactly; the interval comes from the summed replicates, so
    weeks sharing pooled coefficients are positively correlated and the period's standard
    error exceeds the independent combination sqrt(sum SE_w^2)."""
    obs, truth = synthetic_world(seed=9, weeks=6, posts=("IKA", "MHD", "MEH"), scale=0.01)
    t = _tables(obs)
    weekly = t.estimate(variance="local")
    period = t.estimate(variance="local", period=True)
    weeks = sorted(set(weekly["week"]))
    assert set(period["week"]) == {period_label(weeks)}
    w = weekly.group_by("domain", "key").agg(
        pl.col("estimate_usd").sum(), pl.col("n_departures").sum(), v=(pl.col("std_error_usd") ** 2).sum()
    )
    j = period.join(w, on=["domain", "key"], suffix="_w")
    assert j.height == period.height
    assert ((j["estimate_usd"] - j["estimate_usd_w"]).abs() <= 1e-6 * (1 + j["estimate_usd_w"])).all()
    assert (j["n_departures"] == j["n_departures_w"]).all()
    tot = j.filter(domain="total").row(0, named=True)
    assert tot["std_error_usd"] > math.sqrt(tot["v"])
    assert tot["ci_low_usd"] < tot["estimate_usd"] < tot["ci_high_usd"]


def test_textbook_period_adds_independent_weekly_variances():
    obs, _ = synthetic_world(seed=9, weeks=3, posts=("IKA", "MEH"), scale=0.01)
    t = _tables(obs)
    weekly = t.textbook().filter(domain="total")
    period = t.textbook(period=True).filter(domain="total")
    assert math.isclose(period["estimate_usd"][0], weekly["estimate_usd"].sum(), rel_tol=1e-9)
    assert math.isclose(period["std_error_usd"][0] ** 2, (weekly["std_error_usd"] ** 2).sum(), rel_tol=1e-9)


def test_suitcase_estimate_period_rows_and_last_week_nowcast(tmp_path):
    """`suitcase estimate --period` adds one row per cell for the whole archive; the last
    week's total row carries the nowcast, the other rows leave it empty."""
    from streams.commands.cli import main
    from streams.simulation.simulator import WorldConfig, simulate

    events = tmp_path / "events"
    simulate(events, WorldConfig(seed=3, weeks=5, scale=0.01))
    out = tmp_path / "estimate.parquet"
    assert main(["estimate", "--events", str(events), "--out", str(out), "--period"]) == 0
    table = pl.read_parquet(out)
    weeks = sorted(w for w in set(table["week"]) if ".." not in w)
    period = table.filter(pl.col("week") == period_label(weeks))
    assert period.filter(domain="total").height == 1
    weekly_total = table.filter(pl.col("week").is_in(weeks), domain="total")["estimate_usd"].sum()
    assert math.isclose(period.filter(domain="total")["estimate_usd"][0], weekly_total, rel_tol=1e-9)
    has = table.filter(pl.col("nowcast_usd").is_not_null())
    assert has.select("week", "domain").rows() == [(weeks[-1], "total")]
    row = has.row(0, named=True)
    assert row["nowcast_ci_low_usd"] <= row["nowcast_usd"] <= row["nowcast_ci_high_usd"]
    # a small simulated world: no thin cell with uninspected departures is certain
    thin = table.filter((pl.col("n_inspected") < 3) & (pl.col("n_departures") > pl.col("n_inspected")))
    assert thin.height > 0
    assert (thin["ci_high_usd"] > thin["ci_low_usd"]).all()
