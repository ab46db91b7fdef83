"""The robust estimator's unit-by-unit state (merge laws), its shift (a single heavy load of
large weight no longer counts in full; no shift in a large sample without one), and the
synthetic-model error of region rows."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from estimators.estimate import estimate_weeks
from estimators.observations import DepartureSeen, InspectionSeen, Stratum
from estimators.reference import CATEGORIES
from estimators.state import WEIGHT_SCALE, SampleState, StratumState, TopLoads

C = len(CATEGORIES)

units = st.lists(
    st.tuples(
        st.integers(0, 2**64 - 1),  # unit key
        st.sampled_from([1000, 3333, 20000, 200000]),  # quantised weight
        st.tuples(*[st.one_of(st.just(0), st.integers(0, 10**7))] * C),
    ),
    max_size=30,
)


def top_of(us) -> TopLoads:
    t = TopLoads()
    for key, w, a in us:
        t.update(key, w, a)
    return t


@settings(max_examples=80, deadline=None)
@given(units, st.data())
def test_top_loads_any_partition_any_order_equals_the_whole(us, data):
    k = data.draw(st.integers(1, 5))
    labels = data.draw(st.lists(st.integers(0, k - 1), min_size=len(us), max_size=len(us)))
    parts = [top_of([u for u, lab in zip(us, labels) if lab == i]) for i in range(k)]
    order = data.draw(st.permutations(range(k)))
    merged = TopLoads()
    for i in order:
        merged = merged + parts[i]
    whole = top_of(us)
    assert merged == whole
    # and the whole is the top k of the multiset by (w - 1) A, with the largest weight
    brute = sorted(
        (((w - WEIGHT_SCALE) * sum(a), key, w, tuple(a)) for key, w, a in us if sum(a) > 0), reverse=True
    )[: whole.k]
    assert list(whole.entries) == brute
    assert whole.w_max == max((w for _, w, _ in us), default=0)


@settings(max_examples=40, deadline=None)
@given(units, units, units)
def test_top_loads_merge_is_associative_and_commutative(x, y, z):
    a, b, c = top_of(x), top_of(y), top_of(z)
    assert (a + b) + c == a + (b + c)
    assert a + b == b + a


S = Stratum("2026-W07", "MEH", "resident")


def _world(n: int, p: float, heavy: bool, seed: int = 1):
    """``n`` departures to Iraq, each inspected at random with probability ``p``; loads
    mostly small, and (``heavy``) one inspected traveller carrying $60,000."""
    g = np.random.default_rng(seed)
    st_ = StratumState()
    truth = 0
    first = True
    for i in range(n):
        st_.update(DepartureSeen(S, "iraq"))
        load = int(g.choice([0, 0, 2_000, 20_000]))
        inspected = g.random() < p
        if heavy and inspected and first:
            load, first = 6_000_000, False
        truth += load
        if inspected:
            st_.update(InspectionSeen(S, "iraq", i, True, p, False, (load,) + (0,) * (C - 1), (0,) * C))
    return {S: st_}, truth / 100


def _total(states, **kw) -> float:
    return estimate_weeks(states, min_sample=5, min_category=2, **kw).filter(domain="total")["estimate_usd"][0]


def test_one_heavy_load_of_large_weight_no_longer_counts_in_full():
    states, truth = _world(4000, 0.02, heavy=True)
    plain, cb, full, gap = (_total(states, robust=r) for r in ("none", "cb", "cb-full", "gap"))
    assert abs(cb - truth) < abs(plain - truth)
    assert abs(gap - truth) < abs(plain - truth)
    assert full < cb < plain


def test_the_shift_vanishes_as_the_sample_grows():
    """Design consistency: without a dominant unit, the relative shift falls with n."""
    for robust in ("cb", "gap"):
        shifts = []
        for n, p in ((400, 0.1), (20000, 0.5)):
            states, _ = _world(n, p, heavy=False, seed=3)
            plain, rb = _total(states), _total(states, robust=robust)
            shifts.append(abs(rb - plain) / plain)
        assert shifts[1] <= shifts[0]
        assert shifts[1] < 0.002


def test_robust_replicates_are_finite_and_the_interval_holds_the_estimate():
    states, _ = _world(4000, 0.02, heavy=True)
    for robust in ("cb", "gap"):
        out = estimate_weeks(states, min_sample=5, min_category=2, robust=robust)
        row = out.filter(domain="total").row(0, named=True)
        assert np.isfinite(row["std_error_usd"]) and row["std_error_usd"] > 0
        assert row["ci_low_usd"] < row["estimate_usd"] < row["ci_high_usd"]
        # categories, posts and regions still add up to the total
        for d in ("category", "border_post", "destination_region"):
            assert abs(out.filter(domain=d)["estimate_usd"].sum() - row["estimate_usd"]) < 1e-6 * row["estimate_usd"]


def test_region_rows_carry_the_regions_own_departure_from_the_stratum_model():
    """Two regions with very different loads share the stratum's coefficients: the region
    rows' standard errors gain the between-region term; the total's does not change."""
    g = np.random.default_rng(5)
    st_ = StratumState()
    for i in range(3000):
        region = "iraq" if i % 2 else "gulf"
        st_.update(DepartureSeen(S, region))
        if g.random() < 0.1:
            load = int(g.integers(50_000, 150_000)) if region == "iraq" else int(g.integers(0, 2_000))
            st_.update(InspectionSeen(S, region, i, True, 0.1, False, (load,) + (0,) * (C - 1), (0,) * C))
    states = {S: st_}
    on = estimate_weeks(states, min_sample=5, min_category=2)
    off = estimate_weeks(states, min_sample=5, min_category=2, synthetic_error=False)
    j = on.join(off, on=["week", "domain", "key"], suffix="_off")
    reg = j.filter(domain="destination_region")
    assert (reg["std_error_usd"] > reg["std_error_usd_off"]).all()
    assert (j["estimate_usd"] == j["estimate_usd_off"]).all()
    tot = j.filter(domain="total").row(0, named=True)
    assert tot["std_error_usd"] == tot["std_error_usd_off"]


def test_sample_state_keeps_the_top_loads_of_its_non_declarers_only():
    s = SampleState()
    s.update(InspectionSeen(S, "iraq", 1, True, 0.01, True, (9_000_000,) + (0,) * (C - 1), (1,) + (0,) * (C - 1)))
    s.update(InspectionSeen(S, "iraq", 2, True, 0.5, False, (5_000,) + (0,) * (C - 1), (0,) * C))
    s.update(InspectionSeen(S, "iraq", 3, False, None, False, (9_000_000,) + (0,) * (C - 1), (0,) * C))
    assert [e[1] for e in s.top_loads.entries] == [2]
    assert s.top_loads.w_max == 2000


def test_a_week_without_its_own_inspections_carries_its_pools_error():
    """Item 4: the week's interval includes the error of the coefficients it shares with
    its neighbours (replicates resample units, not weeks), and is never of zero width."""
    g = np.random.default_rng(11)
    states = {}
    for w, week in enumerate(("2026-W10", "2026-W11", "2026-W12")):
        s = Stratum(week, "MEH", "resident")
        st_ = StratumState()
        for i in range(2000):
            st_.update(DepartureSeen(s, "iraq"))
            if week != "2026-W11" and g.random() < 0.05:
                load = int(g.choice([0, 0, 3_000, 300_000]))
                st_.update(InspectionSeen(s, "iraq", w * 10_000 + i, True, 0.05, False,
                                          (load,) + (0,) * (C - 1), (0,) * C))
        states[s] = st_
    out = estimate_weeks(states, min_sample=5, min_category=2).filter(domain="total", week="2026-W11").row(0, named=True)
    assert out["n_inspected"] == 0
    boot = (out["std_error_usd"] ** 2 - out["prediction_se_usd"] ** 2) ** 0.5
    assert boot > 0.05 * out["estimate_usd"]  # the shared coefficient's own error
    assert out["ci_low_usd"] < out["estimate_usd"] < out["ci_high_usd"]


def test_post_weeks_carry_the_weeks_own_departure_from_their_pool():
    """Weeks whose loads differ share +-2-week coefficients: the post rows' standard errors
    gain the between-week term (and never lose anything); totals and points are unchanged."""
    g = np.random.default_rng(7)
    states = {}
    for w, (week, scale) in enumerate((("2026-W10", 1), ("2026-W11", 20), ("2026-W12", 1), ("2026-W13", 20))):
        s = Stratum(week, "MEH", "resident")
        st_ = StratumState()
        for i in range(1500):
            st_.update(DepartureSeen(s, "iraq"))
            if g.random() < 0.1:
                load = int(g.integers(0, 5_000)) * scale
                st_.update(InspectionSeen(s, "iraq", w * 10_000 + i, True, 0.1, False,
                                          (load,) + (0,) * (C - 1), (0,) * C))
        states[s] = st_
    on = estimate_weeks(states, min_sample=5, min_category=2)
    off = estimate_weeks(states, min_sample=5, min_category=2, week_error=False)
    j = on.join(off, on=["week", "domain", "key"], suffix="_off")
    post = j.filter(domain="border_post")
    assert (post["std_error_usd"] > post["std_error_usd_off"]).all()
    assert (j["estimate_usd"] == j["estimate_usd_off"]).all()
    tot = j.filter(domain="total")
    assert (tot["std_error_usd"] == tot["std_error_usd_off"]).all()
