"""Per-departure traveller facts from an archive: trips in 90 days and recent card spend.

The census knows every departure's ``traveller_id``. Two facts per departure ``i`` of
traveller ``p`` at time ``t_i`` are computed over the whole archive (after event-id
deduplication, first departure of each crossing, as the census counts them):

    trips_90d_i = #{ departures j of p : t_i - 90 d < t_j <= t_i + A }  (i itself included;
                                                  A = 0, or 90 d with window "centred")
    card_cents_i = sum { c_k : tourist-card payment k of p at a handicraft MCC,
                               t_i - 14 d <= t_k < t_i }

``c_k`` is the payment's signed US cents as the archive reader prices it (purchases
positive, refunds and reversals negative, FX at the payment's own time): the same cents
that reach the payment states, so there is one pricing. ``trips_90d`` gives the frequency
class of :data:`CLASSES` (``"1"``, ``"2-4"``, ``"5+"``), the post-stratum of
``suitcase estimate --traveller-strata`` (see :mod:`estimators.estimate`).

Both are window sums ``sum_{k: p_k = p, a <= t_k <(=) b} w_k``, computed for all
departures at once: queries and data are sorted together by (traveller, time, tie rule)
and a query's value is the cumulative weight before it; the two ends of a window share
everything sorted before the traveller, so their difference is exactly the window's sum
(integer weights, exact). Traveller ids are factorised to integer codes here and never
leave this module.
"""

from __future__ import annotations

import numpy as np

__all__ = ["CLASSES", "WINDOWS", "TRIPS_DAYS", "CARD_DAYS", "trip_class", "traveller_codes", "trips_90d", "card_cents"]

#: Frequency classes by trips in the last 90 days (this one included).
CLASSES: tuple[str, ...] = ("1", "2-4", "5+")
TRIPS_DAYS = 90
#: Trip-count windows: ``"past"`` = (t - 90 d, t] (what a live lane could know at t);
#: ``"centred"`` = (t - 90 d, t + 90 d] (batch only: later trips in the archive count too,
#: so a trader's first trip in the archive is already frequent).
WINDOWS: dict[str, float] = {"past": 0.0, "centred": 90.0}
CARD_DAYS = 14
_DAY = 86_400.0


def trip_class(trips: np.ndarray) -> np.ndarray:
    """Index into :data:`CLASSES` of each trip count (>= 1)."""
    return np.digitize(np.asarray(trips), [2, 5])


def traveller_codes(*columns) -> list[np.ndarray]:
    """Integer codes of traveller ids (polars String Series, nulls allowed: code -1),
    the same id the same code across all the columns."""
    import polars as pl

    lengths = [len(c) for c in columns]
    ids = pl.concat([c.cast(pl.String) for c in columns]) if columns else pl.Series([], dtype=pl.String)
    codes = ids.rank("dense").fill_null(0).cast(pl.Int64).to_numpy() - 1
    out, at = [], 0
    for n in lengths:
        out.append(codes[at : at + n])
        at += n
    return out


def _before(q_code, q_at, d_code, d_at, d_w, data_first: bool) -> np.ndarray:
    """Per query: sum of ``d_w`` over data sorted before it by (code, time, tie), where a
    data point at the query's own time is before it iff ``data_first``.

    When every time is a whole second (the canonical layout's) the data are sorted once
    on one exact integer key ``code * span + second`` and the queries found by binary
    search; otherwise queries and data are sorted together (:func:`_before_merged`).
    Both give the same integers."""
    q_at, d_at = np.asarray(q_at, np.float64), np.asarray(d_at, np.float64)
    both = np.concatenate([q_at, d_at])
    if len(both) and np.all(np.isfinite(both)) and np.all(both == np.floor(both)):
        lo, hi = float(both.min()), float(both.max())
        span = int(hi - lo) + 1
        top = max(int(np.max(q_code, initial=0)), int(np.max(d_code, initial=0))) + 2
        if hi - lo < 2.0**40 and top * span < 2**62:
            key = lambda c, t: (np.asarray(c, np.int64) + 1) * span + (t - lo).astype(np.int64)  # noqa: E731
            dk = key(d_code, d_at)
            order = np.argsort(dk, kind="stable")
            cum = np.concatenate([[0], np.cumsum(np.asarray(d_w, np.int64)[order])])
            at = np.searchsorted(dk[order], key(q_code, q_at), side="right" if data_first else "left")
            return cum[at]
    return _before_merged(q_code, q_at, d_code, d_at, d_w, data_first)


def _before_merged(q_code, q_at, d_code, d_at, d_w, data_first: bool) -> np.ndarray:
    """:func:`_before` by sorting queries and data together (any float times)."""
    n, m = len(d_code), len(q_code)
    code = np.concatenate([np.asarray(d_code, np.int64), np.asarray(q_code, np.int64)])
    at = np.concatenate([np.asarray(d_at, np.float64), np.asarray(q_at, np.float64)])
    flag = np.concatenate([np.full(n, 0 if data_first else 1, np.int8), np.full(m, 1 if data_first else 0, np.int8)])
    w = np.concatenate([np.asarray(d_w, np.int64), np.zeros(m, np.int64)])
    order = np.lexsort((flag, at, code))
    cum = np.cumsum(w[order])
    pos = np.empty(n + m, np.int64)
    pos[order] = np.arange(n + m)
    return cum[pos[n:]]


def trips_90d(code: np.ndarray, at: np.ndarray, ahead_days: float = 0.0) -> np.ndarray:
    """Departures of the same traveller in ``(t - 90 d, t + ahead_days]`` for each
    departure (``code``: traveller codes, ``at``: epoch seconds). ``ahead_days`` > 0 (the
    batch-only ``window="centred"`` variant) also counts later trips in the archive."""
    at = np.asarray(at, np.float64)
    ones = np.ones(len(code), np.int64)
    return (_before(code, at + ahead_days * _DAY, code, at, ones, True)
            - _before(code, at - TRIPS_DAYS * _DAY, code, at, ones, True))


def card_cents(code: np.ndarray, at: np.ndarray, pay_code: np.ndarray, pay_at: np.ndarray,
               pay_cents: np.ndarray) -> np.ndarray:
    """Net signed cents of the traveller's tourist-card handicraft payments in
    ``[t - 14 d, t)`` for each departure (payments: ``pay_code``, ``pay_at``, ``pay_cents``,
    already restricted to tourist cards at handicraft merchants)."""
    at = np.asarray(at, np.float64)
    return (_before(code, at, pay_code, pay_at, pay_cents, False)
            - _before(code, at - CARD_DAYS * _DAY, pay_code, pay_at, pay_cents, False))
