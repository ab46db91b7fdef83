"""``heavy_resale``: a pool's heavy non-declarer loads allocated between its weeks by the
census of resale declarations (traders crossing), keeping the pool's heavy total."""

from __future__ import annotations

import pytest

from estimators.estimate import estimate_weeks
from estimators.observations import DeclarationSeen, DepartureSeen, InspectionSeen, Stratum
from estimators.reference import CATEGORIES
from estimators.state import StratumState

C = len(CATEGORIES)
Z = (0,) * (C - 1)


def two_weeks():
    """Two alike weeks at one post; only week 10's 40 declarations are for resale."""
    states = {}
    for w, week in enumerate(("2026-W10", "2026-W11")):
        s = Stratum(week, "MEH", "resident")
        st = StratumState()
        resale = week == "2026-W10"
        for i in range(1000):
            st.update(DepartureSeen(s, "iraq"))
            key = w * 10_000 + i
            if i < 40:
                st.update(DeclarationSeen(s, "iraq", (100_000,) + Z, resale))
                if i < 12:
                    st.update(InspectionSeen(s, "iraq", key, True, 0.05, True, (150_000,) + Z, (100_000,) + Z,
                                             resale))
            elif i < 88:  # 48 inspected non-declarers, one of them with a heavy load
                st.update(InspectionSeen(s, "iraq", key, True, 0.05, False,
                                         ((500_000 if i == 40 else 1_000),) + Z, (0,) * C))
        states[s] = st
    return states


def totals(states, **kw):
    out = estimate_weeks(states, min_sample=5, min_category=2, **kw).filter(domain="total")
    return dict(zip(out["week"], out["estimate_usd"]))


def test_heavy_loads_follow_the_weeks_resale_declarations_and_keep_the_pools_total():
    states = two_weeks()
    plain, resale = totals(states), totals(states, heavy_resale=True)
    assert plain["2026-W10"] == pytest.approx(plain["2026-W11"], rel=1e-12)  # alike weeks, one pool
    # week 10 (every trader's declaration) takes the pool's heavy loads, week 11 none
    assert resale["2026-W10"] > plain["2026-W10"] > resale["2026-W11"]
    assert sum(resale.values()) == pytest.approx(sum(plain.values()), rel=1e-9)


def test_without_resale_declarations_anywhere_nothing_changes():
    states = two_weeks()
    for st in states.values():
        st.census.resale_declarations[:] = 0
    assert totals(states, heavy_resale=True) == totals(states)
