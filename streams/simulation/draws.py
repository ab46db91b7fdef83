"""Random streams, pseudonymous ids and categorical draws of the simulated world.

Each day, pool and fault model draws from its own stream keyed by (seed, purpose, key), so
that turning faults on, or simulating another window, never shifts the rest of the world;
ids are a seeded bijection of (namespace, day, number), opaque but never colliding.
"""

from __future__ import annotations

import numpy as np

# purposes of the random streams
STREAM_DAY, STREAM_TRADERS, STREAM_FX, STREAM_FAULTS, STREAM_EXPORTERS = 1, 2, 3, 4, 5
# id namespaces (top byte of the key mixed into an id)
(NS_TRAVELLER, NS_CROSSING, NS_TRADER, NS_CARD, NS_TRADER_CARD, NS_DOMESTIC_CARD,
 NS_MERCHANT, NS_EXPORTER, NS_EXPORT, NS_EV_DEP, NS_EV_DECL, NS_EV_INSP, NS_EV_EXP,
 NS_EV_PAY, NS_EV_FAULT) = range(1, 16)


def random_stream(seed: int, stream: int, key: int) -> np.random.Generator:
    """An independent stream per (seed, purpose, key), so days never share random state."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, stream, key])))


def splitmix(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser: a bijection, so distinct keys give distinct opaque ids."""
    x = np.asarray(x, dtype=np.uint64).copy()
    x ^= x >> np.uint64(30)
    x *= np.uint64(0xBF58476D1CE4E5B9)
    x ^= x >> np.uint64(27)
    x *= np.uint64(0x94D049BB133111EB)
    x ^= x >> np.uint64(31)
    return x


def id_key(ns: int, ordinal: int, idx: np.ndarray) -> np.ndarray:
    """Id key: namespace, day and running number, unique across the world."""
    idx = np.asarray(idx, dtype=np.uint64)
    assert idx.size == 0 or int(idx.max()) < 1 << (24 if ordinal else 56), "id space exhausted"
    return (np.uint64(ns) << np.uint64(56)) | (np.uint64(ordinal) << np.uint64(24)) | idx


def pseudonyms(prefix: str, keys: np.ndarray, salt: np.uint64) -> np.ndarray:
    """Pseudonymous ids ``prefix + 16 hex digits`` (a seeded bijection of the keys)."""
    mixed = splitmix(np.asarray(keys, dtype=np.uint64) + salt)
    hexes = np.frombuffer(mixed.astype(">u8").tobytes().hex().encode("ascii"), dtype="S16")
    return np.strings.add(prefix, hexes.astype("U16"))


def cdf_of(p: np.ndarray) -> np.ndarray:
    """Cumulative distribution of weights (last axis), ending at exactly 1."""
    p = np.asarray(p, dtype=float)
    cdf = np.cumsum(p / p.sum(axis=-1, keepdims=True), axis=-1)
    cdf[..., -1] = 1.0
    return cdf


def cdf_of_weights(weights: dict[str, float], index: dict[str, int]) -> np.ndarray:
    """Cumulative distribution over ``index`` (code -> column) of weights given by code."""
    row = np.zeros(len(index))
    for k, v in weights.items():
        row[index[k]] = v
    return cdf_of(row)


def cdf_rows(rows: list[dict[str, float]], index: dict[str, int]) -> np.ndarray:
    """One cumulative distribution per row (for example per border post)."""
    return np.stack([cdf_of_weights(r, index) for r in rows])


def draw(rng: np.random.Generator, cdf: np.ndarray, rows: np.ndarray | None = None,
         n: int | None = None) -> np.ndarray:
    """Categorical draws: one cdf (``n`` draws) or one row of ``cdf`` per element of ``rows``."""
    if rows is None:
        return np.searchsorted(cdf, rng.random(n), side="right")
    u = rng.random(len(rows))
    return (u[:, None] >= cdf[rows]).sum(axis=1)


def lognormal_cents(rng: np.random.Generator, median: np.ndarray, sigma: np.ndarray,
                    cap: np.ndarray) -> np.ndarray:
    """Capped lognormal US-dollar values in whole cents (at least one cent)."""
    usd = np.minimum(np.exp(np.log(median) + sigma * rng.standard_normal(len(median))), cap)
    return np.maximum(np.rint(usd * 100), 1).astype(np.int64)
