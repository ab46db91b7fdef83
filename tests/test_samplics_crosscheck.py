"""The textbook estimator agrees with samplics' TaylorEstimator where the methods coincide.

Per stratum the declarer part is ``D * R`` with ``R`` samplics' ratio of assessed to
declared (HT weights, fpc ``1 - n/N_D``); the non-declarer part is samplics' stratified
total with ``w = M/n`` (then HT total = ``M`` times the weighted mean). The week total and
its standard error from :func:`estimators.textbook_weeks` must match to 1e-6 relative.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from estimators import (
    DeclarationSeen,
    DepartureSeen,
    InspectionSeen,
    Stratum,
    Tables,
    textbook_weeks,
)
from estimators.state import WEIGHT_SCALE, quantised_weight
from estimators.reference import CATEGORIES

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from samplics.estimation import TaylorEstimator
    from samplics.utils.types import PopParam

C = len(CATEGORIES)
WEEK = "2026-W10"


def _world(seed: int):
    """Strata where every declarer declares and every traveller is drawn with p = n/N."""
    rng = np.random.default_rng(seed)
    obs = []
    rows = []  # per inspected unit: stratum, declared?, A, a_c..., d
    census = {}
    key = 0
    for post, group, N_D, M, p in [
        ("IKA", "visitor", 400, 600, 0.05),
        ("IKA", "resident", 300, 500, 0.1),
        ("MEH", "resident", 200, 800, 0.05),
        ("BND", "visitor", 500, 400, 0.2),
    ]:
        s = Stratum(WEEK, post, group)
        n_d, n_0 = int(N_D * p), int(M * p)
        D = 0
        for i in range(N_D):
            a = np.where(rng.random(C) < 0.3, np.round(np.exp(rng.normal(9, 1.2, C))), 0).astype(int)
            a[0] = max(a[0], 1000)
            d = np.round(a * rng.uniform(0.2, 0.9, C)).astype(int)
            obs.append(DepartureSeen(s, "gulf"))
            obs.append(DeclarationSeen(s, "gulf", tuple(int(v) for v in d)))
            D += int(d.sum())
            if i < n_d:
                key += 1
                obs.append(InspectionSeen(s, "gulf", key, True, p, True, tuple(int(v) for v in a), tuple(int(v) for v in d)))
                rows.append((f"{post}{group}", True, a, d))
        for i in range(M):
            a = np.where(rng.random(C) < 0.1, np.round(np.exp(rng.normal(8, 1.0, C))), 0).astype(int)
            obs.append(DepartureSeen(s, "iraq"))
            if i < n_0:
                key += 1
                obs.append(InspectionSeen(s, "iraq", key, True, p, False, tuple(int(v) for v in a), (0,) * C))
                rows.append((f"{post}{group}", False, a, np.zeros(C, int)))
        census[f"{post}{group}"] = dict(N_D=N_D, M=M, D=D, n_d=n_d, n_0=n_0, w=quantised_weight(p) / WEIGHT_SCALE)
    return obs, rows, census


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("category", [None, 0, 3])
def test_textbook_week_total_matches_samplics(seed, category):
    obs, rows, census = _world(seed)
    t = Tables()
    for o in obs:
        t.update(o)
    out = textbook_weeks(t.strata)
    if category is None:
        row = out.filter(domain="total")
    else:
        row = out.filter(domain="category", key=CATEGORIES[category])
    est, se = row["estimate_usd"][0], row["std_error_usd"][0]

    def value(a):
        return float(a.sum() if category is None else a[category])

    total, var = 0.0, 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for h, c in census.items():
            dec = [r for r in rows if r[0] == h and r[1]]
            y = np.array([value(r[2]) for r in dec])
            x = np.array([float(r[3].sum()) for r in dec])
            w = np.full(len(dec), c["w"])
            ratio = TaylorEstimator(PopParam.ratio)
            ratio.estimate(y=y, x=x, samp_weight=w, fpc=1 - c["n_d"] / c["N_D"], remove_nan=True)
            total += c["D"] * ratio.point_est
            var += (c["D"] * ratio.stderror) ** 2
        # non-declarers: stratified total with fpc, one call over all strata
        non = [r for r in rows if not r[1]]
        strata = np.array([r[0] for r in non])
        y = np.array([value(r[2]) for r in non])
        w = np.array([census[h]["M"] / census[h]["n_0"] for h in strata])
        fpc = {h: 1 - census[h]["n_0"] / census[h]["M"] for h in sorted(census)}
        tot = TaylorEstimator(PopParam.total)
        tot.estimate(y=y, samp_weight=w, stratum=strata, fpc=fpc, remove_nan=True)
        total += tot.point_est
        var += tot.stderror**2
    assert est * 100 == pytest.approx(total, rel=1e-6)
    assert se * 100 == pytest.approx(var**0.5, rel=1e-6)
