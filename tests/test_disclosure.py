"""Disclosure control: the suppression rule, and the bottom-k sketch of distinct travellers."""

from __future__ import annotations

import copy
import pickle

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from estimators.disclosure import DistinctSketch, suppress, traveller_hash


def cells(**columns):
    base = {
        "week": ["2026-W07"] * 5,
        "domain": ["total", "border_post", "border_post", "border_post", "border_post"],
        "key": ["all", "IKA", "MHD", "NOR", "BAZ"],
        "estimate_usd": [1000.0, 500.0, 300.0, 40.0, 160.0],
        "ci_low_usd": [800.0, 400.0, 200.0, 10.0, 100.0],
        "ci_high_usd": [1200.0, 600.0, 400.0, 70.0, 220.0],
        "std_error_usd": [100.0, 50.0, 50.0, 15.0, 30.0],
        "formal_exports_usd": [900.0, 450.0, 250.0, 0.0, 200.0],
        "declared_usd": [300.0, 150.0, 100.0, 10.0, 40.0],
        "n_departures": [200, 100, 60, 5, 35],
        "n_travellers": [150, 70, 50, 4, 26],
        "n_inspected": [30, 12, 9, 1, 8],
    }
    base.update(columns)
    return pl.DataFrame(base)


def test_small_cells_are_blanked_and_explained_totals_kept():
    out = suppress(cells(), k=10, min_inspected=3).to_dicts()
    total, ika, mhd, nor, baz = out
    assert total["estimate_usd"] == 1000.0 and total["suppressed"] is None
    assert nor["suppressed"] == "few_travellers;few_inspected"
    assert all(nor[c] is None for c in ("estimate_usd", "ci_low_usd", "ci_high_usd", "std_error_usd",
                                        "declared_usd"))
    # counts and formal exports stay: they say why, and are not about the cell's travellers
    assert (nor["n_travellers"], nor["n_inspected"], nor["formal_exports_usd"]) == (4, 1, 0.0)
    # one blanked cell in a breakdown would be total minus the others: the smallest other goes too
    assert baz["suppressed"] == "complementary" and baz["estimate_usd"] is None
    assert ika["suppressed"] is None and mhd["suppressed"] is None


def test_reasons_and_thresholds():
    table = cells(n_travellers=[150, 70, 9, 40, 26], n_inspected=[30, 12, 9, 2, 8])
    out = suppress(table, k=10, min_inspected=3, complementary=False)
    assert out["suppressed"].to_list() == [None, None, "few_travellers", "few_inspected", None]
    assert suppress(table, k=5, min_inspected=2)["suppressed"].null_count() == 5
    assert suppress(table, k=100, min_inspected=0, complementary=False)["suppressed"].to_list() == [
        None, "few_travellers", "few_travellers", "few_travellers", "few_travellers"]


def test_empty_cells_are_published():
    table = cells(n_travellers=[150, 70, 50, 0, 26], n_departures=[200, 100, 60, 0, 35],
                  n_inspected=[30, 12, 9, 0, 8], estimate_usd=[1000.0, 500.0, 300.0, 0.0, 160.0])
    out = suppress(table)
    assert out["suppressed"].null_count() == 5 and out["estimate_usd"][3] == 0.0


def test_no_complement_when_two_cells_are_blanked_already():
    table = cells(n_travellers=[150, 70, 5, 4, 26])
    out = suppress(table)
    assert out["suppressed"].to_list() == [None, None, "few_travellers", "few_travellers;few_inspected", None]


def test_complement_is_per_week():
    one = cells()
    other = cells(week=["2026-W08"] * 5, n_travellers=[150, 70, 50, 40, 26], n_inspected=[30, 12, 9, 8, 8])
    out = suppress(pl.concat([one, other]))
    assert out["suppressed"].to_list() == [None, None, None, "few_travellers;few_inspected", "complementary",
                                           None, None, None, None, None]


def test_without_distinct_travellers_departures_bound_them():
    table = cells().drop("n_travellers")
    out = suppress(table, complementary=False)
    assert out["suppressed"].to_list() == [None, None, None, "few_travellers;few_inspected", None]
    with pytest.raises(ValueError):
        suppress(table.drop("n_departures"))


# -- bottom-k sketch -------------------------------------------------------------------------
ids = st.lists(st.text(min_size=1, max_size=6), max_size=40)
capacity = st.integers(min_value=1, max_value=12)


def sketch(travellers, k):
    s = DistinctSketch(k=k)
    for t in travellers:
        s.update(t)
    return s


@given(ids, capacity)
def test_count_is_exact_below_k_and_saturates(travellers, k):
    s = sketch(travellers, k)
    distinct = len(set(travellers))
    assert s.count() == min(distinct, k)
    assert s.saturated == (distinct >= k)
    assert s.describe() == (f">= {k}" if distinct >= k else str(distinct))
    assert len(s.hashes()) <= k and list(s.hashes()) == sorted(s.hashes())


@given(ids, ids, capacity)
def test_a_sees_x_b_sees_y_c_sees_both(x, y, k):
    assert sketch(x, k) + sketch(y, k) == sketch(x + y, k)


@given(ids, ids, ids, capacity)
def test_merge_laws(x, y, z, k):
    a, b, c = sketch(x, k), sketch(y, k), sketch(z, k)
    assert a + b == b + a
    assert (a + b) + c == a + (b + c)
    assert a + a == a
    assert a + DistinctSketch(k=k) == a


@given(ids, capacity, st.randoms())
def test_order_independent(travellers, k, rnd):
    shuffled = list(travellers)
    rnd.shuffle(shuffled)
    assert sketch(travellers, k) == sketch(shuffled, k)


@given(ids, capacity)
def test_state_round_trips(travellers, k):
    s = sketch(travellers, k)
    assert pickle.loads(pickle.dumps(s)) == s
    assert copy.deepcopy(s) == s
    assert DistinctSketch.from_hashes(s.hashes(), k=k) == s
    s2 = s.copy()
    s2.update("someone-new-" + "x" * 7)
    assert s == sketch(travellers, k)  # the copy is independent


def test_no_ids_are_kept():
    s = sketch(["traveller-0042", "traveller-0043"], 10)
    state = pickle.dumps(s)
    assert b"traveller-0042" not in state and "traveller" not in repr(s)
    assert s.hashes() == tuple(sorted([traveller_hash("traveller-0042"), traveller_hash("traveller-0043")]))
    assert all(0 <= h < 2**64 for h in s.hashes())


def test_merge_needs_the_same_k_and_key():
    with pytest.raises(ValueError):
        DistinctSketch(k=3) + DistinctSketch(k=4)
    with pytest.raises(ValueError):
        DistinctSketch(k=3, key=b"a") + DistinctSketch(k=3, key=b"b")
    keyed = DistinctSketch(k=3, key=b"secret")
    keyed.update("t-1")
    assert keyed.hashes() == (traveller_hash("t-1", key=b"secret"),)


def test_sketch_counts_feed_the_rule():
    frequent_trader = ["t-1"] * 12  # twelve crossings, one traveller
    n = sketch(frequent_trader + ["t-2", "t-3"], 10).count()
    table = cells(n_travellers=[150, 70, 50, n, 26], n_departures=[200, 100, 60, 14, 35],
                  n_inspected=[30, 12, 9, 8, 8])
    assert suppress(table)["suppressed"][3] == "few_travellers"


def test_doctests():
    import doctest

    import estimators.disclosure

    assert doctest.testmod(estimators.disclosure).failed == 0
