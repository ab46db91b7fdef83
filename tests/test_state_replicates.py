"""The sample's replicate sums are kept sparse (only rows that are not zero): the same
exact int64 sums as the dense 84 x 200 array, merged by the same laws, and small."""

from __future__ import annotations

import copy
import pickle

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from estimators.estimate import _Rows
from estimators.observations import InspectionSeen, Stratum
from estimators.replicates import N_REPLICATES
from estimators.state import K_ALL, K_D, RES, SampleState
from tests.test_estimators import inspections

C = 8
samples = st.lists(inspections(), max_size=25)


def dense_sum(obs) -> np.ndarray:
    """The replicate sums as the dense reference: one state per inspection, added as arrays."""
    total = np.zeros((K_ALL, N_REPLICATES), dtype=np.int64)
    for o in obs:
        one = SampleState()
        one.update(o)
        total += one.replicates
    return total


def sample_of(obs) -> SampleState:
    s = SampleState()
    for o in obs:
        s.update(o)
    return s


@settings(max_examples=60, deadline=None)
@given(samples)
def test_sparse_rows_are_the_dense_sums(obs):
    s = sample_of(obs)
    rows, values = s.replicate_rows()
    assert s.replicates.dtype == np.int64 and s.replicates.shape == (K_ALL, N_REPLICATES)
    assert np.array_equal(s.replicates, dense_sum(obs))
    assert list(rows) == sorted(set(rows.tolist()))  # sorted, distinct
    assert values.shape == (len(rows), N_REPLICATES) and values.any(1).all()  # no zero row kept
    assert not values.flags.writeable  # shared by copies: never changed in place
    for i in range(K_ALL):
        assert np.array_equal(s.replicate_row(i), s.replicates[i])


@settings(max_examples=40, deadline=None)
@given(samples, samples, samples)
def test_sparse_merge_laws(x, y, z):
    a, b, c = sample_of(x), sample_of(y), sample_of(z)
    assert (a + b) + c == a + (b + c)
    assert a + b == b + a
    assert a + b == sample_of(x + y)
    assert np.array_equal((a + b).replicates, a.replicates + b.replicates)
    assert a + SampleState() == a


@settings(max_examples=40, deadline=None)
@given(samples)
def test_bulk_equals_one_at_a_time_and_copies_stay_apart(obs):
    bulk = SampleState()
    bulk.update_many(obs)
    each = sample_of(obs)
    assert bulk == each
    for clone in (pickle.loads(pickle.dumps(each)), copy.copy(each), copy.deepcopy(each)):
        assert clone == each
    before = copy.deepcopy(each)
    clone = copy.copy(each)
    clone += sample_of(obs)
    assert each == before  # a shallow copy's merge leaves the original alone


@settings(max_examples=40, deadline=None)
@given(samples, st.integers(0, K_D - 1), st.integers(0, K_D))
def test_estimator_row_views_read_the_same_numbers(obs, lo, hi):
    s = sample_of(obs)
    dense = s.replicates
    for view, ref in (
        (_Rows(s), dense),
        (_Rows(s, RES, size=K_D), dense[RES:RES + K_D]),
        (_Rows(s, 0, minus=RES, size=K_D), dense[:K_D] - dense[RES:RES + K_D]),
    ):
        assert np.array_equal(view[lo], ref[lo])
        assert np.array_equal(view[lo:hi], ref[lo:hi])
        assert view.shape == ref.shape


def test_a_typical_stratum_keeps_a_few_rows_not_84():
    """Inspected non-declarers carrying nothing (the common case) touch one row."""
    s = SampleState()
    zero = (0,) * C
    for k in range(50):
        s.update(InspectionSeen(Stratum("2026-W07", "IKA", "visitor"), "gulf", 1000 + k, True, 0.05,
                                False, zero, zero, False, k))
    rows, values = s.replicate_rows()
    assert len(rows) == 1 and values.nbytes == N_REPLICATES * 8
    assert int(s.replicates.sum()) == int(values.sum())
