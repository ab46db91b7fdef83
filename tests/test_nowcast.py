"""The nowcast: its Kalman filter against statsmodels, its combination and news parts."""

from __future__ import annotations

import math

import numpy as np
import pytest

from estimators.nowcast import (
    SHARED_ERROR,
    festival_regressors,
    kalman_filter,
    nowcast_week,
    trend_model,
)

WEEKS = [f"2026-W{w:02d}" for w in range(6, 26)]
Y = np.array([110, 118, 121, 130, 127, 175, 190, 160, 138, 141, 150, 149, 158, 163, 170, 168, 175, 180, 178, 190], float) * 1e3


def test_filter_equals_statsmodels_unobserved_components():
    """Local linear trend with Nowruz/Arbaeen regressors in the state, known initial state:
    filtered states, covariances, forecasts and log-likelihood equal statsmodels' to 1e-6."""
    from statsmodels.tsa.statespace.structural import UnobservedComponents

    X = np.array([festival_regressors(w) for w in WEEKS])[:, :1]  # Nowruz varies in these weeks
    assert X.std() > 0
    s2_irr, s2_lvl, s2_trd = 4e6, 1e6, 1e4
    mod = UnobservedComponents(Y, level="local linear trend", exog=X, mle_regression=False)
    m = 3
    a0, P0 = np.array([100e3, 1e3, 0.0]), np.diag([1e8, 1e6, 1e8])
    mod.ssm.initialize_known(a0, P0)
    res = mod.filter([s2_irr, s2_lvl, s2_trd])
    Z, T, Q = trend_model(X, s2_lvl, s2_trd)
    af, Pf, ap, Pp, fmean, fvar, ll = kalman_filter(Y, Z, T, Q, s2_irr, a0, P0)
    order = [0, 1, 2]  # statsmodels: level, trend, beta
    assert np.allclose(af, res.filtered_state.T[:, order], rtol=1e-6, atol=1e-6)
    assert np.allclose(Pf, res.filtered_state_cov.transpose(2, 0, 1), rtol=1e-6, atol=1e-6)
    assert np.allclose(fmean, res.forecasts[0], rtol=1e-6, atol=1e-6)
    assert np.allclose(fvar, res.forecasts_error_cov[0, 0], rtol=1e-6, atol=1e-6)
    # statsmodels leaves the first loglikelihood_burn terms out of llf (diffuse start)
    burn = mod.loglikelihood_burn
    assert math.isclose(ll[burn:].sum(), res.llf, rel_tol=1e-6)
    assert m == af.shape[1]


def test_filter_skips_missing_values_like_statsmodels():
    from statsmodels.tsa.statespace.structural import UnobservedComponents

    y = Y.copy()
    y[[3, 9]] = np.nan
    mod = UnobservedComponents(y, level="local linear trend")
    a0, P0 = np.array([100e3, 0.0]), np.diag([1e8, 1e6])
    mod.ssm.initialize_known(a0, P0)
    res = mod.filter([4e6, 1e6, 1e4])
    Z, T, Q = trend_model(np.zeros((len(y), 0)), 1e6, 1e4)
    af, *_, ll = kalman_filter(y, Z, T, Q, 4e6, a0, P0)
    assert np.allclose(af, res.filtered_state.T, rtol=1e-6, atol=1e-6)
    burn = mod.loglikelihood_burn
    assert math.isclose(ll[burn:].sum(), res.llf, rel_tol=1e-6)


def test_festival_regressors():
    assert festival_regressors("2026-W13") == (1.0, 0.0)  # Nowruz 2026-03-21 (Saturday) - 3 .. + 13
    assert festival_regressors("2026-W12") == (5 / 7, 0.0)
    assert festival_regressors("2026-W31") == (0.0, 1.0)  # the walk before Arbaeen 2026-08-04
    n, a = festival_regressors("2026-W32")  # Arbaeen on its Tuesday: Monday and Tuesday
    assert n == 0.0 and a == pytest.approx(2 / 7)
    assert festival_regressors("2026-W40") == (0.0, 0.0)


def _history(n=12, level=150e3, dep=40_000):
    return [(WEEKS[i], level + 2e3 * i, 0.06 * level, dep) for i in range(n)]


def test_news_adds_up_and_a_closed_week_nowcasts_near_its_estimate():
    hist = _history()
    closed = nowcast_week(hist, (WEEKS[12], 190e3, 8e3, 40_000))
    assert closed.model_usd is not None
    assert math.isclose(closed.usd - closed.model_usd, closed.news_value_usd + closed.news_departures_usd, rel_tol=1e-9, abs_tol=1e-6)
    assert abs(closed.usd - 190e3) < abs(closed.model_usd - 190e3)
    assert closed.ci_low_usd < closed.usd < closed.ci_high_usd


def test_the_error_shared_with_past_weeks_is_not_combined_away():
    """A closed week: the model (learnt from the same estimator's past weeks) narrows the
    nowcast only in the part of the week's error that is its own; the shared part stays,
    and without the shared part the interval would be narrower."""
    hist = _history()
    se = 8e3
    closed = nowcast_week(hist, (WEEKS[12], 190e3, se, 40_000))
    naive = nowcast_week(hist, (WEEKS[12], 190e3, se, 40_000), shared=0.0)
    sd = math.log(closed.ci_high_usd / closed.ci_low_usd) / (2 * 1.959963984540054) * closed.usd
    assert sd >= math.sqrt(SHARED_ERROR) * se * 0.99
    assert closed.ci_high_usd - closed.ci_low_usd > naive.ci_high_usd - naive.ci_low_usd


def test_a_week_just_begun_is_scaled_up_and_leans_on_the_model():
    hist = _history()
    day1 = nowcast_week(hist, (WEEKS[12], 30e3, 6e3, 40_000 / 7))
    assert day1.usd > 100e3  # the whole week, not the week to date
    assert day1.ci_low_usd < day1.model_usd < day1.ci_high_usd
    assert day1.news_departures_usd == 0.0
    # more departures than the model expected: the departures news is positive
    busy = nowcast_week(hist, (WEEKS[12], 220e3, 9e3, 55_000))
    assert busy.news_departures_usd > 0
    assert math.isclose(busy.usd - busy.model_usd, busy.news_value_usd + busy.news_departures_usd, rel_tol=1e-9)


def test_without_history_there_is_no_nowcast_and_with_little_it_is_still_the_whole_week():
    """No past week: nothing says how much of the week is to come, so no nowcast (it used
    to be the week to date). One to three past weeks: the departures still to come are
    forecast from their mean, so the nowcast is the whole week, not the week to date."""
    assert nowcast_week([], (WEEKS[0], 50e3, 5e3, 10_000)) is None
    for n in (1, 2, 3):
        hist = [(WEEKS[i], 150e3, 9e3, 40_000) for i in range(n)]
        nc = nowcast_week(hist, (WEEKS[n], 50e3, 5e3, 10_000))
        assert nc.model_usd is None
        assert nc.usd == pytest.approx(200e3)  # 50k so far x 40,000 / 10,000 departures
        assert nc.ci_low_usd > 50e3  # well above the week to date
        assert nc.ci_low_usd < 200e3 < nc.ci_high_usd


def _card_history(n=12, level=150e3, dep=40_000, share=0.04):
    g = np.random.default_rng(7)
    out = []
    for i in range(n):
        y = level + 2e3 * i
        out.append((WEEKS[i], y, 0.06 * y, dep, share * y * float(np.exp(g.normal(0, 0.05)))))
    return out


def test_card_spending_narrows_an_early_week_and_its_news_is_told_apart():
    hist = _card_history()
    # day 2 of the week: inspections say 45k so far (thin: SE 12k), the cards say 4% of 60k
    now = (WEEKS[12], 45e3, 12e3, 40_000 * 2 / 7, 0.04 * 60e3)
    with_cards = nowcast_week(hist, now)
    without = nowcast_week(hist, now, cards=False)
    assert without.news_card_usd == 0.0
    assert with_cards.news_card_usd > 0  # the cards say more than the model expected
    assert with_cards.usd > without.usd
    assert (with_cards.ci_high_usd - with_cards.ci_low_usd) < (without.ci_high_usd - without.ci_low_usd)
    total_news = with_cards.news_value_usd + with_cards.news_departures_usd + with_cards.news_card_usd
    assert math.isclose(with_cards.usd - with_cards.model_usd, total_news, rel_tol=1e-9)


def test_a_card_share_drop_does_not_bias_the_level():
    """Tourist cards suspended this week (spending a tenth of usual): the card series
    disagrees with the inspections far beyond its error and is left out; a drop some weeks
    ago has been learnt by the random-walk share, so the cards are used at the new share."""
    hist = _card_history()
    now = (WEEKS[12], 100e3, 6e3, 40_000 * 4 / 7, 0.004 * 100e3)
    nc, plain = nowcast_week(hist, now), nowcast_week(hist, now, cards=False)
    assert nc.news_card_usd == 0.0 and nc.usd == plain.usd
    dropped = [h[:4] + ((h[4] / 10,) if i >= 6 else (h[4],)) for i, h in enumerate(hist)]
    nc = nowcast_week(dropped, (WEEKS[12], 100e3, 6e3, 40_000 * 4 / 7, 0.004 * 100e3))
    assert nc.news_card_usd != 0.0
    assert abs(nc.usd - plain.usd) < 0.05 * plain.usd


def test_card_share_filter_equals_statsmodels_local_level():
    """The card share's random-walk bias: a local level with time-varying measurement
    variance, filtered by :func:`kalman_filter` and by statsmodels, equal to 1e-6."""
    from statsmodels.tsa.statespace.structural import UnobservedComponents

    g = np.random.default_rng(3)
    r = np.log(0.04) + np.cumsum(g.normal(0, 0.05, 20)) + g.normal(0, 0.1, 20)
    h = 0.01 + g.uniform(0, 0.02, 20)
    mod = UnobservedComponents(r, level="local level")
    mod.ssm.initialize_known(np.array([r[0]]), np.eye(1))
    mod.ssm["obs_cov"] = h.reshape(1, 1, -1)  # time-varying: the weeks' sampling errors
    mod.ssm["state_cov"] = np.array([[0.0025]])  # level variance 0.05^2
    res = mod.ssm.filter()
    Z = np.ones((20, 1))
    af, Pf, *_, ll = kalman_filter(r, Z, np.eye(1), np.eye(1) * 0.0025, h, np.array([r[0]]), np.eye(1))
    assert np.allclose(af[:, 0], res.filtered_state[0], rtol=1e-6, atol=1e-9)
    assert np.allclose(Pf[:, 0, 0], res.filtered_state_cov[0, 0], rtol=1e-6, atol=1e-12)
    assert math.isclose(ll.sum(), res.llf_obs.sum(), rel_tol=1e-6)


def test_an_early_open_week_is_nowcast_as_a_whole_week_not_its_days_so_far():
    """The live bug: in the first weeks of a run (fewer than 4 past weeks) the published
    nowcast equalled the week to date. Two full weeks and two days of a third, through
    :func:`estimators.estimate_weeks` (what live and batch publish): the open week's total
    row carries a nowcast well above its week to date; the first week has none."""
    from estimators import Stratum, StratumState, estimate_weeks
    from estimators.observations import DeclarationSeen, DepartureSeen, InspectionSeen

    z = (0,) * 7
    states = {}
    for week, n in (("2026-W20", 700), ("2026-W21", 700), ("2026-W22", 200)):
        s = Stratum(week, "MEH", "resident")
        st = states[s] = StratumState()
        for i in range(n):
            st.update(DepartureSeen(s, "iraq"))
            if i % 2:
                st.update(DeclarationSeen(s, "iraq", (10_000,) + z))
            if i % 5 == 0:
                st.update(InspectionSeen(s, "iraq", i, True, 0.2, bool(i % 2),
                                         (15_000 if i % 2 else 1_000 * (i % 3),) + z,
                                         (10_000 if i % 2 else 0,) + z))
    out = estimate_weeks(states, min_sample=5, min_category=2).filter(domain="total")
    open_row = out.filter(week="2026-W22").row(0, named=True)
    assert open_row["nowcast_usd"] == pytest.approx(open_row["estimate_usd"] * 700 / 200, rel=1e-9)
    assert open_row["nowcast_ci_low_usd"] > open_row["estimate_usd"]
    assert out.filter(week="2026-W20")["nowcast_usd"].is_null().all()
    one = estimate_weeks({k: v for k, v in states.items() if k.week == "2026-W20"}, min_sample=5, min_category=2)
    assert one["nowcast_usd"].is_null().all()  # no past week: no nowcast (was the week to date)


def test_before_anyone_has_left_the_nowcast_is_the_model():
    hist = _history()
    nc = nowcast_week(hist, (WEEKS[12], 0.0, 0.0, 0))
    assert nc.usd == nc.model_usd > 0 and nc.ci_low_usd < nc.usd < nc.ci_high_usd
    assert nc.news_value_usd == nc.news_card_usd == nc.news_departures_usd == 0.0
    assert nowcast_week(hist[:2], (WEEKS[2], 0.0, 0.0, 0)) is None


PROFILE = (0.12, 0.14, 0.15, 0.15, 0.16, 0.14, 0.14)  # a week's departures by day, Monday first


def _with_days(hist, rng=None):
    """The history with each week's departures by day of the week (the profile, scattered)."""
    out = []
    for week, y, se, dep in hist:
        shares = np.array(PROFILE) * (1 if rng is None else np.exp(rng.normal(0, 0.05, 7)))
        days = np.floor(dep * shares / shares.sum()).astype(int)
        days[-1] += dep - days.sum()
        out.append((week, y, se, dep, None, tuple(int(d) for d in days)))
    return out


def test_a_busy_week_is_seen_in_its_complete_days_not_left_at_the_forecast():
    """Departures 30% above every past week, three days in: the complete days, through the
    days' usual shares, say the week will be busier; the forecast of counts alone does
    not (the week so far is still below it), so it would leave the rest of the week at
    the usual traffic."""
    from estimators.nowcast import _extrapolated

    hist = _with_days(_history(), np.random.default_rng(1))
    busy = [round(1.3 * 40_000 * p) for p in PROFILE]
    days = busy[:3] + [busy[3] // 3, 0, 0, 0]  # Thursday under way
    n_wtd = sum(days)
    y_wtd = (150e3 + 2e3 * 12) * n_wtd / 40_000  # each departure carries the usual value
    n_ext, var_ext = _extrapolated(hist, (WEEKS[12], y_wtd, 0.06 * y_wtd, n_wtd, None, tuple(days)))
    assert abs(n_ext / (1.3 * 40_000) - 1) < 0.05 and var_ext > 0  # from Monday-Wednesday alone
    with_days = nowcast_week(hist, (WEEKS[12], y_wtd, 0.06 * y_wtd, n_wtd, None, tuple(days)))
    without = nowcast_week([h[:5] for h in hist], (WEEKS[12], y_wtd, 0.06 * y_wtd, n_wtd, None))
    assert without.news_departures_usd == 0.0  # N_tot = N_hat: "nobody more than usual"
    assert with_days.news_departures_usd > 0.1 * with_days.model_usd
    truth = 1.3 * (150e3 + 2e3 * 12)
    assert abs(with_days.usd - truth) < 0.6 * abs(without.usd - truth)
    assert with_days.ci_high_usd > without.ci_high_usd
    assert math.isclose(with_days.usd - with_days.model_usd,
                        with_days.news_value_usd + with_days.news_departures_usd, rel_tol=1e-9)


def test_days_that_do_not_add_up_or_an_unfinished_first_day_change_nothing():
    """Days are used only when they add up to the week's departures (a state restored from
    before they were kept holds zeros) and once a day is complete (the newest may be under
    way); otherwise the nowcast is the one from the forecast of counts."""
    hist = _with_days(_history())
    plain = [h[:5] for h in hist]
    now = (WEEKS[12], 60e3, 6e3, 16_000, None)
    base = nowcast_week(plain, now + (None,))
    for days in ((16_000, 0, 0, 0, 0, 0, 0), (0, 0, 0, 0, 0, 0, 0), (9_000, 6_000, 0, 0, 0, 0, 0)):
        assert nowcast_week(hist, now + (days,)) == base
    assert nowcast_week(hist, now + ((9_000, 7_000, 0, 0, 0, 0, 0),)) != base  # Monday complete
    stale = [h[:5] + ((0,) * 7,) for h in hist]  # past weeks restored without their days
    assert nowcast_week(stale, now + ((9_000, 7_000, 0, 0, 0, 0, 0),)) == base
