"""A nowcast of the whole current week, from its data so far and a model of past weeks.

From the first day of a week its estimate so far covers only the travellers who have
left; the nowcast is an estimate of the *whole* week's informal exports with a 95%
interval, combining two measurements of the week's total ``Y_t``:

* **the model forecast** ``X_m``: a local linear trend with Nowruz and Arbaeen
  regressors fitted to the past weeks' estimates, a linear Gaussian state-space model
  filtered by :func:`kalman_filter` (pure numpy),

      y_s = mu_s + g_n x_n,s + g_a x_a,s + e_s,    e_s ~ N(0, s2_irr + se_s^2)
      mu_s+1 = mu_s + b_s + u_s,   b_s+1 = b_s + v_s,   (g_n, g_a) constant,

  with ``se_s`` the published standard error of week s (its sampling error) and
  ``x_n,s``, ``x_a,s`` the shares of the week's days in the Nowruz holidays (Nowruz - 3
  to Nowruz + 13) and in the Arbaeen walk (the 14 days before Arbaeen). The variances
  ``s2_irr, s2_level, s2_trend`` are chosen by maximum likelihood over a small grid
  (scaled to the series). The forecast of ``Y_t`` is ``X_m = Z_t a_t|t-1`` with variance
  ``F = Z_t P_t|t-1 Z_t' + s2_irr``;
* **the week's data so far** ``X_d``: the week-to-date estimate ``Y_wtd`` (SE ``se_wtd``)
  from ``N_wtd`` departures, plus the departures still to come ``R = max(N_hat - N_wtd, 0)``
  at the week's value per departure so far ``v = Y_wtd / N_wtd``, where ``N_hat`` (variance
  ``V_N``) is the same model's forecast of the week's departures from past weeks' counts:

      X_d = Y_wtd + v R,    V_d = se_wtd^2 (1 + R / N_wtd)^2 + v^2 V_N 1[R > 0].

The nowcast is the precision-weighted combination (one Kalman update of ``Y_t`` by the
data measurement): ``Y = X_m + k (X_d - X_m)``, ``k = F / (F + V_d)``, variance
``k V_d``; the interval is normal, clipped at zero. Once the week has closed, ``R = 0`` and
``V_d = se^2`` is small against ``F``, so the nowcast is close to the week's estimate.

**News** (what moved the nowcast away from the model forecast), exactly additive:

    Y - X_m = k (v - v_m) (N_wtd + R)          # value news: inspections and declarations
            + k v_m max(N_wtd - N_hat, 0)      # departures news: more travellers than forecast

with ``v_m = X_m / N_hat`` the model's value per departure.

References
----------
Durbin, J. and Koopman, S. J. (2012). Time Series Analysis by State Space Methods, 2nd ed.,
ch. 4 (the Kalman filter) and 3.2 (local linear trend).
Banbura, M. and Modugno, M. (2014). Maximum likelihood estimation of factor models on
datasets with arbitrary pattern of missing data (news decomposition).
"""

from __future__ import annotations

import datetime
import itertools
import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

__all__ = [
    "NOWCAST_COLUMNS",
    "Nowcast",
    "kalman_filter",
    "trend_model",
    "festival_regressors",
    "fit_and_forecast",
    "nowcast_week",
]

#: Columns the open week's total row gains in :func:`estimators.estimate_weeks`.
NOWCAST_COLUMNS: tuple[str, ...] = (
    "nowcast_usd",
    "nowcast_ci_low_usd",
    "nowcast_ci_high_usd",
    "nowcast_model_usd",
    "nowcast_news_value_usd",
    "nowcast_news_departures_usd",
)

#: Arbaeen (20 Safar) by Gregorian year; years outside move by whole lunar years.
ARBAEEN = {
    2023: datetime.date(2023, 9, 6), 2024: datetime.date(2024, 8, 25), 2025: datetime.date(2025, 8, 14),
    2026: datetime.date(2026, 8, 4), 2027: datetime.date(2027, 7, 25), 2028: datetime.date(2028, 7, 13),
    2029: datetime.date(2029, 7, 3), 2030: datetime.date(2030, 6, 22),
}
_LUNAR_YEAR = 354.367


def _arbaeen(year: int) -> datetime.date:
    if year in ARBAEEN:
        return ARBAEEN[year]
    k = round(((datetime.date(year, 7, 1) - ARBAEEN[2026]).days) / _LUNAR_YEAR)
    return ARBAEEN[2026] + datetime.timedelta(days=round(k * _LUNAR_YEAR))


def festival_regressors(week: str) -> tuple[float, float]:
    """(Nowruz, Arbaeen) shares of the ISO week's seven days.

    >>> festival_regressors("2026-W13"), festival_regressors("2026-W40")
    ((1.0, 0.0), (0.0, 0.0))
    """
    from estimators.calendar import nowruz

    y, w = week.split("-W")
    monday = datetime.date.fromisocalendar(int(y), int(w), 1)
    days = [monday + datetime.timedelta(i) for i in range(7)]
    n = a = 0
    for d in days:
        for year in (d.year - 1, d.year, d.year + 1):
            nz = nowruz(year - 621)
            if -3 <= (d - nz).days <= 13:
                n += 1
                break
        for year in (d.year - 1, d.year, d.year + 1):
            if -14 <= (d - _arbaeen(year)).days <= 0:
                a += 1
                break
    return n / 7, a / 7


def trend_model(X: np.ndarray, s2_level: float, s2_trend: float):
    """System matrices of the local linear trend with constant regression states.

    State ``(mu, b, g_1..g_k)``; returns ``(Z [n, m], T [m, m], Q [m, m])``.
    """
    n, k = X.shape
    m = 2 + k
    Z = np.zeros((n, m))
    Z[:, 0] = 1.0
    Z[:, 2:] = X
    T = np.eye(m)
    T[0, 1] = 1.0
    Q = np.zeros((m, m))
    Q[0, 0], Q[1, 1] = s2_level, s2_trend
    return Z, T, Q


def kalman_filter(y, Z, T, Q, H, a0, P0):
    """The Kalman filter of ``y_t = Z_t a_t + e_t (Var H_t)``, ``a_t+1 = T a_t + u_t (Var Q)``.

    ``y`` may hold NaN (missing: prediction only). Returns the filtered states and
    covariances ``a_t|t, P_t|t``, the one-step predictions ``a_t|t-1, P_t|t-1``, the
    forecast means and variances of ``y_t``, and the log-likelihood terms (0 where y is
    missing), all as numpy arrays.
    """
    y = np.asarray(y, dtype=float)
    n = len(y)
    m = len(a0)
    H = np.broadcast_to(np.asarray(H, dtype=float), (n,))
    a = np.asarray(a0, dtype=float).copy()
    P = np.asarray(P0, dtype=float).copy()
    af, Pf = np.zeros((n, m)), np.zeros((n, m, m))
    ap, Pp = np.zeros((n, m)), np.zeros((n, m, m))
    fmean, fvar, ll = np.zeros(n), np.zeros(n), np.zeros(n)
    for t in range(n):
        ap[t], Pp[t] = a, P
        z = Z[t]
        f = float(z @ P @ z) + H[t]
        mu = float(z @ a)
        fmean[t], fvar[t] = mu, f
        if not math.isnan(y[t]):
            v = y[t] - mu
            K = P @ z / f
            a = a + K * v
            P = P - np.outer(K, z @ P)
            P = (P + P.T) / 2
            ll[t] = -0.5 * (math.log(2 * math.pi * f) + v * v / f)
        af[t], Pf[t] = a, P
        a = T @ a
        P = T @ P @ T.T + Q
    return af, Pf, ap, Pp, fmean, fvar, ll


@dataclass(frozen=True)
class _Forecast:
    mean: float
    var: float  # of the true value (state part + irregular)


def fit_and_forecast(y, se, X, x_next) -> _Forecast | None:
    """Forecast of the next value of a series from the trend model, variances by ML on a grid.

    ``se``: known measurement standard errors per value (zeros for a census). None when
    fewer than 4 values are known.
    """
    y = np.asarray(y, dtype=float)
    ok = ~np.isnan(y)
    if ok.sum() < 4:
        return None
    scale = float(np.median(np.abs(y[ok]))) or 1.0
    Xa = np.vstack([np.asarray(X, dtype=float).reshape(len(y), -1), np.asarray(x_next, dtype=float)[None]])
    keep = Xa[:-1][ok].std(0) > 0  # a regressor never seen varying is left out
    Xa = Xa[:, keep]
    m = 2 + Xa.shape[1]
    a0 = np.zeros(m)
    a0[0] = float(y[ok][0])
    P0 = np.eye(m) * (10 * scale) ** 2
    se2 = np.asarray(se, dtype=float) ** 2
    yy = np.r_[y, np.nan]
    burn = m  # the first m innovations only pin down the diffuse-ish initial state
    best = None
    for fi, fl, ft in itertools.product((0.03, 0.1, 0.3), (0.0, 0.03, 0.1), (0.0, 0.01, 0.03)):
        Z, T, Q = trend_model(Xa, (fl * scale) ** 2, (ft * scale) ** 2)
        s2_irr = (fi * scale) ** 2
        out = kalman_filter(yy, Z, T, Q, np.r_[se2 + s2_irr, s2_irr], a0, P0)
        llf = float(out[6][ok.nonzero()[0][burn:]].sum()) if ok.sum() > burn else 0.0
        if best is None or llf > best[0]:
            best = (llf, out, s2_irr)
    _, out, s2_irr = best
    return _Forecast(mean=float(out[4][-1]), var=float(out[5][-1]))


@dataclass(frozen=True)
class Nowcast:
    """The whole-week nowcast and its parts (US dollars)."""

    usd: float
    ci_low_usd: float
    ci_high_usd: float
    model_usd: float | None
    news_value_usd: float
    news_departures_usd: float


def nowcast_week(history, current, alpha: float = 0.05) -> Nowcast:
    """Nowcast of the current week from past weeks' totals and the week so far.

    ``history``: past weeks in order, tuples ``(week, estimate_usd, std_error_usd,
    n_departures)``; ``current``: the same tuple for the week so far.
    """
    z = NormalDist().inv_cdf(1 - alpha / 2)
    week, y_wtd, se_wtd, n_wtd = current
    se_wtd = 0.0 if se_wtd is None or se_wtd != se_wtd else float(se_wtd)
    weeks = [h[0] for h in history]
    X = np.array([festival_regressors(w) for w in weeks]).reshape(len(weeks), 2)
    xn = np.array(festival_regressors(week))
    y = np.array([h[1] if h[1] is not None else np.nan for h in history], dtype=float)
    se = np.array([h[2] if (h[2] is not None and h[2] == h[2]) else 0.0 for h in history], dtype=float)
    nd = np.array([h[3] for h in history], dtype=float)
    model = fit_and_forecast(y, se, X, xn) if len(history) else None
    deps = fit_and_forecast(nd, np.zeros(len(nd)), X, xn) if len(history) else None
    v = y_wtd / n_wtd if n_wtd > 0 else 0.0
    if deps is not None:
        n_hat, var_n = max(deps.mean, 0.0), deps.var
    else:
        n_hat, var_n = float(n_wtd), 0.0
    R = max(n_hat - n_wtd, 0.0)
    x_d = y_wtd + v * R
    v_d = se_wtd**2 * (1 + (R / n_wtd if n_wtd > 0 else 0.0)) ** 2 + (v * v * var_n if R > 0 else 0.0)
    if model is None:
        point, var, news_v, news_n, m_usd = x_d, v_d, 0.0, 0.0, None
    else:
        f = max(model.var, 0.0)
        k = f / (f + v_d) if f + v_d > 0 else 1.0
        point = model.mean + k * (x_d - model.mean)
        var = k * v_d
        v_m = model.mean / n_hat if n_hat > 0 else 0.0
        news_n = k * v_m * max(n_wtd - n_hat, 0.0)
        news_v = (point - model.mean) - news_n
        m_usd = model.mean
    sd = math.sqrt(max(var, 0.0))
    return Nowcast(
        usd=point, ci_low_usd=max(point - z * sd, 0.0), ci_high_usd=point + z * sd,
        model_usd=m_usd, news_value_usd=news_v, news_departures_usd=news_n,
    )
