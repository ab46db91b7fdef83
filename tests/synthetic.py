"""A small synthetic population of crossings, for tests and quick coverage checks.

Not the project's simulator (``streams/simulation/simulator.py``): this draws observations directly
in the estimators' types, with a known truth, so estimator properties can be checked
without the contract, FX or the join. Values are log-normal (heavy-tailed for carpets),
declarers under-declare and omit categories, random inspections are Bernoulli with a
per-post probability, targeted ones pick high carriers.

>>> obs, truth = synthetic_world(seed=1, weeks=2, posts=("IKA", "MEH"), scale=0.01)
>>> len(obs) > 0 and set(truth) >= {"2026-W01"}
True
"""

from __future__ import annotations

import numpy as np

from estimators.observations import (
    DeclarationSeen,
    DepartureSeen,
    InspectionSeen,
    Stratum,
)
from estimators.reference import CATEGORIES, DESTINATION_REGIONS

__all__ = ["synthetic_world"]

C = len(CATEGORIES)
# log-normal (mu, sigma) of dollars carried, given the category is carried
_MU = np.log([900, 300, 120, 80, 100, 250, 60, 40])
_SIGMA = np.array([1.3, 0.9, 0.8, 0.7, 0.8, 1.1, 0.7, 0.6])
_CARRY = np.array([0.04, 0.05, 0.10, 0.08, 0.05, 0.05, 0.04, 0.03])


def synthetic_world(
    seed: int = 0,
    weeks: int = 12,
    posts: tuple[str, ...] = ("IKA", "MHD", "BND", "MEH", "BAZ"),
    scale: float = 0.05,
    p_inspect: float = 0.03,
    first_week: int = 1,
):
    """Observations (list, in a random order) and truth ``{week: cents, (week, c): cents}``."""
    rng = np.random.default_rng(seed)
    obs = []
    truth: dict = {}
    key = 0
    for t in range(weeks):
        week = f"2026-W{first_week + t:02d}"
        season = 1.0 + 0.3 * np.sin(2 * np.pi * t / 26)
        for pi, post in enumerate(posts):
            for group in ("resident", "visitor"):
                s = Stratum(week, post, group)
                n = rng.poisson(20000 * scale * (2.0 if group == "visitor" else 1.0) * (1 + pi % 3))
                carry_boost = 2.0 if group == "visitor" else 1.0
                p = p_inspect * (0.5 + pi % 2)
                regions = rng.choice(len(DESTINATION_REGIONS), size=n, p=[0.4, 0.2, 0.15, 0.15, 0.1])
                carries = rng.random((n, C)) < _CARRY * carry_boost * season
                values = np.where(
                    carries, np.exp(rng.normal(_MU, _SIGMA, size=(n, C))), 0.0
                )
                cents = np.round(values * 100).astype(np.int64)
                declares = rng.random(n) < np.where(cents.sum(1) > 50_000, 0.6, 0.2)
                frac = rng.uniform(0.3, 0.9, size=(n, C))
                omit = rng.random((n, C)) < 0.3
                declared = np.where(declares[:, None] & ~omit, np.round(cents * frac), 0).astype(np.int64)
                random_pick = rng.random(n) < p
                targeted = (~random_pick) & (cents.sum(1) > 200_000) & (rng.random(n) < 0.1)
                truth[week] = truth.get(week, 0) + int(cents.sum())
                for c in range(C):
                    truth[(week, c)] = truth.get((week, c), 0) + int(cents[:, c].sum())
                for i in range(n):
                    reg = DESTINATION_REGIONS[regions[i]]
                    obs.append(DepartureSeen(s, reg))
                    dc = tuple(int(v) for v in declared[i])
                    if declares[i]:
                        obs.append(DeclarationSeen(s, reg, dc))
                    if random_pick[i] or targeted[i]:
                        key += 1
                        obs.append(
                            InspectionSeen(
                                s,
                                reg,
                                int(rng.integers(0, 2**63)) * 2 + key % 2,
                                bool(random_pick[i]),
                                p if random_pick[i] else None,
                                bool(declares[i]),
                                tuple(int(v) for v in cents[i]),
                                dc if declares[i] else (0,) * C,
                            )
                        )
    order = rng.permutation(len(obs))
    return [obs[i] for i in order], truth
