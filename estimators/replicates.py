"""Deterministic Poisson(1) bootstrap replicate weights, one vector per sampled unit.

A unit's replicate weights depend on its 64-bit ``unit_key`` only, so every worker, every
partition and every replay gives the same unit the same weights, and replicate sums kept
in states merge by addition.

The generator is counter based: replicate ``b`` of unit ``k`` is the SplitMix64 finaliser
of ``k + (b + 1) * 0x9E3779B97F4A7C15`` (mod 2**64), whose top 53 bits give a uniform
``u`` in [0, 1); the weight is the Poisson(1) quantile of ``u`` (inverse CDF). Unlike
``numpy.random.Generator.poisson`` this does not change between numpy versions.

References
----------
Hanley, J. A. and MacGibbon, B. (2006). Creating non-parametric bootstrap samples using
Poisson frequencies. Computer Methods and Programs in Biomedicine 83, 57-62.
Steele, G. L., Lea, D. and Flood, C. H. (2014). Fast splittable pseudorandom number
generators. OOPSLA '14.

Examples
--------
>>> w = poisson_weights(12345, 8)
>>> w.tolist()
[0, 0, 0, 0, 1, 0, 0, 1]
>>> bool((poisson_weights(12345, 2000).mean() - 1) ** 2 < 0.01)
True
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["N_REPLICATES", "poisson_weights", "poisson_weights_many"]

#: Number of bootstrap replicates every state keeps (states merge only if they agree).
N_REPLICATES: int = 200

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
# Poisson(1) CDF for k = 0..24; beyond it the mass is below 1e-25.
_CDF = np.cumsum([math.exp(-1.0) / math.factorial(k) for k in range(25)])


def poisson_weights(unit_key: int, n: int = N_REPLICATES) -> np.ndarray:
    """The ``n`` Poisson(1) replicate weights (int64) of the unit with this key.

    Parameters
    ----------
    unit_key
        Unsigned 64-bit digest of the unit's id (:func:`estimators.observations.unit_key`).
    n
        Number of replicates.
    """
    if not 0 <= unit_key < 2**64:
        raise ValueError(f"unit_key must be an unsigned 64-bit integer, got {unit_key}")
    with np.errstate(over="ignore"):
        counter = np.arange(1, n + 1, dtype=np.uint64)
        z = np.uint64(unit_key) + counter * _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _M1
        z = (z ^ (z >> np.uint64(27))) * _M2
        z = z ^ (z >> np.uint64(31))
    u = (z >> np.uint64(11)).astype(np.float64) * (1.0 / 9007199254740992.0)
    return np.searchsorted(_CDF, u, side="right").astype(np.int64)


def poisson_weights_many(unit_keys, n: int = N_REPLICATES) -> np.ndarray:
    """``poisson_weights`` of many units at once: an int64 array ``(len(unit_keys), n)``,
    row ``i`` equal to ``poisson_weights(unit_keys[i], n)``.

    >>> bool((poisson_weights_many([12345, 7], 8)[0] == poisson_weights(12345, 8)).all())
    True
    """
    keys = list(unit_keys)
    for k in keys:
        if not 0 <= k < 2**64:
            raise ValueError(f"unit_key must be an unsigned 64-bit integer, got {k}")
    with np.errstate(over="ignore"):
        counter = np.arange(1, n + 1, dtype=np.uint64)
        z = np.array(keys, dtype=np.uint64).reshape(-1, 1) + counter * _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _M1
        z = (z ^ (z >> np.uint64(27))) * _M2
        z = z ^ (z >> np.uint64(31))
    u = (z >> np.uint64(11)).astype(np.float64) * (1.0 / 9007199254740992.0)
    return np.searchsorted(_CDF, u, side="right").astype(np.int64).reshape(len(keys), n)
