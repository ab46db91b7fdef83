"""Exchange rates of the simulated world: a seeded random walk per currency.

The path is anchored at 2026-01-01 and drawn per day, so the rate of a day does not depend
on the simulated window; every amount is converted by the contract's rule (latest rate at
or before its event time), which makes assessed values convert back to the truth exactly.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Final

import numpy as np
import polars as pl

from streams.simulation.draws import STREAM_FX, random_stream
from streams.simulation.render import codes_of, event_time_json, json_line
from streams.simulation.world import (
    CURRENCIES,
    DAY_S,
    DECIMALS,
    EPOCH_ORDINAL,
    epoch_day,
)

#: Units per USD at 2026-01-01, yearly drift, daily volatility, updates a day.
FX_MODEL: Final = {
    "IRR": (1_000_000.0, .25, .010, 4), "USD": (1.0, 0.0, 0.0, 1), "EUR": (.92, 0.0, .004, 1),
    "AED": (3.6725, 0.0, .0002, 1), "IQD": (1310.0, 0.0, .001, 1), "TRY": (43.0, .25, .003, 1),
}
FX_ANCHOR: Final = dt.date(2026, 1, 1)
FX_SCALE: Final = 10_000  # rates are published with four decimals


@dataclass(frozen=True)
class FxPath:
    """Published rates per currency: times (local seconds) and units per USD x 10^4."""

    times: tuple[np.ndarray, ...]
    units: tuple[np.ndarray, ...]

    def rate(self, currency: np.ndarray, t: np.ndarray) -> np.ndarray:
        """The contract's FX rule: the latest rate published at or before ``t``."""
        out = np.empty(len(t))
        for c in range(len(CURRENCIES)):
            m = currency == c
            if m.any():
                i = np.searchsorted(self.times[c], t[m], side="right") - 1
                assert (i >= 0).all(), "amount before the first published rate"
                out[m] = self.units[c][i] / FX_SCALE
        return out

    def to_minor(self, usd_cents: np.ndarray, currency: np.ndarray, t: np.ndarray) -> np.ndarray:
        """US cents to an amount in minor units of ``currency`` (whole rials and dinars)."""
        minor = usd_cents / 100 * self.rate(currency, t) * 10.0 ** DECIMALS[currency]
        return np.maximum(np.rint(minor), 1).astype(np.int64)


def fx_path(seed: int, first: int, last: int) -> FxPath:
    """Random-walk rates for epoch days first..last, anchored at 2026-01-01 so the path of
    a day does not depend on the simulated window."""
    anchor = epoch_day(FX_ANCHOR)
    lo, hi = min(first, anchor), max(last, anchor)
    steps = [m[3] for m in FX_MODEL.values()]
    z = np.stack([random_stream(seed, STREAM_FX, d + EPOCH_ORDINAL).standard_normal(sum(steps))
                  for d in range(lo, hi + 1)])
    times, units, col = [], [], 0
    for (level, drift, vol, k), n in zip(FX_MODEL.values(), steps, strict=True):
        inc = (drift / 365 / k + vol / np.sqrt(k) * z[:, col:col + n]).ravel()
        col += n
        cum = np.cumsum(inc)
        log_level = np.log(level) + cum - cum[(anchor - lo) * k]
        t = (np.arange(lo * k, (hi + 1) * k) * (DAY_S // k)).astype(np.int64)
        keep = slice((first - lo) * k, (last - lo + 1) * k)
        times.append(t[keep])
        units.append(np.rint(np.exp(log_level[keep]) * FX_SCALE).astype(np.int64))
    return FxPath(tuple(times), tuple(units))


def fx_events(fx: FxPath, day: int) -> pl.DataFrame:
    """Rate events published on epoch day ``day``, every currency at least at midnight."""
    lo, hi = day * DAY_S, (day + 1) * DAY_S
    published = [((times >= lo) & (times < hi), times, units)
                 for times, units in zip(fx.times, fx.units, strict=True)]
    t = np.concatenate([times[m] for m, times, _ in published])
    u = np.concatenate([units[m] for m, _, units in published])
    c = np.repeat(np.arange(len(CURRENCIES)), [int(m.sum()) for m, _, _ in published])
    cur = codes_of(CURRENCIES, c)
    return pl.DataFrame({"t": t, "cur": cur, "u": u}).select(
        "t", line=json_line('{"event_id":"fx-§-§","event_time":"§","schema_version":1,'
                            '"currency":"§","units_per_usd":§.§}',
                            "cur", pl.from_epoch("t", time_unit="s").dt.strftime("%Y%m%dT%H%M"),
                            event_time_json(), "cur", (pl.col("u") // FX_SCALE).cast(pl.String),
                            (pl.col("u") % FX_SCALE).cast(pl.String).str.zfill(4)))
