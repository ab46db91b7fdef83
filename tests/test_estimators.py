"""Estimator states: merge laws, order/partition invariance, round-trips, estimates add up."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from estimators import (
    COLUMNS,
    CensusState,
    DeclarationSeen,
    DepartureSeen,
    FormalExports,
    FormalExportSeen,
    InspectionSeen,
    PaymentSeen,
    SampleState,
    Stratum,
    StratumState,
    Tables,
    WeekPayments,
    estimate_weeks,
    textbook_weeks,
)
from estimators.replicates import N_REPLICATES, poisson_weights
from estimators.state import quantised_weight
from tests.synthetic import synthetic_world
from estimators.reference import BORDER_POSTS, CATEGORIES, DESTINATION_REGIONS

C = len(CATEGORIES)

weeks = st.sampled_from(["2026-W05", "2026-W06", "2026-W07"])
posts = st.sampled_from(["IKA", "MEH", "BND"])
groups = st.sampled_from(["resident", "visitor"])
strata = st.builds(Stratum, weeks, posts, groups)
regions = st.sampled_from(DESTINATION_REGIONS)
cents = st.tuples(*[st.integers(0, 5_000_000)] * C)
sparse_cents = st.one_of(st.just((0,) * C), cents)

departures = st.builds(DepartureSeen, strata, regions, st.integers(0, 6))
traveller_keys = st.integers(0, 40)  # few distinct travellers, so repeats happen
declarations = st.builds(DeclarationSeen, strata, regions, sparse_cents, st.booleans(), traveller_keys)


@st.composite
def inspections(draw):
    random = draw(st.booleans())
    declared = draw(st.booleans())
    return InspectionSeen(
        draw(strata),
        draw(regions),
        draw(st.integers(0, 2**64 - 1)),
        random,
        draw(st.sampled_from([0.01, 0.05, 0.3, 1.0])) if random else None,
        declared,
        draw(sparse_cents),
        draw(sparse_cents) if declared else (0,) * C,
        declared and draw(st.booleans()),
        draw(traveller_keys),
    )


payments = st.builds(
    PaymentSeen, weeks, st.sampled_from(["tourist", "domestic"]), st.booleans(),
    st.integers(-1_000_000, 1_000_000),
)
formals = st.builds(FormalExportSeen, weeks, posts, regions, cents)
observations = st.lists(
    st.one_of(departures, declarations, inspections(), payments, formals), max_size=40
)


def tables_of(obs) -> Tables:
    t = Tables()
    for o in obs:
        t.update(o)
    return t


# ------------------------------------------------------------------ merge laws


@settings(max_examples=40, deadline=None)
@given(observations, observations, observations)
def test_merge_is_associative_and_commutative(x, y, z):
    a, b, c = tables_of(x), tables_of(y), tables_of(z)
    assert (a + b) + c == a + (b + c)
    assert a + b == b + a


@settings(max_examples=40, deadline=None)
@given(observations, st.data())
def test_any_partition_merged_equals_the_whole(obs, data):
    k = data.draw(st.integers(1, 5))
    labels = data.draw(st.lists(st.integers(0, k - 1), min_size=len(obs), max_size=len(obs)))
    parts = [tables_of([o for o, lab in zip(obs, labels) if lab == i]) for i in range(k)]
    merged = Tables()
    for p in parts:
        merged += p
    assert merged == tables_of(obs)


@settings(max_examples=40, deadline=None)
@given(observations, st.randoms(use_true_random=False))
def test_update_order_does_not_matter(obs, rnd):
    shuffled = list(obs)
    rnd.shuffle(shuffled)
    assert tables_of(shuffled) == tables_of(obs)


def test_merge_a_sees_x_b_sees_y_c_sees_both():
    obs, _ = synthetic_world(seed=3, weeks=2, posts=("IKA", "MEH"), scale=0.01)
    half = len(obs) // 2
    a, b, c = tables_of(obs[:half]), tables_of(obs[half:]), tables_of(obs)
    assert a + b == c
    a += b
    assert a == c


# ------------------------------------------------------------------ round-trips


def _filled(cls):
    s = Stratum("2026-W07", "IKA", "visitor")
    obj = cls()
    z = (0,) * (C - 1)
    if cls is CensusState:
        obj.update(DepartureSeen(s, "gulf"))
        obj.update(DeclarationSeen(s, "gulf", (100,) + z))
    elif cls is SampleState:
        obj.update(InspectionSeen(s, "gulf", 5, True, 0.05, True, (300,) + z, (100,) + z))
        obj.update(InspectionSeen(s, "iraq", 6, True, 0.05, False, (0, 50) + z[1:], (0,) * C))
        obj.update(InspectionSeen(s, "iraq", 7, False, None, False, (900,) + z, (0,) * C))
    elif cls is StratumState:
        obj.update(DepartureSeen(s, "gulf"))
        obj.update(InspectionSeen(s, "gulf", 5, True, 0.05, True, (300,) + z, (100,) + z))
    elif cls is FormalExports:
        obj.update(FormalExportSeen("2026-W07", "BAZ", "turkey_caucasus", (1,) * C))
    elif cls is WeekPayments:
        obj.update(PaymentSeen("2026-W07", "tourist", True, 123))
    elif cls is Tables:
        obj.update(DepartureSeen(s, "gulf"))
        obj.update(PaymentSeen("2026-W07", "tourist", True, 123))
    return obj


STATE_CLASSES = [CensusState, SampleState, StratumState, FormalExports, WeekPayments, Tables]


@pytest.mark.parametrize("cls", STATE_CLASSES, ids=lambda c: c.__name__)
@pytest.mark.parametrize("filled", [False, True], ids=["empty", "filled"])
def test_pickle_copy_repr_round_trip(cls, filled):
    obj = _filled(cls) if filled else cls()
    for clone in (pickle.loads(pickle.dumps(obj)), copy.copy(obj), copy.deepcopy(obj)):
        assert clone == obj
        assert repr(clone) == repr(obj)
        assert type(clone) is cls
    assert repr(obj).startswith(cls.__name__ + "(")
    # a deep copy is independent of the original
    clone = copy.deepcopy(obj)
    clone += _filled(cls)
    assert clone != obj


@pytest.mark.parametrize("cls", STATE_CLASSES, ids=lambda c: c.__name__)
def test_add_does_not_mutate_operands(cls):
    a, b = _filled(cls), _filled(cls)
    a0, b0 = copy.deepcopy(a), copy.deepcopy(b)
    a + b
    assert a == a0 and b == b0


# ------------------------------------------------------------------ inputs


def test_bad_inputs_are_refused():
    s = Stratum("2026-W07", "IKA", "visitor")
    st_ = StratumState()
    with pytest.raises(ValueError):
        st_.update(DepartureSeen(s, "mars"))
    for day in (7, -1, True, 2.0):
        with pytest.raises(ValueError):
            st_.update(DepartureSeen(s, "gulf", day))
        with pytest.raises(ValueError):
            st_.census.add_departures("gulf", 3, day)
    with pytest.raises(ValueError):
        st_.update(DeclarationSeen(s, "gulf", (1,) * (C - 1)))
    with pytest.raises(ValueError):
        st_.update(DeclarationSeen(s, "gulf", (-1,) + (0,) * (C - 1)))
    with pytest.raises(ValueError):
        st_.update(InspectionSeen(s, "gulf", 1, True, 0.0, False, (0,) * C, (0,) * C))
    with pytest.raises(ValueError):
        st_.update(InspectionSeen(s, "gulf", -1, True, 0.5, False, (0,) * C, (0,) * C))
    assert st_ == StratumState()


def test_weights_are_quantised_deterministically():
    assert quantised_weight(0.05) == 20_000
    assert quantised_weight(1 / 3) == 3_000
    with pytest.raises(ValueError):
        quantised_weight(1.5)


def test_poisson_weights_are_a_pure_function_of_the_key():
    a = poisson_weights(2**64 - 1)
    assert a.dtype == np.int64 and a.shape == (N_REPLICATES,)
    assert np.array_equal(a, poisson_weights(2**64 - 1))
    keys = np.arange(3000)
    w = np.stack([poisson_weights(int(k)) for k in keys])
    assert abs(w.mean() - 1) < 0.01 and abs(w.var() - 1) < 0.02
    # replicates of different units are uncorrelated
    assert abs(np.corrcoef(w[:, 0], w[:, 1])[0, 1]) < 0.05


def test_targeted_inspections_never_move_the_level():
    obs, _ = synthetic_world(seed=4, weeks=3, posts=("IKA", "MEH"), scale=0.01)
    base = tables_of([o for o in obs if not (isinstance(o, InspectionSeen) and not o.random)])
    full = tables_of(obs)
    a, b = base.estimate(), full.estimate()
    assert a["estimate_usd"].to_list() == b["estimate_usd"].to_list()
    assert b.filter(domain="total")["n_targeted"].sum() > 0
    assert a.filter(domain="total")["n_targeted"].sum() == 0


# ------------------------------------------------------------------ estimates


@pytest.fixture(scope="module")
def world():
    obs, truth = synthetic_world(seed=7, weeks=5, posts=("IKA", "MHD", "BND", "MEH"), scale=0.02)
    return obs, truth, tables_of(obs)


@pytest.mark.parametrize("fn", [estimate_weeks, textbook_weeks])
def test_domains_add_up_to_the_total(world, fn):
    _, _, t = world
    out = fn(t.strata, t.formal, t.payments)
    assert tuple(out.columns) == COLUMNS
    for week in out["week"].unique():
        w = out.filter(week=week)
        total = w.filter(domain="total")["estimate_usd"][0]
        for domain in ("category", "border_post", "destination_region"):
            s = w.filter(domain=domain)["estimate_usd"].sum()
            assert s == pytest.approx(total, rel=1e-9), domain
        n = w.filter(domain="total")["n_departures"][0]
        assert w.filter(domain="border_post")["n_departures"].sum() == n
        assert w.filter(domain="destination_region")["n_departures"].sum() == n
        assert (w["ci_low_usd"] <= w["estimate_usd"]).all()
        assert (w["estimate_usd"] <= w["ci_high_usd"]).all()


def test_estimates_do_not_depend_on_order_or_partition(world):
    obs, _, t = world
    rng = np.random.default_rng(0)
    parts = [Tables() for _ in range(3)]
    for i in rng.permutation(len(obs)):
        parts[int(rng.integers(3))].update(obs[i])
    merged = parts[2] + parts[0] + parts[1]
    a, b = t.estimate(), merged.estimate()
    assert a.equals(b)  # to the last digit
    assert t.textbook().equals(merged.textbook())


def test_week_subset_and_alpha(world):
    _, _, t = world
    full = t.estimate()
    one = t.estimate(weeks=["2026-W03"])
    assert one["week"].unique().to_list() == ["2026-W03"]
    assert one.equals(full.filter(week="2026-W03"))
    wide = t.estimate(weeks=["2026-W03"], alpha=0.01)
    assert (wide["ci_high_usd"] >= one["ci_high_usd"]).all()


def test_estimate_is_near_the_truth(world):
    _, truth, t = world
    out = t.estimate().filter(domain="total")
    for row in out.iter_rows(named=True):
        y = truth[row["week"]] / 100
        assert abs(row["estimate_usd"] - y) < 4 * row["std_error_usd"]


def test_pooling_is_reported():
    obs, _ = synthetic_world(seed=5, weeks=3, posts=("IKA", "NOR"), scale=0.005)
    out = tables_of(obs).estimate()
    assert set(out["pooling"]) <= {f"{lv}±2w" for lv in ("post", "mode", "group", "all")} | {"all-weeks"}
    assert out["pooling"].n_unique() >= 1
    assert set(out["method"]) == {"pooled-ratio"}


def test_formal_exports_are_shown_beside_never_added(world):
    _, _, t = world
    fx = {"2026-W02": FormalExports()}
    fx["2026-W02"].update(FormalExportSeen("2026-W02", "IKA", "gulf", (10_000_00,) + (0,) * (C - 1)))
    a = estimate_weeks(t.strata)
    b = estimate_weeks(t.strata, fx)
    assert a["estimate_usd"].equals(b["estimate_usd"])
    row = b.filter(week="2026-W02", domain="category", key="carpet")
    assert row["formal_exports_usd"][0] == 10_000.0
    assert b.filter(week="2026-W02", domain="border_post", key="IKA")["formal_exports_usd"][0] == 10_000.0
    assert b.filter(week="2026-W03", domain="total")["formal_exports_usd"][0] == 0.0


def test_mode_lookup_is_the_contract():
    assert BORDER_POSTS["MEH"]["mode"] == "land" and BORDER_POSTS["IKA"]["mode"] == "air"


# ------------------------------------------------------------------ resale class


def test_resale_declarers_get_their_own_ratio():
    """Personal declarers carry 1.25x, resale declarers 2x what they declare: with a ratio
    per class the estimate is exact whatever the classes' sampling fractions."""
    s = Stratum("2026-W07", "BAZ", "resident")
    z = (0,) * (C - 1)
    t = Tables()
    key = 0
    for resale, n, every, ratio in ((False, 200, 2, 1.25), (True, 40, 10, 2.0)):
        for i in range(n):
            d = 10_000 + 400 * (i % 7)
            key += 1
            t.update(DepartureSeen(s, "turkey_caucasus"))
            t.update(DeclarationSeen(s, "turkey_caucasus", (d,) + z, resale, key))
            if i % every == 0:
                t.update(InspectionSeen(s, "turkey_caucasus", key, True, 1 / every, True,
                                        (round(d * ratio),) + z, (d,) + z, resale, key))
    cen = t.strata[s].census
    assert int(cen.resale_declarations.sum()) == 40
    assert int(cen.resale_declared_cents.sum()) == sum(10_000 + 400 * (i % 7) for i in range(40))
    assert int(t.strata[s].sample.resale_n_declarer.sum()) == 4
    truth = sum(round((10_000 + 400 * (i % 7)) * 1.25) for i in range(200))
    truth += sum(round((10_000 + 400 * (i % 7)) * 2.0) for i in range(40))
    out = t.estimate(min_sample=3, min_category=2).filter(domain="total")
    assert out["estimate_usd"][0] == pytest.approx(truth / 100, rel=1e-9)


def test_resale_class_without_inspections_borrows_from_all_declarers():
    s = Stratum("2026-W07", "BAZ", "resident")
    z = (0,) * (C - 1)
    t = Tables()
    for i in range(50):
        t.update(DepartureSeen(s, "gulf"))
        t.update(DeclarationSeen(s, "gulf", (10_000,) + z, i < 5, i))
        if i % 5 == 1:
            t.update(InspectionSeen(s, "gulf", i, True, 0.2, True, (15_000,) + z, (10_000,) + z, False, i))
    out = t.estimate(min_sample=3, min_category=2).filter(domain="total")
    assert out["estimate_usd"][0] == pytest.approx(50 * 150.0)
    assert out["ci_low_usd"][0] == out["ci_low_usd"][0]  # not NaN


# ------------------------------------------------------------------ distinct travellers


def test_n_travellers_counts_distinct_contributors_per_cell():
    from estimators.state import SKETCH_K

    a, b = Stratum("2026-W07", "IKA", "visitor"), Stratum("2026-W07", "IKA", "resident")
    carpet = (5_000,) + (0,) * (C - 1)
    kilim = (0, 3_000) + (0,) * (C - 2)
    t = Tables()
    for s in (a, b):
        for i in range(6):
            t.update(DepartureSeen(s, "gulf"))
            t.update(DepartureSeen(s, "iraq"))
    # traveller 1 declares carpet in both strata (a frequent trader): counts once
    t.update(DeclarationSeen(a, "gulf", carpet, True, 1))
    t.update(DeclarationSeen(b, "gulf", carpet, True, 1))
    t.update(DeclarationSeen(a, "gulf", (0,) * C, False, 2))  # declares nothing of value
    # traveller 3 inspected at random with kilim; 4 inspected with nothing; 5 targeted
    t.update(InspectionSeen(b, "iraq", 9, True, 0.5, False, kilim, (0,) * C, False, 3))
    t.update(InspectionSeen(b, "iraq", 10, True, 0.5, False, (0,) * C, (0,) * C, False, 4))
    t.update(InspectionSeen(b, "gulf", 11, False, None, False, carpet, (0,) * C, False, 5))
    for fn in (estimate_weeks, textbook_weeks):
        out = fn(t.strata, min_sample=1, min_category=1) if fn is estimate_weeks else fn(t.strata)
        assert "n_travellers" in out.columns and out["n_travellers"].null_count() == 0
        n = {(r["domain"], r["key"]): r["n_travellers"] for r in out.iter_rows(named=True)}
        assert n["total", "all"] == 2 and n["border_post", "IKA"] == 2
        assert n["category", "carpet"] == 1 and n["category", "kilim"] == 1
        assert n["category", "jewelry"] == 0
        assert n["destination_region", "gulf"] == 1 and n["destination_region", "iraq"] == 1
    # saturation: SKETCH_K or more distinct travellers read SKETCH_K ("at least")
    for i in range(100, 100 + 3 * SKETCH_K):
        t.update(DeclarationSeen(a, "gulf", carpet, False, i))
    out = t.estimate(min_sample=1, min_category=1)
    assert out.filter(domain="total")["n_travellers"][0] == SKETCH_K


@settings(max_examples=30, deadline=None)
@given(observations, observations)
def test_traveller_sketches_merge_like_the_union(x, y):
    a, b, c = tables_of(x), tables_of(y), tables_of(x + y)
    for k, st_ in c.strata.items():
        merged = (a.strata.get(k, StratumState()) + b.strata.get(k, StratumState()))
        assert merged.census.travellers == st_.census.travellers
        assert merged.sample.travellers == st_.sample.travellers
        again = merged + merged  # idempotent: the same travellers again add nobody
        assert again.census.travellers == st_.census.travellers


# ------------------------------------------------------------------ bulk updates


def tables_in_bulk(obs, batches: int = 1) -> Tables:
    t = Tables()
    size = max(1, -(-len(obs) // batches))
    for i in range(0, len(obs), size):
        t.update_many(obs[i : i + size])
    return t


def _same_dtypes(a: Tables, b: Tables) -> bool:
    """Bulk states keep each field's dtype (changelog encodings depend on it)."""
    for key, x in a.strata.items():
        y = b.strata[key]
        for half in ("census", "sample"):
            for f in type(getattr(x, half))._FIELDS:
                u, v = getattr(getattr(x, half), f), getattr(getattr(y, half), f)
                if isinstance(u, np.ndarray) and u.dtype != v.dtype:
                    return False
    return True


big_cents = st.tuples(*[st.integers(0, 2**40)] * C)  # second moments beyond int64


@st.composite
def heavy_inspections(draw):
    declared = draw(st.booleans())
    return InspectionSeen(
        draw(strata), draw(regions), draw(st.integers(0, 2**64 - 1)), True,
        draw(st.sampled_from([0.01, 0.3, 1.0])), declared,
        draw(st.one_of(sparse_cents, big_cents)),
        draw(st.one_of(sparse_cents, big_cents)) if declared else (0,) * C,
        declared and draw(st.booleans()), draw(traveller_keys),
    )


bulk_observations = st.lists(
    st.one_of(departures, declarations, inspections(), heavy_inspections(), payments, formals), max_size=60
)


@settings(max_examples=60, deadline=None)
@given(bulk_observations, st.integers(1, 4))
def test_bulk_updates_equal_one_at_a_time(obs, batches):
    one, bulk = tables_of(obs), tables_in_bulk(obs, batches)
    assert bulk == one
    assert _same_dtypes(bulk, one)


@settings(max_examples=30, deadline=None)
@given(bulk_observations, bulk_observations)
def test_bulk_states_obey_the_merge_laws(x, y):
    a, b = tables_in_bulk(x), tables_in_bulk(y)
    assert a + b == b + a == tables_of(x + y) == tables_in_bulk(x + y)


def test_bulk_refuses_what_single_updates_refuse():
    s = Stratum("2026-W07", "IKA", "visitor")
    good = InspectionSeen(s, "gulf", 5, True, 0.5, True, (100,) * C, (50,) * C)
    for bad in (
        DepartureSeen(s, "mars"),
        DeclarationSeen(s, "gulf", (1,) * (C - 1)),
        DeclarationSeen(s, "gulf", (-1,) + (0,) * (C - 1)),
        InspectionSeen(s, "gulf", 1, True, 0.0, False, (0,) * C, (0,) * C),
        InspectionSeen(s, "gulf", -1, True, 0.5, False, (0,) * C, (0,) * C),
    ):
        one, bulk = StratumState(), StratumState()
        with pytest.raises(ValueError):
            for o in (good, bad):
                one.update(o)
        with pytest.raises(ValueError):
            bulk.update_many([good, bad])
        assert bulk == one


def test_bulk_trips_the_replicate_overflow_guard_like_single_updates():
    s = Stratum("2026-W07", "IKA", "visitor")
    huge = InspectionSeen(s, "gulf", 7, True, 0.001, False, (2**50,) * C, (0,) * C)
    one, bulk = StratumState(), StratumState()
    with pytest.raises(OverflowError):
        for _ in range(3):
            one.update(huge)
    with pytest.raises(OverflowError):
        bulk.update_many([huge] * 3)
    assert bulk == one


@given(st.lists(departures, max_size=40), st.lists(st.tuples(regions, st.integers(0, 6), st.integers(0, 5)), max_size=5))
def test_departures_by_day_add_up_to_departures_whichever_way_they_are_counted(deps, bulk):
    """Each departure counts once on its day of the week; bulk counts and bulk updates the same."""
    one, many = CensusState(), CensusState()
    for d in deps:
        one.update(d)
    many.update_many(deps)
    for region, day, n in bulk:
        one.add_departures(region, n, day)
        for _ in range(n):
            many.update(DepartureSeen(Stratum("2026-W07", "IKA", "visitor"), region, day))
    assert one == many
    assert one.departures_by_day.sum() == one.departures.sum() == len(deps) + sum(n for *_, n in bulk)
    for day in range(7):
        assert one.departures_by_day[day] == sum(d.day == day for d in deps) + sum(n for _, k, n in bulk if k == day)
