"""A nowcast of the whole current week, from its data so far and a model of past weeks.

From the first day of a week its estimate so far covers only the travellers who have
left; the nowcast is an estimate of the *whole* week's informal exports ``Y_t`` with a
95% interval. It combines three sources, each a measurement of ``Y_t`` with its own
error, as one Kalman update of ``Y_t`` (precision weights):

**The model forecast** ``X_m`` (variance ``F``): a local linear trend with Nowruz and
Arbaeen regressors fitted to the past weeks' estimates ``y_s``, a linear Gaussian
state-space model filtered by :func:`kalman_filter` (pure numpy; statsmodels'
``UnobservedComponents`` is the cross-check in the tests),

    y_s = mu_s + g_n x_n,s + g_a x_a,s + e_s,    e_s ~ N(0, s2_irr + se_s^2)
    mu_s+1 = mu_s + b_s + u_s,   b_s+1 = b_s + v_s,   (g_n, g_a) constant,

with ``se_s`` the published standard error of week s (its sampling error) and ``x_n,s``,
``x_a,s`` the shares of the week's days in the Nowruz holidays (Nowruz - 3 to Nowruz + 13)
and in the Arbaeen walk (the 14 days before Arbaeen). ``s2_irr, s2_level, s2_trend`` by
maximum likelihood over a small grid (scaled to the series); ``X_m = Z_t a_t|t-1``,
``F = Z_t P_t|t-1 Z_t' + s2_irr``. The same model forecasts the week's departures
``N_hat`` (variance ``V_N``) from past weeks' counts (with fewer than 4 past weeks: their
mean, variance their scatter plus (0.1 mean)^2). Once a day of the week is complete, the
week so far says how many are to come too: with ``N_c`` the departures of the days before
the newest day seen (that one may still be under way) and ``phi`` the geometric mean share
those days had of the last 8 past weeks' departures (at least 3 weeks), ``N_ext = N_c /
phi``, ``Var(N_ext) = N_ext^2 Var(log phi_s) (1 + 1/m)``; the week's expected departures
``N_exp`` combine ``N_hat`` and ``N_ext`` by precision (variance ``V_exp``; without a
complete day, ``N_exp = N_hat``).

**The week so far** ``W`` (the value of the ``N_wtd`` departures so far), measured twice:

* by inspections and declarations: the week-to-date estimate ``W_i = Y_wtd``. Its error
  is partly shared with past weeks (pooled coefficients, a world's persistent bias), so
  partly carried by the model forecast and the card share too, learnt from those weeks:
  with ``rho`` = :data:`SHARED_ERROR` and ``r2`` the median squared relative standard
  error of the last 4 weeks, the shared part is ``B_w = rho min(se_wtd^2, r2 W_i^2)``
  and ``W_i``'s own error ``Var(W_i) = se_wtd^2 - B_w``;
* by tourist-card handicraft spending so far ``c_wtd`` (net of refunds and reversals),
  through the card share ``l_s = log(C_s / Y_s)``, the card series' own bias term, a
  random walk (so a card-share drop, tourist cards suspended or a switch outage, moves
  the share rather than the level):

      r_s = log(c_s / y_s) = l_s + e_s,   e_s ~ N(0, tau^2 + (se_s / y_s)^2)
      l_s+1 = l_s + w_s,                  w_s ~ N(0, q)

  (:func:`card_share`; ``tau^2, q`` by maximum likelihood on a grid), so
  ``W_c = c_wtd exp(-l_hat)``, ``Var(W_c) = W_c^2 (max(P_l, r2) + tau^2 / phi)`` with
  ``P_l`` the filter's variance of ``l_hat`` (at least one past week's relative error: the
  share is learnt from estimates whose errors persist, so averaging weeks does not remove
  them) and ``phi = N_wtd / N_tot`` (a part-week's card share scatters more). A card measurement more than 3 standard errors from ``W_i`` is left out (a share
  that changed this week, before the random walk could learn it).

  ``W = a W_i + (1 - a) W_c``, ``a = Var(W_c) / (Var(W_i) + Var(W_c))``,
  ``Var(W) = a^2 Var(W_i) + (1 - a)^2 Var(W_c)``.

**Scaled to the whole week**: with ``N_tot = max(N_exp, N_wtd)`` and ``s = N_tot / N_wtd``
(the departures still to come valued like those so far, ``v = W / N_wtd``),

    X_d = s W,    V_d = s^2 Var(W) + v^2 V_exp 1[N_exp > N_wtd].

The nowcast is ``Y = X_m + k (X_d - X_m)``, ``k = F / (F + V_d)``, variance
``V = k V_d + s^2 B_w`` (the shared error is in every measurement, so no combination
removes it); the interval is normal on the log scale like the weekly estimates,
``Y exp(+-z sigma)``, ``sigma^2 = log(1 + V / Y^2)``. Once the week has closed ``s = 1``
and the nowcast is close to the week's estimate (and its card measurement). Without a past week there is no
nowcast (nothing says how much of the week is to come).

**News** (what moved the nowcast away from the model forecast), exactly additive: with
``v_m = X_m / N_hat`` and ``W_m = v_m N_wtd`` (the week so far the model expected),

    Y - X_m = k s a (W_i - W_m)          # inspections and declarations (news_value)
            + k s (1 - a) (W_c - W_m)    # card spending (news_card)
            + k v_m (N_tot - N_hat)      # more departures than forecast (news_departures)

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
    "card_share",
]

#: Columns the open week's total row gains in :func:`estimators.estimate_weeks`.
NOWCAST_COLUMNS: tuple[str, ...] = (
    "nowcast_usd",
    "nowcast_ci_low_usd",
    "nowcast_ci_high_usd",
    "nowcast_model_usd",
    "nowcast_news_value_usd",
    "nowcast_news_departures_usd",
    "nowcast_news_card_usd",
)

#: Arbaeen (20 Safar) by Gregorian year; years outside move by whole lunar years.
ARBAEEN = {
    2023: datetime.date(2023, 9, 6), 2024: datetime.date(2024, 8, 25), 2025: datetime.date(2025, 8, 14),
    2026: datetime.date(2026, 8, 4), 2027: datetime.date(2027, 7, 25), 2028: datetime.date(2028, 7, 13),
    2029: datetime.date(2029, 7, 3), 2030: datetime.date(2030, 6, 22),
}
_LUNAR_YEAR = 354.367

#: Share of a week estimate's sampling variance it shares with the weeks before it (pooled
#: coefficients, a world's persistent bias): the lag-1 autocorrelation (about zero, not the
#: world's mean) of log(estimate / truth) over bench/accuracy worlds, 0.83 on the first 8
#: (lag 2: 0.67). The model forecast and the card share, learnt from those weeks, carry
#: that error too, so combining them with the week's data cannot shrink it.
SHARED_ERROR = 0.8

#: Grid of the card share's own weekly scatter ``tau`` (log scale) for :func:`card_share`.
CARD_SCATTER = (0.05, 0.1, 0.2, 0.4)


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


def card_share(y, se, c) -> tuple[float, float, float] | None:
    """Forecast of next week's log card share ``l = log(C / Y)`` from past weeks.

    Local level (the card series' bias term, a random walk) observed through the past
    weeks' ratios ``r_s = log(c_s / y_s)``, whose measurement variance is the week's
    relative sampling error ``(se_s / y_s)^2`` plus the card share's own weekly scatter
    ``tau^2``; ``tau^2`` and the level variance ``q`` by maximum likelihood on a grid.
    Returns ``(l_hat, P, tau^2)`` (P: variance of the level's forecast), or None with fewer
    than 3 weeks that have both a positive estimate and positive card spending.
    """
    y, se, c = (np.asarray(v, dtype=float) for v in (y, se, c))
    ok = np.isfinite(y) & np.isfinite(c) & (y > 0) & (c > 0)
    if ok.sum() < 3:
        return None
    r = np.full(len(y), np.nan)
    r[ok] = np.log(c[ok] / y[ok])
    h = np.where(ok, (np.nan_to_num(se) / np.where(ok, y, 1.0)) ** 2, 0.0)
    n = len(y)
    Z, T = np.ones((n + 1, 1)), np.eye(1)
    a0, P0 = np.array([r[ok][0]]), np.eye(1)
    best = None
    for tau, q in itertools.product(CARD_SCATTER, (0.0, 0.05, 0.1, 0.2, 0.4)):
        out = kalman_filter(np.r_[r, np.nan], Z, T, np.eye(1) * q * q, np.r_[h + tau * tau, tau * tau], a0, P0)
        llf = float(out[6][ok.nonzero()[0][1:]].sum())
        if best is None or llf > best[0]:
            best = (llf, out, tau * tau)
    _, out, tau2 = best
    return float(out[4][-1]), float(out[5][-1]) - tau2, tau2


#: Past weeks whose day-of-week profile the week so far is extrapolated with (the latest).
PROFILE_WEEKS = 8


def _by_day(entry) -> np.ndarray | None:
    """A week's departures by day of the week, when it carries them and they add up to
    its departures (states restored from before the field hold zeros there)."""
    if len(entry) <= 5 or entry[5] is None:
        return None
    days = np.asarray(entry[5], dtype=float)
    if days.shape != (7,) or (days < 0).any() or days.sum() != float(entry[3]) or days.sum() <= 0:
        return None
    return days


def _extrapolated(history, current) -> tuple[float, float] | None:
    """The week's departures from its complete days so far and the share of a week's
    departures those days had in past weeks: ``(N_c / phi, N_c^2 / phi^2 Var(log phi))``.

    The newest day with departures may still be under way (live), so only the days before
    it count: ``N_c`` their departures, ``phi`` the mean of the past weeks' shares
    ``phi_s`` of the same days (the last :data:`PROFILE_WEEKS` weeks that carry days),
    ``Var(log phi)`` the scatter of ``log phi_s`` plus its mean's error. None before a
    complete day, or with fewer than 3 such past weeks."""
    days = _by_day(current)
    if days is None:
        return None
    seen = np.flatnonzero(days > 0)
    first_open = int(seen[-1])  # the newest day with departures: perhaps not over yet
    if first_open == 0:
        return None
    n_c = float(days[:first_open].sum())
    shares = []
    for entry in reversed(history):
        past = _by_day(entry)
        if past is not None:
            share = float(past[:first_open].sum() / past.sum())
            if share > 0:
                shares.append(share)
            if len(shares) == PROFILE_WEEKS:
                break
    if len(shares) < 3 or n_c <= 0:
        return None
    logs = np.log(shares)
    phi = float(np.exp(logs.mean()))
    var_log = float(logs.var(ddof=1)) * (1 + 1 / len(logs))
    n_ext = n_c / phi
    return n_ext, n_ext * n_ext * var_log


def _departures(nd, X, xn) -> tuple[float, float] | None:
    """Forecast (mean, variance) of the week's departures from past weeks' counts: the trend
    model from 4 weeks on; before that the mean of the weeks there are, with their scatter
    and at least a 10% standard error; None without a past week."""
    if len(nd) >= 4:
        f = fit_and_forecast(nd, np.zeros(len(nd)), X, xn)
        return max(f.mean, 0.0), f.var
    if len(nd) == 0:
        return None
    mean = float(np.mean(nd))
    var = float(np.var(nd, ddof=1)) if len(nd) > 1 else 0.0
    return mean, var + (0.1 * mean) ** 2


@dataclass(frozen=True)
class Nowcast:
    """The whole-week nowcast and its parts (US dollars)."""

    usd: float
    ci_low_usd: float
    ci_high_usd: float
    model_usd: float | None
    news_value_usd: float  # inspections and declarations
    news_departures_usd: float
    news_card_usd: float = 0.0

    def columns(self) -> tuple:
        """The values of :data:`NOWCAST_COLUMNS`, in order."""
        return (self.usd, self.ci_low_usd, self.ci_high_usd, self.model_usd, self.news_value_usd,
                self.news_departures_usd, self.news_card_usd)


def _num(x) -> float:
    return float("nan") if x is None else float(x)


def nowcast_week(history, current, alpha: float = 0.05, *, cards: bool = True, shared: float = SHARED_ERROR,
                 interval: str = "log") -> Nowcast | None:
    """Nowcast of the current week from past weeks' totals and the week so far.

    ``history``: past weeks in order, tuples ``(week, estimate_usd, std_error_usd,
    n_departures[, tourist_handicraft_card_usd[, departures by day of the week (7, Monday
    first, or None)]])``; ``current``: the same tuple for the week so far. ``cards=False`` leaves the card series out. None without a past week (nothing
    says how much of the week is still to come).
    """
    if not history:
        return None
    z = NormalDist().inv_cdf(1 - alpha / 2)
    week, y_wtd, se_wtd, n_wtd = current[:4]
    c_wtd = _num(current[4]) if len(current) > 4 else float("nan")
    y_wtd = float(y_wtd)
    se_wtd = 0.0 if se_wtd is None or se_wtd != se_wtd else float(se_wtd)
    weeks = [h[0] for h in history]
    X = np.array([festival_regressors(w) for w in weeks]).reshape(len(weeks), 2)
    xn = np.array(festival_regressors(week))
    y = np.array([_num(h[1]) for h in history], dtype=float)
    se = np.array([h[2] if (h[2] is not None and h[2] == h[2]) else 0.0 for h in history], dtype=float)
    nd = np.array([h[3] for h in history], dtype=float)
    c = np.array([_num(h[4]) if len(h) > 4 else np.nan for h in history], dtype=float)
    model = fit_and_forecast(y, se, X, xn)
    n_hat, var_n = _departures(nd, X, xn)
    n_exp, var_exp = n_hat, var_n  # departures expected in the whole week
    ext = _extrapolated(history, current)
    if ext is not None:  # and the week so far, by the days' usual shares of a week
        n_ext, var_ext = ext
        if var_ext <= 0:
            n_exp, var_exp = n_ext, 0.0
        elif var_n > 0:
            n_exp = (n_hat / var_n + n_ext / var_ext) / (1 / var_n + 1 / var_ext)
            var_exp = 1 / (1 / var_n + 1 / var_ext)
    n_tot = max(n_exp, float(n_wtd))
    s = n_tot / n_wtd if n_wtd > 0 else 1.0
    # the week so far W, from inspections (W_i) and from card spending (W_c)
    # the part of the week-to-date error shared with past weeks: at most their relative error
    rel = se[-4:] / np.where(y[-4:] > 0, y[-4:], np.nan)
    rel2 = float(np.nanmedian(rel**2)) if np.isfinite(rel).any() else se_wtd**2 / max(y_wtd, 1e-9) ** 2
    b_w = shared * min(se_wtd**2, rel2 * y_wtd**2)
    w_i, var_i = y_wtd, se_wtd**2 - b_w  # its error this week alone
    w_c = var_c = None
    share = card_share(y, se, c) if cards and c_wtd > 0 and n_wtd > 0 else None
    if share is not None:
        l_hat, p_l, tau2 = share
        # the share is learnt from past estimates whose errors persist: its error is that of
        # a past week's estimate, not of their average, and differs from this week's
        p_l = max(p_l, rel2)
        phi = max(n_wtd / n_tot, 1 / 7)  # share of the week's card spending in so far
        w_c = c_wtd * math.exp(-l_hat)
        var_c = w_c**2 * (p_l + tau2 / phi)
        if y_wtd > 0:  # a card share that has just dropped (or jumped) is not believed
            zc = math.log(w_c / y_wtd) / math.sqrt(p_l + tau2 / phi + se_wtd**2 / y_wtd**2)
            if abs(zc) > 3:
                w_c = var_c = None
    if w_c is None:
        wt_i, wt_c = 1.0, 0.0
    elif var_i <= 0:
        wt_i, wt_c = 1.0, 0.0
    else:
        wt_i = var_c / (var_i + var_c)
        wt_c = 1.0 - wt_i
    w = wt_i * w_i + (wt_c * w_c if w_c is not None else 0.0)
    var_w = wt_i**2 * var_i + (wt_c**2 * var_c if w_c is not None else 0.0)
    v = w / n_wtd if n_wtd > 0 else 0.0
    x_d = w * s
    v_d = var_w * s * s + (v * v * var_exp if n_exp > n_wtd else 0.0)
    if n_wtd <= 0:  # nobody has left yet: the week so far says nothing
        v_d = math.inf
    if model is None:
        if n_wtd <= 0:
            return None
        k, x_m, f = 1.0, None, None
        point, var = x_d, v_d
    else:
        x_m, f = model.mean, max(model.var, 0.0)
        k = 0.0 if math.isinf(v_d) else (f / (f + v_d) if f + v_d > 0 else 1.0)
        point = x_m + k * (x_d - x_m)
        var = f if math.isinf(v_d) else k * v_d
    var += b_w * s * s  # the estimator's error shared with past weeks
    # news: Y - X_m = k s wt_i (W_i - W_m) + k s wt_c (W_c - W_m) + k v_m (N_tot - N_hat)
    if x_m is None:
        news_i, news_c, news_n = 0.0, 0.0, 0.0
    else:
        v_m = x_m / n_hat if n_hat > 0 else 0.0
        w_m = v_m * n_wtd
        news_n = k * v_m * (n_tot - n_hat)
        news_c = k * s * wt_c * (w_c - w_m) if w_c is not None else 0.0
        news_i = (point - x_m) - news_n - news_c  # = k s wt_i (W_i - W_m), exactly additive
    sd = math.sqrt(max(var, 0.0))
    if interval == "log" and point > 0:
        sl = math.sqrt(math.log1p(var / point**2))
        lo, hi = point * math.exp(-z * sl), point * math.exp(z * sl)
    else:
        lo, hi = max(point - z * sd, 0.0), point + z * sd
    return Nowcast(
        usd=point, ci_low_usd=lo, ci_high_usd=hi,
        model_usd=x_m, news_value_usd=news_i, news_departures_usd=news_n, news_card_usd=news_c,
    )
