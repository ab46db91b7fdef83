"""Amount-to-USD conversion by the contract's rule.

An amount is converted at the latest rate for its currency whose ``event_time`` is not
after the amount's own ``event_time``. US dollars need no rate. Rates of one currency
share a partition (the topic is keyed by currency), so a worker sees them in the order
the feed published them; a rate with the same time as another is broken by ``event_id``
so that the book is a function of the set of rates, not of their arrival order.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field


#: Sorts after any event id at the same time, so a lookup finds every rate up to ``at``.
_LATEST = "\U0010ffff"


@dataclass
class RateBook:
    """Rates seen so far, per currency, ordered by (event time, event id)."""

    _times: dict[str, list[tuple[float, str]]] = field(default_factory=dict)
    _rates: dict[str, list[float]] = field(default_factory=dict)

    def add(self, currency: str, at: float, event_id: str, units_per_usd: float) -> None:
        """Record one rate; ``at`` is its event time in epoch seconds."""
        times = self._times.setdefault(currency, [])
        rates = self._rates.setdefault(currency, [])
        stamp = (at, event_id)
        i = bisect_right(times, stamp)
        if i and times[i - 1] == stamp:
            return  # the same rate event again
        times.insert(i, stamp)
        rates.insert(i, units_per_usd)

    def rate(self, currency: str, at: float) -> float | None:
        """Units of ``currency`` per USD in force at ``at``, or None if none is known yet."""
        if currency == "USD":
            return 1.0
        times = self._times.get(currency)
        if not times:
            return None
        i = bisect_right(times, (at, _LATEST))
        return self._rates[currency][i - 1] if i else None

    def to_cents(self, amount: float, currency: str, at: float) -> int | None:
        """``amount`` of ``currency`` at time ``at`` in whole US cents, or None without a rate."""
        rate = self.rate(currency, at)
        return None if rate is None else usd_cents(amount, rate)

    def to_cents_array(self, currency: str, amounts, ats):
        """:meth:`to_cents` of many amounts of one currency at once, for the batch reader.

        ``amounts`` and ``ats`` are float64 arrays. Returns ``(cents, priced)``: int64 cents
        (0 where unpriced) and a bool mask of the amounts that had a rate, equal element by
        element to :meth:`to_cents` (the same float operations, ``rint`` rounds half to
        even like ``round``). Returns None when the vector form could differ (an event id
        sorting after the lookup's sentinel, or cents beyond int64); then convert one by one.
        """
        import numpy as np

        n = len(amounts)
        if currency == "USD":
            rate = np.ones(n)
            priced = np.ones(n, dtype=bool)
        else:
            times = self._times.get(currency)
            if not times:
                return np.zeros(n, dtype=np.int64), np.zeros(n, dtype=bool)
            if any(event_id > _LATEST for _, event_id in times):
                return None
            i = np.searchsorted(np.array([t for t, _ in times], dtype=float), ats, side="right")
            priced = i > 0
            rate = np.asarray(self._rates[currency], dtype=float)[np.maximum(i - 1, 0)]
        with np.errstate(all="ignore"):
            x = np.asarray(amounts, dtype=float) * 100.0 / rate
        x = np.where(priced, x, 0.0)
        if not (np.abs(x) < 2.0**62).all():
            return None
        return np.rint(x).astype(np.int64), priced

    def __len__(self) -> int:
        return sum(len(t) for t in self._times.values())


def usd_cents(amount: float, units_per_usd: float) -> int:
    """Whole US cents of an amount; integer cents keep every later sum exact."""
    return round(amount * 100.0 / units_per_usd)
