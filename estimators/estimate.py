"""Weekly estimates with 95% intervals, by domain, from stratum states.

Two estimators read the same :class:`~estimators.state.StratumState` objects:

:func:`estimate_weeks` (the project's estimate, ``method="pooled-ratio"``)
    Declarers are split by purpose into *personal* and *resale* declarers (a declaration
    declaring some item for resale: traders'), each class with its own census and its own
    coefficients below (traders under-declare differently; one pooled ratio swings with
    whether a trader happens to be in the sample). A class coefficient that no pool can
    estimate (no inspected resale declarer yet) is borrowed from both classes together.
    For each stratum ``h = (week t, post, group)`` the week's own census is combined with
    coefficients learnt from the random inspections of a *pool*: the same post and group
    over the weeks ``t - window .. t + window`` that exist (centred in the past, trailing
    for the live current week). A pool with fewer than ``min_sample`` inspected declarers
    (or non-declarers) is widened, step by step, to the posts of the same mode (air, sea,
    land) and group, to all posts of the group, to everything in the window, and last to
    all weeks; the ``pooling`` column names the widest level a row used. For category
    ``c`` the declarers split into those who declared something in ``c`` (ratio
    ``R_c = sum w a_c / sum w d_c``, applied to the census of declared value) and those who
    did not (mean ``m2_c`` of ``a_c``, applied to their census count); non-declarers get
    the mean ``m0_c``. The week's own inspected units count with their assessed values
    (a prediction estimator):

        Y_hc = sum_{s_t} a_c + sum_k [R_kc (D_khc - sum_{s_t,k} d_c) + m2_kc (N2_khc - n2_khc)]
               + m0_c (M_h - n0_h)        (k = personal, resale)

    ``m0_c`` can be split into light and heavy loads (``heavy=``), the heavy part learnt
    from a longer or wider pool.

    Categories, posts and regions add up to the total exactly. Regions take the stratum's
    coefficients with the region's own census (declared values, counts).

    Variance = coefficient part + prediction part. The coefficient part comes from the
    Poisson(1) bootstrap replicate sums (``B = 200``), replicate by replicate through the
    same formula, so shared pools are correlated correctly across strata and domains. The
    prediction part is the variance of the *unsampled* travellers' residuals in week t,
    ``(N_D,h - n_D,h) sigma_D^2 + (M_h - n_0,h) sigma_0^2``, with ``sigma^2`` the
    HT-weighted mean squared residual in the pool (for the total, of the residual summed
    over categories, so within-traveller covariances between categories are included).
    Because every replicate re-fits the coefficients and recomputes every week's total
    from them, a week's replicate spread includes the error of the coefficients it shares
    with its neighbours, and a sum of weeks (:func:`estimate_period`) takes the spread of
    the summed replicates, which carries the correlation between the weeks.

    The default interval (``interval="log"``, chosen by measurement on bench/accuracy) is
    normal on the log scale, ``Y exp(+-z s)`` with ``s^2 = log(1 + SE^2 / Y^2)``: skewed
    upward, as carpet values are, and never below zero. ``"percentile"`` adds in
    quadrature, on each side, the bootstrap percentile half-widths and ``z`` times the
    prediction standard error; ``"normal"`` gives the symmetric ``z * SE``.

    Thin cells: the variance of a cell is never below the floor of ``_floor`` (a pool's
    residual variance shrunk toward the whole sample's mean square with ``n0``
    pseudo-units), so a cell resting on a handful of alike inspections (all empty bags,
    one basket) is never published as a certain value; and a non-declarer pool in which
    no one carried anything is widened to the first level that has seen a carrier.

    Synthetic cells (``synthetic_error=True``, default): region rows take the stratum's
    coefficients, and so does a post whose non-declarer pool was widened beyond the post;
    their error then has a part no sampling variance holds, the area's own departure from
    the stratum's model. Its size is estimated by moments over the areas of the pool
    (:func:`_between`: ``tau^2`` from the areas' mean residuals beyond their sampling
    variance) and the cell's variance gains ``(sum_h U_h tau_h)^2`` (``U_h`` its
    uninspected travellers in stratum h; summed linearly because an area's departure is
    alike in the strata and weeks it spans). A post-week is synthetic over time as well
    (``week_error=True``, default): its coefficients come from the +-``window`` weeks, so
    the same moments over the pool's weeks give the week's own departure, added to the
    post's term in quadrature. The point estimates are unchanged.

    Outliers (``robust=``): ``"cb"`` is the conditional-bias robust estimator of Beaumont,
    Haziza and Ruiz-Gazen (2013) applied to each pool's non-declarer mean, ``"cb-full"``
    the same with the whole bias, ``"gap"`` the largest unit winsorized to the second's
    influence (:func:`_robust_shift`, from the ``TOP_LOADS_K`` largest loads the states
    keep unit by unit); all design-consistent. Off by default (``"none"``): on
    bench/accuracy each cut the worst period error but biased every week down (the heavy
    loads are a quarter of the total, not outliers) and lost weekly coverage; see
    bench/accuracy_results.md.

    Heavy loads by resale declarations (``heavy_resale=True``, off by default): the heavy
    part of a stratum's non-declarer mean is multiplied by ``(D_h / M_h) / (D_S / M_S)``,
    its resale declarations per non-declarer over its pool's (census counts), so a pool's
    heavy total is allocated to the weeks and groups whose declarations show traders
    crossing (:func:`_resale_share`; bench/accuracy_results.md, third round).

    Frequency post-strata (batch only, ``suitcase estimate --traveller-strata``; off by
    default because the live worker has no traveller lane): each departure ``i`` of
    traveller ``p`` at ``t_i`` gets ``k_i = #{j of p: t_i - 90 d < t_j <= t_i + A}`` over
    the archive (:mod:`streams.pipeline.travellers`; ``A = 0``, or ``A = 90 d`` for the
    batch-only ``"centred"`` window) and its class ``f(k) = "1" | "2-4" | "5+"`` goes into
    its stratum's group, ``h = (t, post, g|f)``. The formula for ``Y_hc`` is applied per
    class stratum with its own census ``N_h, D_h, M_h``; the pools become

        post:  (post, g|f, t +- window)    mode:  (mode, g|f, t +- window)
        group: (g|f, every post, t +- window)
        all:   class f: every post, both groups, every week
        all-weeks: everything (classes mixed)

    and a coefficient is taken from the first level with ``min_sample`` inspected
    travellers, but never from a level that mixes classes while the class itself has
    any: if only ``all-weeks`` reaches ``min_sample``, the class-wide ``all`` is used
    whenever it holds at least one inspected traveller of that kind. So repeat traders'
    loads are learnt from their own class's inspected trips (over posts, then weeks: the
    widening is the shrinkage toward the class), a heavy trader's load is multiplied over
    the ``M_h`` of its class rather than over every non-declarer at a thin post, and a
    heavy load on a first trip keeps its pooled component in class ``"1"``. The pooling
    column says ``class-all-weeks`` for the class-wide level. Domains sum the class
    strata, so published cells (total, category, border_post, destination_region) are
    the same cells; summing the class states back (``Tables.collapsed``) gives the default
    states exactly. With the past window, early weeks of an archive see fewer past trips
    (left-censored counts), so repeat travellers there fall partly in lower classes.

    Model assumptions (declared): within a pool, ratios and means are the same in every
    week (so the window should be short against seasonal change), and regions of a
    stratum share its coefficients (region rows are model-based synthetic estimates,
    with the between-region term above in their variance).

:func:`textbook_weeks` (``method="textbook"``)
    The classical per-week stratified estimator of ``method.md``: per stratum the HT
    (Hajek) ratio estimator for declarers ``R = sum w a / sum w d`` times the census ``D``
    (categories: ``R_c = sum w a_c / sum w d``), plus ``M`` times the weighted mean for
    non-declarers, Taylor-linearised variances with finite-population correction (as
    samplics' ``TaylorEstimator``), normal intervals. A stratum with fewer than two
    inspected declarers (non-declarers) borrows the ratio (mean) of the same mode, then of
    the group, then of everything, in the same week.

Both return a polars DataFrame with the columns of :data:`COLUMNS`. ``n_travellers`` is
the number of distinct travellers behind a cell (declarers with a positive declared value
in it and randomly inspected travellers with a positive assessed value in it), from the
strata's mergeable bottom-k sketches unioned over the cell: exact below ``SKETCH_K`` (16),
and ``SKETCH_K`` means "at least 16" (enough for the default disclosure threshold 10).

References
----------
Cochran, W. G. (1977). Sampling Techniques, 3rd ed., ch. 6 (ratio estimators).
Royall, R. M. (1970). On finite population sampling theory under certain linear regression
models. Biometrika 57, 377-387 (prediction estimator).
Särndal, C.-E., Swensson, B., Wretman, J. (1992). Model Assisted Survey Sampling, ch. 10.
Hanley, J. A. and MacGibbon, B. (2006) (Poisson bootstrap).
Beaumont, J.-F., Haziza, D., Ruiz-Gazen, A. (2013). A unified approach to robust estimation
in finite population sampling. Biometrika 100, 555-569.
Gonzalez, M. E., Waksberg, J. (1973). Estimation of the error of synthetic estimates.
"""

from __future__ import annotations

import datetime
import functools
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from statistics import NormalDist

import numpy as np
import polars as pl

from estimators.disclosure import DistinctSketch
from estimators.nowcast import NOWCAST_COLUMNS, nowcast_week
from estimators.observations import Stratum
from estimators.replicates import N_REPLICATES, poisson_weights_many
from estimators.state import (
    C,
    D_W,
    D_WA1,
    D_WA2,
    D_WD,
    D_WZ,
    HVY,
    K_ALL,
    K_D,
    N_W,
    N_WA,
    POSTS,
    R,
    RES,
    SKETCH_K,
    WEIGHT_SCALE,
    FormalExports,
    SampleState,
    StratumState,
    WeekPayments,
)
from estimators.reference import BORDER_POSTS, CATEGORIES, DESTINATION_REGIONS

__all__ = ["COLUMNS", "LEVELS", "estimate_weeks", "estimate_period", "textbook_weeks", "week_index", "period_label"]

#: Output columns, in order: the contract's, then documented extras.
COLUMNS: tuple[str, ...] = (
    "week",
    "domain",
    "key",
    "estimate_usd",
    "ci_low_usd",
    "ci_high_usd",
    "std_error_usd",
    "formal_exports_usd",
    "n_departures",
    "n_inspected",
    # extras
    "n_declarations",  # declarations (census) in the domain
    "declared_usd",  # declared value (census) in the domain
    "n_targeted",  # targeted inspections, reported apart, never in the level
    "targeted_assessed_usd",  # their assessed value (category rows: that category)
    "n_inspected_pooled",  # random inspections in the pools the domain's coefficients came from
    "pooling",  # widest pooling level used, e.g. "post±2w", "mode±2w"
    "prediction_se_usd",  # the unsampled-residual part of std_error_usd
    "method",  # "pooled-ratio" or "textbook"
    "tourist_handicraft_card_usd",  # net tourist-card spending at handicraft merchants (total rows)
    "n_travellers",  # distinct travellers behind the cell (see below); SKETCH_K means "at least"
    # nowcast of the whole week (the last week's total row only; estimators.nowcast)
    *NOWCAST_COLUMNS,
)

#: Pooling levels, narrowest first.
LEVELS: tuple[str, ...] = ("post", "mode", "group", "all", "all-weeks")


@functools.lru_cache(maxsize=4096)
def week_index(week: str) -> int:
    """Consecutive integer of an ISO week label (differences are weeks apart).

    >>> week_index("2026-W01") - week_index("2025-W52")
    1
    """
    y, w = week.split("-W")
    return datetime.date.fromisocalendar(int(y), int(w), 1).toordinal() // 7


def _z(alpha: float) -> float:
    return NormalDist().inv_cdf(1.0 - alpha / 2.0)


def _f(a) -> np.ndarray:
    return np.asarray(a, dtype=np.float64)


class _Index:
    """States arranged by (post, group) and week, with cached pooled samples."""

    def __init__(self, states: Mapping[Stratum, StratumState]):
        self.states = {Stratum(*k): v for k, v in states.items()}
        self.weeks = sorted({s.week for s in self.states}, key=week_index)
        self.cells = sorted({(s.border_post, s.group) for s in self.states})
        #: Groups carry a frequency class (``"visitor|5+"``): level "all" is then the
        #: class over every post, group and week (see the module docstring).
        self.classes = any("|" in s.group for s in self.states)
        self._cache: dict = {}
        self._by_week: dict[str, list[Stratum]] = {}
        for s in self.states:
            self._by_week.setdefault(s.week, []).append(s)

    def members(self, level: str, post: str, group: str, week: str, window: int | None):
        """Strata of a pool; ``window=None`` means every week."""
        t = week_index(week)
        mode = BORDER_POSTS[post]["mode"]
        out = []
        for s in self.states:
            if window is not None and level != "all-weeks" and abs(week_index(s.week) - t) > window:
                continue
            if level == "post" and (s.border_post != post or s.group != group):
                continue
            if level == "mode" and (BORDER_POSTS[s.border_post]["mode"] != mode or s.group != group):
                continue
            if level == "group" and s.group != group:
                continue
            out.append(s)
        return sorted(out)

    def view(self, pool: SampleState, cls: str) -> "_DeclView":
        """The declarer class ``cls`` of a pooled sample (cached with the pool)."""
        key = ("view", id(pool), cls)
        if key not in self._cache:
            self._cache[key] = (_DeclView(pool, cls), pool)  # keep the pool alive with its id
        return self._cache[key][0]

    def unit_sums(self, pool: SampleState):
        """The unweighted sums of a pool's residuals, as floats (cached with the pool):
        non-declarers by region, their assessed value by region, and per declarer class
        ``(n, assessed, declared, declarers without a value)``; every stratum whose
        between-area term reads the pool reuses them."""
        key = ("units", id(pool))
        if key not in self._cache:
            p = pool
            resale = (p.resale_n_declarer, p.resale_assessed_declarer, p.resale_declared_declarer,
                      p.resale_n_declarer_zero)
            alls = (p.n_declarer, p.assessed_declarer, p.declared_declarer, p.n_declarer_zero)
            classes = {
                cls: tuple(_f(x) for x in (resale if cls == "resale" else [x - y for x, y in zip(alls, resale)]))
                for cls in CLASSES
            }
            self._cache[key] = ((_f(p.n_nondeclarer), _f(p.assessed_nondeclarer).sum(1), classes), pool)
        return self._cache[key][0]

    def pooled(self, level: str, post: str, group: str, week: str, window: int | None) -> SampleState:
        mode = BORDER_POSTS[post]["mode"]
        when = week if (window is not None and level != "all-weeks") else None
        if self.classes and level in ("all", "all-weeks"):
            return self._class_pool(level, group)
        key = {
            "post": (level, post, group),
            "mode": (level, mode, group),
            "group": (level, group),
            "all": (level,),
            "all-weeks": (level,),
        }[level] + (when, window)
        if key not in self._cache:
            # A group-by: the pool is the sum of its weeks' sums at this level (each
            # cached), the same exact integers as summing its strata one by one.
            if when is None:
                weeks = self.weeks
            else:
                t = week_index(week)
                weeks = [w for w in self.weeks if abs(week_index(w) - t) <= window]
            self._cache[key] = SampleState.pool(
                self._week_sum("all" if level == "all-weeks" else level, post, group, w) for w in weeks
            )
        return self._cache[key]

    def _class_pool(self, level: str, group: str) -> SampleState:
        """With frequency classes: "all" is the group's class over every post, group and
        week; "all-weeks" is everything (cached)."""
        cls = group.partition("|")[2] if level == "all" else None
        key = ("class-pool", cls)
        if key not in self._cache:
            self._cache[key] = SampleState.pool(
                self._week_sum("all", "IKA", f"|{cls}" if cls is not None else "", w) for w in self.weeks)
        return self._cache[key]

    def _week_sum(self, level: str, post: str, group: str, week: str) -> SampleState:
        """The summed samples of one week's strata in a pool of ``level`` (cached; with
        frequency classes, "all" is the strata of ``group``'s class, or all of them when
        ``group`` is empty)."""
        if self.classes and level == "all":
            cls = group.partition("|")[2] if group else None
            key = ("week", week, "class", cls)
            if key not in self._cache:
                self._cache[key] = SampleState.pool(
                    self.states[s].sample for s in self._by_week.get(week, ())
                    if cls is None or s.group.partition("|")[2] == cls)
            return self._cache[key]
        mode = BORDER_POSTS[post]["mode"]
        key = ("week", week) + {
            "post": (level, post, group),
            "mode": (level, mode, group),
            "group": (level, group),
            "all": (level,),
        }[level]
        if key not in self._cache:
            self._cache[key] = SampleState.pool(
                self.states[s].sample for s in self._by_week.get(week, ())
                if not (level == "post" and (s.border_post != post or s.group != group))
                and not (level == "mode" and (BORDER_POSTS[s.border_post]["mode"] != mode or s.group != group))
                and not (level == "group" and s.group != group)
            )
        return self._cache[key]


def _variances(x: np.ndarray) -> np.ndarray:
    """``np.var`` of each row of a 2-d C-ordered float array, the same arithmetic without
    its overhead (each row summed along memory, as ``np.var`` of the row alone)."""
    d = x - (x.sum(1) / x.shape[1])[:, None]
    return (d * d).sum(1) / x.shape[1]


def _fit(num, den, rnum, rden, wide=None) -> tuple[np.ndarray, np.ndarray]:
    """Points ``[k]`` and replicates ``[B, k]`` of ``k`` ratios at once.

    ``num``, ``den``: the ratios' exact first moments (ints); ``rnum``, ``rden``: their
    replicate sums ``[k, B]``. ``wide`` (``variance="wide"``): ``(num, den, rnum, rden,
    n_loc, n_wide)`` of the same ratios in the pool over all weeks; a ratio whose wide
    pool is larger takes the wide replicate deviations scaled by ``sqrt(n_wide / n_loc)``
    when they vary more. Element by element the arithmetic of one ratio at a time.
    """
    point = np.array([float(a) / float(b) for a, b in zip(num, den)])
    rep = _ratio(rnum, rden, point[:, None])
    if wide is not None:
        wnum, wden, wrnum, wrden, n_loc, n_wide = wide
        sel = [j for j in range(len(point)) if n_wide[j] > n_loc[j] > 0 and wden[j] > 0]
        if sel:
            wpoint = np.array([float(wnum[j]) / float(wden[j]) for j in sel])[:, None]
            scale = np.array([(n_wide[j] / n_loc[j]) ** 0.5 for j in sel])[:, None]
            dev = (_ratio(_f(wrnum)[sel], _f(wrden)[sel], wpoint) - wpoint) * scale
            sel = np.array(sel)
            better = _variances(dev) > _variances(rep[sel])
            rep[sel[better]] = point[sel[better], None] + dev[better]
    return point, rep.T


def _ratio(num, den, fallback):
    """num/den elementwise, ``fallback`` where den is 0."""
    num, den = _f(num), _f(den)
    return np.divide(num, den, out=np.full(num.shape, fallback, dtype=np.float64), where=den > 0)


class _Rows:
    """Rows ``start .. start + size`` of a pooled sample's replicate sums (minus the rows
    from ``minus``), read from the sample's sparse rows when indexed: thousands of pools
    and views are read per estimate, and a dense copy each (53-134 KB) made those copies
    the biggest holder of memory."""

    __slots__ = ("p", "start", "minus", "shape")

    def __init__(self, p: SampleState, start: int = 0, minus: int | None = None, size: int = K_ALL):
        self.p, self.start, self.minus, self.shape = p, start, minus, (size, N_REPLICATES)

    def _row(self, i: int) -> np.ndarray:
        row = self.p.replicate_row(self.start + i)
        return row if self.minus is None else row - self.p.replicate_row(self.minus + i)

    def take(self, rows) -> np.ndarray:
        """Rows ``rows`` (in range) stacked, int64[len(rows), B], gathered at once."""
        out = _gather(self.p, self.start + np.asarray(rows, dtype=np.intp))
        return out if self.minus is None else out - _gather(self.p, self.minus + np.asarray(rows, dtype=np.intp))

    def __getitem__(self, i):
        if isinstance(i, slice):
            return self.take(range(self.shape[0])[i])
        return self._row(range(self.shape[0])[i])


def _gather(p: SampleState, rows: np.ndarray) -> np.ndarray:
    """Replicate rows ``rows`` of ``p`` from its sparse rows (zero where it has none)."""
    have, values = p.replicate_rows()
    out = np.zeros((len(rows), N_REPLICATES), dtype=np.int64)
    if len(have):
        at = np.minimum(np.searchsorted(have, rows), len(have) - 1)
        hit = have[at] == rows
        out[hit] = values[at[hit]]
    return out


class _DeclView:
    """The declarer sums of one class (all, personal or resale) of a pooled sample."""

    __slots__ = ("first", "reps", "n", "n_zero", "cross", "cat")

    def __init__(self, p: SampleState, cls: str):
        if cls == "all":
            self.first, self.reps = p.first[:K_D], _Rows(p, 0, size=K_D)
            self.n, self.n_zero = int(p.n_declarer.sum()), p.n_declarer_zero.sum(0)
            self.cross, self.cat = p.decl_cross, p.decl_cat
        elif cls == "resale":
            self.first, self.reps = p.first[RES : RES + K_D], _Rows(p, RES, size=K_D)
            self.n, self.n_zero = int(p.resale_n_declarer.sum()), p.resale_n_declarer_zero.sum(0)
            self.cross, self.cat = p.resale_decl_cross, p.resale_decl_cat
        else:  # personal = all - resale, exactly
            self.first = p.first[:K_D] - p.first[RES : RES + K_D]
            self.reps = _Rows(p, 0, minus=RES, size=K_D)
            self.n = int(p.n_declarer.sum() - p.resale_n_declarer.sum())
            self.n_zero = p.n_declarer_zero.sum(0) - p.resale_n_declarer_zero.sum(0)
            self.cross = p.decl_cross - p.resale_decl_cross
            self.cat = p.decl_cat - p.resale_decl_cat

    def count(self, kind: str, c: int) -> int:
        """Sample size behind a coefficient: declared in c (R) or not (m2)."""
        return self.n - int(self.n_zero[c]) if kind == "R" else int(self.n_zero[c])


def _cross_category(kind: str, view) -> tuple[float, np.ndarray] | None:
    """The coefficient of a category no inspected declarer can inform, from all categories.

    A census category with no inspected declarer who declared it (``R``), in any week or
    post, borrows the declarers' ratio over all categories: a declared model assumption
    (under-declaration alike across categories), used rather than leaving every interval
    of the stratum empty. A mean ``m2`` with no inspected declarer who left the category
    out is taken as zero (nobody seen carrying it undeclared). None if nothing at all
    was inspected.
    """
    if kind == "m2":
        return 0.0, np.zeros(view.reps.shape[1])
    num = sum(int(view.first[D_WA1 + c]) for c in range(C))
    den = sum(int(view.first[D_WD + c]) for c in range(C))
    if den <= 0:
        return None
    point = num / den
    reps = _ratio(
        _f(view.reps[D_WA1 : D_WA1 + C]).sum(0), _f(view.reps[D_WD : D_WD + C]).sum(0), point
    )
    return point, reps


def _decl_rows(kind: str, c: int) -> tuple[int, int]:
    return (D_WA1 + c, D_WD + c) if kind == "R" else (D_WA2 + c, D_WZ + c)


#: Declarer classes: personal declarers and resale (traders') declarers.
CLASSES: tuple[str, ...] = ("personal", "resale")


class _Coefficients:
    """Point and replicate coefficients of one stratum, with the pools they came from.

    Declarers are split by purpose (``personal``, ``resale``); each class has its own
    ratio ``R_c`` and mean ``m2_c``, and non-declarers a mean ``m0_c`` which is the sum of a
    light part (loads below ``HEAVY_CENTS``, from the usual pool) and a heavy part (from
    the pool ``heavy``; see :func:`estimate_weeks`). Each coefficient comes from the
    narrowest pool with enough sample (``min_sample`` for the class, ``min_category``
    for the category's subgroup). A resale coefficient that no pool can estimate is
    borrowed from the declarers of both classes together. Its replicates are the pool's
    own bootstrap replicates, or, with ``variance="wide"``, the replicate deviations of
    the same pool level over all weeks scaled by ``sqrt(n_wide / n_pool)`` (a generalised
    variance function: the wide pool has seen the rare large carriers that a few weeks'
    sample often misses), whichever gives the larger variance.
    """

    def __init__(self, index, post, group, week, window, min_sample, min_category, need, variance, heavy,
                 robust="none", week_error=False, heavy_resale=False):
        B = N_REPLICATES
        L = len(LEVELS)
        pools = [index.pooled(lv, post, group, week, window) for lv in LEVELS]
        wides = [index.pooled(lv, post, group, week, None) for lv in LEVELS]
        self.ok = True
        levels: set[int] = set()
        self.R, self.m2, self.Rb, self.m2b = {}, {}, {}, {}
        self.sig_d_cat, self.sig_d_tot = {}, {}
        n_pooled = 0

        def fit(kind, cs, src, wsrc, i):
            """Points and replicates of the declarer coefficients ``kind`` of categories
            ``cs`` at pool level i of views ``src`` (wide: ``wsrc``)."""
            v, w = src[i], wsrc[i]
            nd = [_decl_rows(kind, c) for c in cs]
            rows = [n for n, _ in nd] + [d for _, d in nd]  # numerators, then denominators
            k = len(cs)
            wide = None
            if variance == "wide":
                wr = w.reps.take(rows)
                wide = ([w.first[r] for r in rows[:k]], [w.first[r] for r in rows[k:]], wr[:k], wr[k:],
                        [v.count(kind, c) for c in cs], [w.count(kind, c) for c in cs])
            vr = v.reps.take(rows)
            return _fit([v.first[r] for r in rows[:k]], [v.first[r] for r in rows[k:]], vr[:k], vr[k:], wide)

        for cls in CLASSES:
            views = [index.view(p, cls) for p in pools]
            wviews = [index.view(p, cls) for p in wides]
            alls = [index.view(p, "all") for p in pools]
            main = next((i for i, v in enumerate(views) if v.n >= min_sample), None)
            if index.classes and (main is None or main == L - 1) and views[L - 2].n > 0:
                main = next(i for i in range(L - 1) if views[i].n > 0 and (views[i].n >= min_sample or i == L - 2))
            if main is None:
                main = next((i for i, v in enumerate(views) if v.n > 0), L - 1)
            levels.add(main)
            n_pooled += views[main].n
            coef = {k: np.zeros(C) for k in ("R", "m2")}
            reps = {k: np.zeros((B, C)) for k in ("R", "m2")}
            for kind in ("R", "m2"):
                groups: dict = defaultdict(list)  # (borrowed, level) -> categories fitted there
                for c in range(C):
                    rows = _decl_rows(kind, c)
                    chosen = next((i for i in range(main, L) if views[i].count(kind, c) >= min_category), None)
                    if chosen is None:
                        chosen = next((i for i in range(L - 1, main - 1, -1) if views[i].first[rows[1]] > 0), None)
                    borrowed = False
                    if chosen is None:  # borrow from both classes together
                        borrowed = True
                        chosen = next((i for i in range(main, L) if alls[i].count(kind, c) >= min_category), None)
                        if chosen is None:
                            chosen = next((i for i in range(L - 1, -1, -1) if alls[i].first[rows[1]] > 0), None)
                    if chosen is None:
                        if need[cls][kind][c] > 0:
                            fallback = _cross_category(kind, alls[L - 1])
                            if fallback is None:
                                self.ok = False
                            else:
                                levels.add(L - 1)
                                coef[kind][c], reps[kind][:, c] = fallback
                        continue
                    levels.add(chosen)
                    groups[borrowed, chosen].append(c)
                for (borrowed, chosen), cs in groups.items():
                    src, wsrc = (alls, [index.view(p, "all") for p in wides]) if borrowed else (views, wviews)
                    coef[kind][cs], reps[kind][:, cs] = fit(kind, cs, src, wsrc, chosen)
            self.R[cls], self.m2[cls] = coef["R"], coef["m2"]
            self.Rb[cls], self.m2b[cls] = reps["R"], reps["m2"]
            vp = wviews if variance == "wide" else views
            self.sig_d_cat[cls], self.sig_d_tot[cls] = self._sigma_declarers(vp[main], coef["R"], coef["m2"])

        # Non-declarers: light loads from the usual pool, heavy loads from the heavy pool.
        main0 = next((i for i, p in enumerate(pools) if int(p.n_nondeclarer.sum()) >= min_sample), None)
        if index.classes and (main0 is None or main0 == L - 1) and pools[L - 2].n_nondeclarer.sum() > 0:
            # never mix frequency classes while the class itself has inspected travellers
            main0 = L - 2
        if main0 is None:
            main0 = next((i for i, p in enumerate(pools) if p.n_nondeclarer.sum() > 0), L - 1)
        if sum(int(v) for v in pools[main0].first[N_WA : N_WA + C]) == 0:
            # a pool of non-declarers none of whom carried anything says little about the
            # rest (a handful of empty bags is not a certain zero): widen to the first
            # level that has seen a carrier, if any
            main0 = next(
                (i for i in range(main0, L) if sum(int(v) for v in pools[i].first[N_WA : N_WA + C]) > 0), main0
            )
        levels.add(main0)
        n_pooled += int(pools[main0].n_nondeclarer.sum())
        self.m0, self.m0b = np.zeros(C), np.zeros((B, C))
        if pools[main0].first[N_W] > 0 or wides[main0].first[N_W] > 0:
            src, src_window = (pools, window) if pools[main0].first[N_W] > 0 else (wides, None)
            if heavy is None:
                hpools, hlevel, hwindow = src, main0, src_window
            else:
                h_level, hwindow = heavy
                hlevel = max(LEVELS.index(h_level), main0)
                hpools = [index.pooled(lv, post, group, week, hwindow) for lv in LEVELS]
                if hpools[hlevel].first[N_W] <= 0:
                    hpools, hlevel, hwindow = src, main0, src_window
            def loads(p, heavy_part):
                """Exact first moments and replicate sums [C, B] of the non-declarers' heavy
                loads ``w a_c 1[A >= HEAVY]`` or light ones ``w a_c - w a_c 1[A >= HEAVY]``
                (numerators), of ``w`` (denominators), and their count."""
                rows = _Rows(p)
                hvy = rows[HVY + 1 : HVY + 1 + C]
                if heavy_part:
                    num, rnum = [p.first[HVY + 1 + c] for c in range(C)], hvy
                else:
                    num = [p.first[N_WA + c] - p.first[HVY + 1 + c] for c in range(C)]
                    rnum = rows[N_WA : N_WA + C] - hvy
                return num, [p.first[N_W]] * C, rnum, np.broadcast_to(rows[N_W], (C, B)), int(p.n_nondeclarer.sum())

            def fit0(p, w, heavy_part):
                """Points and replicates of the light or heavy mean of every category."""
                *loc, n_loc = loads(p, heavy_part)
                wide = None
                if variance == "wide":
                    *wid, n_wide = loads(w, heavy_part)
                    wide = (*wid, [n_loc] * C, [n_wide] * C)
                return _fit(*loc, wide)

            # only level main0 (hlevel) is fitted: the other levels' sums are never read
            pl_, rl = fit0(src[main0], wides[main0], False)
            ph, rh = fit0(hpools[hlevel], wides[hlevel], True)
            if heavy_resale and not index.classes:
                f = _resale_share(index, LEVELS[hlevel], post, group, week, hwindow)
                ph, rh = ph * f, rh * f
            self.m0, self.m0b = pl_ + ph, np.ascontiguousarray(rl + rh)  # [B, C] as the sums below expect
            levels.add(hlevel)
            if robust != "none":
                d, db = _robust_shift(src[main0], self.m0, self.m0b, 1.0 if robust == "cb-full" else 0.5,
                                      gap=robust == "gap")
                self.m0, self.m0b = self.m0 + d, self.m0b + db
        elif need["m0"] > 0:
            self.ok = False
        self.levels_used = levels
        self.n_pooled = n_pooled
        vp = wides if variance == "wide" else pools
        self.sig_0_cat, self.sig_0_tot = self._sigma_nondeclarers(vp[main0])
        self.tau_region = _between(*self._residuals(index, pools[main0]))
        # A post whose non-declarer pool is wider than the post is synthetic too: the same
        # moments over the (post, group) cells of that pool, each cell one area.
        self.tau_post = 0.0
        if main0 > 0:
            lv = LEVELS[main0]
            mode = BORDER_POSTS[post]["mode"]
            cells = [
                (p_, g_) for p_, g_ in index.cells
                if (lv == "all-weeks" or (lv == "all" and not index.classes))
                or (lv == "all" and g_.partition("|")[2] == group.partition("|")[2])
                or (g_ == group and (lv == "group" or BORDER_POSTS[p_]["mode"] == mode))
            ]
            every_week = lv == "all-weeks" or (lv == "all" and index.classes)
            parts = [self._residuals(index, index.pooled("post", p_, g_, week, None if every_week else window))
                     for p_, g_ in cells]
            self.tau_post = _between(*(np.array([float(x[k].sum()) for x in parts]) for k in range(3)))
        # A post-week is also synthetic over time: its coefficients come from +-window weeks,
        # and the week's own departure from them is in no sampling variance. The same
        # moments over the weeks of the pool, each week one area.
        self.tau_week = 0.0
        if week_error and window and LEVELS[main0] != "all-weeks":
            t = week_index(week)
            parts = [self._residuals(index, index._week_sum(LEVELS[main0], post, group, w))
                     for w in index.weeks if abs(week_index(w) - t) <= window]
            self.tau_week = _between(*(np.array([float(x[k].sum()) for x in parts]) for k in range(3)))

    def _residuals(self, index: "_Index", p: SampleState):
        """Per destination region of pool ``p``: inspected travellers ``n_r``, their summed
        residual ``A - prediction`` under this stratum's coefficients, and its sampling
        variance from the unit residual variances (see :func:`_between`)."""
        n, assessed, classes = index.unit_sums(p)
        res = assessed - n * float(self.m0.sum())
        var = n * self.sig_0_tot
        for cls in CLASSES:
            nk, a, d, z = classes[cls]
            res = res + (a - self.R[cls] * d - self.m2[cls] * z).sum(1)
            var = var + nk * self.sig_d_tot[cls]
            n = n + nk
        return n, res, var


    def _sigma_declarers(self, v: _DeclView, R_, m2):
        sw = float(v.first[D_W])
        if sw <= 0:
            return np.zeros(C), 0.0
        M = _f(v.cross)
        beta = np.concatenate([[1.0], -R_, -m2])
        tot = max(float(beta @ M @ beta) / sw, 0.0)
        a2, ad = _f(v.cat[0]), _f(v.cat[1])
        d2 = np.diag(M)[1 : 1 + C]
        z = np.diag(M)[1 + C :]
        az = _f(v.first[D_WA2 : D_WA2 + C])
        cat = a2 - 2 * R_ * ad - 2 * m2 * az + R_**2 * d2 + m2**2 * z
        return np.maximum(cat / sw, 0.0), tot

    def _sigma_nondeclarers(self, p: SampleState):
        sw = float(p.first[N_W])
        if sw <= 0:
            return np.zeros(C), 0.0
        wa = _f(p.first[N_WA : N_WA + C])
        A2, a2 = float(p.nondecl_second[0]), _f(p.nondecl_second[1:])
        cat = (a2 - 2 * self.m0 * wa + self.m0**2 * sw) / sw
        sm = float(self.m0.sum())
        tot = (A2 - 2 * sm * wa.sum() + sm**2 * sw) / sw
        return np.maximum(cat, 0.0), max(tot, 0.0)


def _gap_shift(p: SampleState, m0, m0b, wx, a, W):
    """The ``"gap"`` variant of :func:`_robust_shift`: only the largest conditional bias's
    excess over the second largest is removed, ``m0 - (B_(1) - B_(2))``, i.e. the single
    largest unit winsorized to the second's influence (``B_(2) = 0`` when it is alone). A
    unit that is one of several alike is left as it is; one that stands alone no longer
    dominates. Per category in proportion to the largest unit's excess."""
    def shift(bias, m, Wx, r=None):
        order = np.argsort(-bias, kind="stable")
        j = order[0]
        b2 = max(bias[order[1]], 0.0) if len(order) > 1 and np.isfinite(bias[order[1]]) else 0.0
        if not np.isfinite(bias[j]) or bias[j] <= b2:
            return np.zeros(C)
        unit = (1.0 if r is None else r[j]) * wx[j] / Wx * (a[j] - m)  # [C]
        return -unit * (bias[j] - b2) / bias[j]

    d = shift(wx / W * (a.sum(1) - m0.sum()), m0, W)
    Wb = _f(p.replicates[N_W]).astype(np.float64)
    Wb = np.where(Wb > 0, Wb, W)
    r = poisson_weights_many([e[1] for e in p.top_loads.entries]).astype(np.float64)  # [k, B]
    db = np.zeros_like(m0b)
    for b in range(m0b.shape[0]):
        bias = np.where(r[:, b] > 0, r[:, b] * wx / Wb[b] * (a.sum(1) - m0b[b].sum()), -np.inf)
        db[b] = shift(bias, m0b[b], Wb[b], r[:, b])
    return d, db


def _robust_shift(p: SampleState, m0, m0b, share: float, gap: bool = False):
    """Shift of the non-declarer mean ``m0`` (per category, point and replicates) by the
    conditional-bias robust estimator (Beaumont, Haziza and Ruiz-Gazen 2013).

    For the Hajek mean ``m0 = sum w A / sum w`` under Poisson sampling, the conditional
    bias of a sampled unit is ``B_i = (w_i - 1)(A_i - m0) / sum w``: what it adds by
    standing for ``w_i - 1`` others. The robust mean is ``m0 - (B_max + B_min) / 2``
    (``share = 0.5``; ``"cb-full"``: ``share = 1``), with ``B_max`` over the pool's
    ``TOP_LOADS_K`` largest ``(w - 1) A`` (kept unit by unit in the states: exact when the
    largest bias is among them, as it is whenever the top loads dwarf ``m0``) and
    ``B_min = -(w_max - 1) m0 / sum w`` (a zero load of the largest weight). Both vanish as
    the sample grows, so the estimator stays design-consistent; a single heavy load of
    weight 200 no longer counts 200 times. Per category, ``B`` splits as the unit's loads.
    Replicates: the same in each replicate, with its Poisson weights ``r_i`` (units with
    ``r_i = 0`` absent) and its own ``m0`` and ``sum w``.
    """
    top = p.top_loads
    W = float(p.first[N_W])
    if W <= 0 or not top.entries:
        return np.zeros(C), np.zeros_like(m0b)
    wmax = (top.w_max - WEIGHT_SCALE) / W
    ent = top.entries
    wx = np.array([(e[2] - WEIGHT_SCALE) for e in ent], dtype=np.float64)  # [k]
    a = np.array([e[3] for e in ent], dtype=np.float64)  # [k, C]
    if gap:
        return _gap_shift(p, m0, m0b, wx, a, W)
    # point: the unit of largest total bias
    bias = wx / W * (a.sum(1) - m0.sum())
    j = int(np.argmax(bias))
    d = -share * (wx[j] / W * (a[j] - m0) - wmax * m0)
    # replicates
    Wb = _f(p.replicates[N_W]).astype(np.float64)
    Wb = np.where(Wb > 0, Wb, W)
    r = poisson_weights_many([e[1] for e in ent]).astype(np.float64)  # [k, B]
    bias_b = r * wx[:, None] * (a.sum(1)[:, None] - m0b.sum(1)[None, :]) / Wb[None, :]  # [k, B]
    bias_b = np.where(r > 0, bias_b, -np.inf)
    jb = np.argmax(bias_b, axis=0)  # [B]
    have = np.isfinite(bias_b[jb, np.arange(bias_b.shape[1])])
    unit = (r[jb, np.arange(r.shape[1])] * wx[jb])[:, None] * (a[jb] - m0b) / Wb[:, None]  # [B, C]
    unit = np.where(have[:, None], unit, 0.0)
    return d, -share * (unit - wmax * W / Wb[:, None] * m0b)


def _resale_share(index: _Index, level: str, post: str, group: str, week: str, window: int | None) -> float:
    """Factor of a stratum's heavy non-declarer mean under ``heavy_resale``: its resale
    declarations per non-declarer over those of the pool it was learnt from (census
    counts), ``(D_h / M_h) / (D_S / M_S)``; 1 when either has none to compare.

    Heavy loads are traders' loads, and traders declare for resale on some of their trips:
    the week's resale declarations say how many traders crossed, which the pool's handful
    of inspections cannot. Summed over the pool's strata the factor keeps the pool's heavy
    total (``sum_h M_h m f_h = m M_S``, ``m`` the pool's mean), so it only allocates that total between the
    weeks and groups of the pool, by the census."""
    key = ("resale", level, post, group, week, window)
    if key not in index._cache:
        D = M = 0
        for m in index.members(level, post, group, week, window):
            c = index.states[m].census
            D += int(c.resale_declarations.sum())
            M += _nondeclarers(c)
        index._cache[key] = (D, M)
    D_S, M_S = index._cache[key]
    st = index.states.get(Stratum(week, post, group))
    if st is None or D_S <= 0 or M_S <= 0:
        return 1.0
    M_h = _nondeclarers(st.census)
    if M_h <= 0:
        return 1.0
    return (int(st.census.resale_declarations.sum()) / M_h) / (D_S / M_S)


def _nondeclarers(census) -> int:
    """Departures without a declaration (M) of a stratum's census."""
    return int(census.departures.sum() - census.declarations.sum())


def _between(n, res, var) -> float:
    """Standard deviation (cents per traveller) of an area's own mean residual around the
    stratum's coefficients, by moments over areas (regions, or posts of a widened pool).

    Region rows (and posts whose pool is wider than the post) are synthetic: the
    stratum's coefficients times the area's census, so their error has a part the
    sampling variance misses, the area's own departure from the model. With ``e_a`` the
    mean residual of the ``n_a`` inspected travellers of area ``a`` and ``v_a`` its
    sampling variance,

        tau^2 = max(0, sum_a n_a (e_a^2 - v_a) / sum_a n_a)      (areas with n_a >= 2)

    (the average mean squared error of synthetic estimates, Gonzalez and Waksberg 1973).
    The cell's variance gains ``(sum_h U_h tau_h)^2``, ``U_h`` its uninspected travellers
    in stratum h: summed linearly, as an area's departure is alike in the strata it spans.
    """
    ok = n >= 2
    if ok.sum() < 2:
        return 0.0
    e, v, w = res[ok] / n[ok], var[ok] / n[ok] ** 2, n[ok]
    return max(float((w * (e * e - v)).sum() / w.sum()), 0.0) ** 0.5


def _floor(index, post, group, week, U_r, n_pool, n0):
    """Variance floors (cents^2) of a stratum's total, category and region cells.

    A cell resting on few inspected travellers is not known exactly, even when those few
    are all alike (all empty bags, one basket): its variance is never below that of a
    prediction from a sample of ``n_pool`` units whose residual variance is shrunk toward
    the whole sample's second moment with ``n0`` pseudo-units,

        V_floor = U (1 + U / (n_pool + n0)) * n0 / (n_pool + n0) * E_w[A^2]

    (``U`` the cell's uninspected travellers; the first term is the travellers' own
    spread, the second the coefficient's; ``E_w[A^2]`` the HT-weighted mean square of
    assessed loads over every random inspection, per category ``E_w[A^2] / C``). For any
    pool of ordinary size this is far below the bootstrap-and-prediction variance and
    changes nothing.
    """
    p = index.pooled("all-weeks", post, group, week, None)
    sw = float(p.first[D_W]) + float(p.first[N_W])
    if sw <= 0:
        return 0.0, 0.0, np.zeros(R)
    m2 = (float(p.decl_cross[0, 0]) + float(p.nondecl_second[0])) / sw
    shrink = n0 / (n_pool + n0)
    U_r = _f(U_r)
    U = float(U_r.sum())
    f_tot = U * (1 + U / (n_pool + n0)) * shrink * m2
    f_reg = U_r * (1 + U_r / (n_pool + n0)) * shrink * m2
    return f_tot, f_tot / C, f_reg


class _Acc:
    """Accumulator of one (week, domain, key) cell."""

    __slots__ = (
        "point", "reps", "vpred", "n_dep", "n_insp", "n_decl", "declared", "n_targ",
        "targ_assessed", "n_pooled", "level", "ok", "var_parts", "travellers", "vfloor", "vsyn", "by_day",
    )

    def __init__(self, B: int):
        self.point = 0.0
        self.reps = np.zeros(B)
        self.vpred = 0.0
        self.n_dep = self.n_insp = self.n_decl = self.n_targ = self.n_pooled = 0
        self.declared = 0.0
        self.targ_assessed = 0.0
        self.level = -1
        self.ok = True
        self.var_parts: dict = defaultdict(float)
        self.travellers = DistinctSketch(SKETCH_K)
        self.vfloor = 0.0
        self.vsyn = 0.0  # synthetic-model error (USD), summed linearly: alike in every stratum
        self.by_day = None  # departures by day of the week (total rows only), for the nowcast


def _domain_keys():
    yield from (("total", "all"),)
    yield from (("category", c) for c in CATEGORIES)
    yield from (("border_post", p) for p in POSTS)
    yield from (("destination_region", r) for r in DESTINATION_REGIONS)


def _add_counts(accs, week, post, st: StratumState):
    cen, smp = st.census, st.sample
    n_insp_r = smp.n_declarer + smp.n_nondeclarer
    n_dep, n_insp = int(cen.departures.sum()), int(n_insp_r.sum())
    n_decl, n_targ = int(cen.declarations.sum()), int(smp.n_targeted.sum())
    declared_c = cen.declared_cents.sum(0).tolist()  # exact ints, as each column's own sum
    for key in [("total", "all"), ("border_post", post)] + [("category", c) for c in CATEGORIES]:
        a = accs[(week, *key)]
        a.n_dep += n_dep
        a.n_insp += n_insp
        a.n_decl += n_decl
        a.n_targ += n_targ
        if key[0] == "total":
            a.by_day = cen.departures_by_day.copy() if a.by_day is None else a.by_day + cen.departures_by_day
        if key[0] == "category":
            c = CATEGORIES.index(key[1])
            a.travellers += cen.travellers[1 + c]
            a.travellers += smp.travellers[1 + c]
            a.declared += int(declared_c[c]) / 100
            a.targ_assessed += int(smp.targeted_assessed[c]) / 100
        else:
            a.travellers += cen.travellers[0]
            a.travellers += smp.travellers[0]
            a.declared += int(cen.declared_cents.sum()) / 100
            a.targ_assessed += int(smp.targeted_assessed.sum()) / 100
    for r, region in enumerate(DESTINATION_REGIONS):
        a = accs[(week, "destination_region", region)]
        a.n_dep += int(cen.departures[r])
        a.n_insp += int(n_insp_r[r])
        a.n_decl += int(cen.declarations[r])
        a.n_targ += int(smp.n_targeted[r])
        a.travellers += cen.travellers[1 + C + r]
        a.travellers += smp.travellers[1 + C + r]
        a.declared += int(cen.declared_cents[r].sum()) / 100


def _rows(accs, weeks, formal, payments, alpha, method, window, interval, open_week=None, classes=False):
    z = _z(alpha)
    rows = []
    for week in weeks:
        fx = (formal or {}).get(week)
        pay = (payments or {}).get(week)
        for domain, key in _domain_keys():
            a = accs.get((week, domain, key))
            if a is None or a.n_dep == 0:
                continue
            if method == "textbook":
                var = sum(a.var_parts.values())
                se = var**0.5
                lo, hi = a.point - z * se, a.point + z * se
                pse = 0.0
            else:
                vboot = float(np.var(a.reps, ddof=1))
                a.vpred += a.vsyn**2
                if vboot + a.vpred < a.vfloor:  # thin cell: never narrower than the floor
                    a.vpred = a.vfloor - vboot
                se = (vboot + a.vpred) ** 0.5
                pse = a.vpred**0.5
                if interval == "normal":
                    lo, hi = a.point - z * se, a.point + z * se
                elif interval == "log":
                    if a.point > 0:
                        sl = math.sqrt(math.log1p((se / a.point) ** 2))
                        lo, hi = a.point * math.exp(-z * sl), a.point * math.exp(z * sl)
                    else:
                        lo, hi = 0.0, a.point + z * se
                else:
                    q_lo, q_hi = np.quantile(a.reps, [alpha / 2, 1 - alpha / 2])
                    h_lo, h_hi = max(a.point - q_lo, 0.0), max(q_hi - a.point, 0.0)
                    lo = a.point - (h_lo**2 + (z * pse) ** 2) ** 0.5
                    hi = a.point + (h_hi**2 + (z * pse) ** 2) ** 0.5
            if not a.ok:
                lo = hi = se = float("nan")
            if fx is None:
                formal_usd = 0.0
            elif domain == "total":
                formal_usd = int(fx.cents.sum()) / 100
            elif domain == "category":
                formal_usd = int(fx.cents[:, :, CATEGORIES.index(key)].sum()) / 100
            elif domain == "border_post":
                formal_usd = int(fx.cents[POSTS.index(key)].sum()) / 100
            else:
                formal_usd = int(fx.cents[:, DESTINATION_REGIONS.index(key)].sum()) / 100
            if method == "textbook":
                pooling = "stratum" if a.level <= 0 else f"{LEVELS[a.level]}-week"
            else:
                pooling = f"{LEVELS[a.level]}±{window}w" if a.level < 4 else "all-weeks"
                if classes and a.level == 3:
                    pooling = "class-all-weeks"
            rows.append(
                (
                    week, domain, key, a.point, max(lo, 0.0) if lo == lo else lo, hi, se,
                    formal_usd, a.n_dep, a.n_insp, a.n_decl, a.declared, a.n_targ,
                    a.targ_assessed, a.n_pooled, pooling, pse, method,
                    pay.handicraft_usd("tourist") if (pay is not None and domain == "total") else None,
                    a.travellers.count(),
                )
            )
    schema = {
        "week": pl.Utf8, "domain": pl.Utf8, "key": pl.Utf8, "estimate_usd": pl.Float64,
        "ci_low_usd": pl.Float64, "ci_high_usd": pl.Float64, "std_error_usd": pl.Float64,
        "formal_exports_usd": pl.Float64, "n_departures": pl.Int64, "n_inspected": pl.Int64,
        "n_declarations": pl.Int64, "declared_usd": pl.Float64, "n_targeted": pl.Int64,
        "targeted_assessed_usd": pl.Float64, "n_inspected_pooled": pl.Int64,
        "pooling": pl.Utf8, "prediction_se_usd": pl.Float64, "method": pl.Utf8,
        "tourist_handicraft_card_usd": pl.Float64, "n_travellers": pl.Int64,
    }
    schema.update(dict.fromkeys(NOWCAST_COLUMNS, pl.Float64))
    rows = [r + (None,) * len(NOWCAST_COLUMNS) for r in rows]
    if open_week is not None and weeks and weeks[-1] == open_week:
        totals = [r for r in rows if r[1] == "total"]
        if totals and totals[-1][0] == open_week:
            *past, now = totals
            fields = [COLUMNS.index(c) for c in
                      ("week", "estimate_usd", "std_error_usd", "n_departures", "tourist_handicraft_card_usd")]

            def measured(r) -> tuple:
                by_day = accs[(r[0], "total", "all")].by_day
                return (*(r[i] for i in fields), None if by_day is None else tuple(int(n) for n in by_day))

            nc = nowcast_week([measured(r) for r in past], measured(now), alpha)
            if nc is not None:  # None: no past week yet, nothing to scale the week up by
                rows[rows.index(now)] = now[: -len(NOWCAST_COLUMNS)] + nc.columns()
    return pl.DataFrame(rows, schema=schema, orient="row")


def period_label(weeks: list[str]) -> str:
    """The ``week`` value of a period row: ``"first..last"`` (one week: that week).

    >>> period_label(["2026-W10", "2026-W11", "2026-W12"])
    '2026-W10..2026-W12'
    """
    return weeks[0] if len(weeks) == 1 else f"{weeks[0]}..{weeks[-1]}"


def _period(accs, target, formal, payments):
    """Cells summed over the target weeks: points, replicate totals (replicate by replicate,
    so coefficients shared by several weeks keep their one error), prediction variances
    (different travellers each week: independent) and counts."""
    label = period_label(target) if target else "empty"
    out: dict = defaultdict(lambda: _Acc(N_REPLICATES))
    for (week, domain, key), a in accs.items():
        if week not in target:
            continue
        b = out[(label, domain, key)]
        b.point += a.point
        b.reps = b.reps + a.reps
        b.vpred += a.vpred
        b.vfloor += a.vfloor
        b.vsyn += a.vsyn
        for f in ("n_dep", "n_insp", "n_decl", "n_targ", "n_pooled"):
            setattr(b, f, getattr(b, f) + getattr(a, f))
        b.declared += a.declared
        b.targ_assessed += a.targ_assessed
        b.level = max(b.level, a.level)
        b.ok = b.ok and a.ok
        for k, v in a.var_parts.items():
            b.var_parts[k] += v
        b.travellers += a.travellers
    fx = FormalExports()
    pay = WeekPayments()
    for week in target:
        if formal and week in formal:
            fx += formal[week]
        if payments and week in payments:
            pay += payments[week]
    has_pay = bool(payments) and any(w in payments for w in target)
    return out, [label], {label: fx}, ({label: pay} if has_pay else {})


def _target_weeks(index: _Index, weeks: Iterable[str] | None) -> list[str]:
    if weeks is None:
        return index.weeks
    return sorted(set(weeks), key=week_index)


def estimate_weeks(
    states: Mapping[Stratum, StratumState],
    formal: Mapping[str, FormalExports] | None = None,
    payments: Mapping[str, WeekPayments] | None = None,
    weeks: Iterable[str] | None = None,
    alpha: float = 0.05,
    *,
    window: int = 2,
    min_sample: int = 10,
    min_category: int = 3,
    interval: str = "log",
    variance: str = "wide",
    heavy: tuple[str, int | None] | None = None,
    period: bool = False,
    floor_units: int | None = None,
    synthetic_error: bool = True,
    robust: str = "none",
    week_error: bool = True,
    heavy_resale: bool = False,
) -> pl.DataFrame:
    """Weekly estimates by domain with ``1 - alpha`` intervals (the pooled-ratio method).

    Parameters
    ----------
    states
        Stratum -> its state; every week present is a candidate for pooling.
    formal
        ISO week -> formal exports of that week (shown beside, never added).
    payments
        ISO week -> card payments of that week (``tourist_handicraft_card_usd``).
    weeks
        Weeks to estimate (default: every week in ``states``).
    alpha
        1 - confidence level.
    window
        Half-width, in weeks, of the pooling window (0: each week alone).
    min_sample
        Inspected declarers (non-declarers) a pool needs before it is used.
    min_category
        Inspected declarers with (without) a declared value in a category that the
        category's ratio (mean) needs; thinner ones are taken from a wider pool.
    interval
        ``"log"`` (default: normal on the log scale, ``estimate * exp(+-z s)``,
        ``s^2 = log(1 + SE^2 / estimate^2)``, skewed upward like carpet values),
        ``"percentile"`` (bootstrap percentiles with the prediction part in quadrature)
        or ``"normal"``.
    variance
        ``"wide"`` (default): each coefficient's bootstrap deviations are the larger of
        its pool's and those of the same pool level over all weeks scaled by
        ``sqrt(n_wide / n_pool)``; residual variances from the all-weeks pool.
        ``"local"``: the pool's own replicates and residuals only.
    heavy
        ``(level, window)`` of the pool for the heavy part of the non-declarer mean (loads
        of at least ``HEAVY_CENTS``): e.g. ``("mode", 4)``, posts of the same mode and
        group within 4 weeks, or ``("post", None)``, the same post over every week;
        ``None`` (default): the same pool as the light part. Model assumption when set:
        the heavy loads' mean per non-declarer is the same across that wider pool. On
        bench/accuracy a longer heavy pool cuts the weekly error and the width but lowers
        coverage (the heavy part's few units then set the error of every week alike), so
        it is off by default; see bench/accuracy_results.md.
    floor_units
        Pseudo-units ``n0`` of the variance floor of thin cells (default ``min_category``;
        see ``_floor``).
    synthetic_error
        True (default): region rows, and posts whose pool is wider than the post, carry
        the between-area term of :func:`_between` in their variance.
    week_error
        True (default): post-week rows also carry the between-week term (the week's own
        departure from the coefficients of its +-``window`` pool; :func:`_between` over
        the pool's weeks).
    heavy_resale
        False (default). True: each stratum's heavy non-declarer mean is scaled by its
        resale declarations per non-declarer over its pool's (:func:`_resale_share`), so
        the pool's heavy loads go to the weeks and groups whose census shows traders
        crossing (model assumption: a stratum's heavy non-declarer loads are in proportion
        to its resale declarations). Not with frequency classes (factor 1).
    robust
        ``"none"`` (default), ``"cb"``, ``"cb-full"`` or ``"gap"``: the outlier-robust
        non-declarer mean (:func:`_robust_shift`).
    period
        False (default): one row per week. True: one row per (domain, key) for the sum of
        the weeks (``week`` is ``"first..last"``, e.g. ``"2026-W10..2026-W21"``), see
        :func:`estimate_period`.

    Returns
    -------
    polars.DataFrame with :data:`COLUMNS`, one row per (week, domain, key) with
    departures, ordered by week, domain (total, category, border_post,
    destination_region) and key in reference order. The total row of the last week of
    ``states`` (the open week, live), when it is among the weeks estimated, carries the
    nowcast of the whole week (:data:`~estimators.nowcast.NOWCAST_COLUMNS`, see
    :mod:`estimators.nowcast`) from the earlier estimated weeks' totals; every other row
    has them null.

    Examples
    --------
    >>> from estimators.observations import DepartureSeen, DeclarationSeen, InspectionSeen
    >>> s = Stratum("2026-W07", "MEH", "resident")
    >>> z = (0,) * 7
    >>> st = StratumState()
    >>> for i in range(100):
    ...     st.update(DepartureSeen(s, "iraq"))
    ...     if i % 2:
    ...         st.update(DeclarationSeen(s, "iraq", (10_000,) + z))
    ...     if i % 5 == 0:
    ...         st.update(InspectionSeen(s, "iraq", i, True, 0.2, bool(i % 2),
    ...                                  (15_000 if i % 2 else 1_000 * (i % 3),) + z,
    ...                                  (10_000 if i % 2 else 0,) + z))
    >>> out = estimate_weeks({s: st}, min_sample=5, min_category=2)
    >>> out.filter(domain="total").select("estimate_usd", "n_departures", "n_inspected").row(0)
    (7950.0, 100, 20)
    """
    if variance not in ("wide", "local"):
        raise ValueError(f"variance must be 'wide' or 'local', got {variance!r}")
    if interval not in ("percentile", "normal", "log"):
        raise ValueError(f"interval must be 'percentile', 'normal' or 'log', got {interval!r}")
    if robust not in ("none", "cb", "cb-full", "gap"):
        raise ValueError(f"robust must be 'none', 'cb', 'cb-full' or 'gap', got {robust!r}")
    if heavy is not None and heavy[0] not in LEVELS:
        raise ValueError(f"heavy level must be one of {LEVELS}, got {heavy[0]!r}")
    index = _Index(states)
    B = N_REPLICATES
    accs: dict = defaultdict(lambda: _Acc(B))
    target = _target_weeks(index, weeks)
    for week in target:
        for post, group in index.cells:
            st = index.states.get(Stratum(week, post, group))
            if st is None or st.census.departures.sum() == 0:
                continue
            _add_counts(accs, week, post, st)
            cen, smp = st.census, st.sample
            # Unsampled census per declarer class: declared cents, declarers without a
            # value in c, declarers; personal = all - resale.
            cens = {
                "resale": (cen.resale_declared_cents, cen.resale_declarations, cen.resale_declarations_by_category,
                           smp.resale_declared_declarer, smp.resale_n_declarer_zero, smp.resale_n_declarer),
            }
            cens["personal"] = tuple(
                a - b for a, b in zip(
                    (cen.declared_cents, cen.declarations, cen.declarations_by_category,
                     smp.declared_declarer, smp.n_declarer_zero, smp.n_declarer),
                    cens["resale"],
                )
            )
            un = {}
            for cls, (Dc, ND, NDc, sd, sz, sn) in cens.items():
                un[cls] = (
                    np.maximum(_f(Dc) - _f(sd), 0.0),  # UD [R, C]
                    np.maximum(_f(ND[:, None] - NDc) - _f(sz), 0.0),  # U2 [R, C]
                    np.maximum(_f(ND) - _f(sn), 0.0),  # UDn [R]
                )
            U0 = np.maximum(_f(cen.departures - cen.declarations) - _f(smp.n_nondeclarer), 0.0)
            need = {cls: {"R": un[cls][0].sum(0), "m2": un[cls][1].sum(0)} for cls in CLASSES}
            need["m0"] = U0.sum()
            co = _Coefficients(index, post, group, week, window, min_sample, min_category, need, variance, heavy,
                               robust, week_error, heavy_resale)
            known = _f(smp.assessed_declarer) + _f(smp.assessed_nondeclarer)  # [R, C]
            point = known + co.m0 * U0[:, None]
            reps = known[None] + co.m0b[:, None, :] * U0[None, :, None]  # [B, R, C]
            vp_cat = U0.sum() * co.sig_0_cat
            vp_reg = U0 * co.sig_0_tot
            for cls in CLASSES:
                UD, U2, UDn = un[cls]
                point = point + co.R[cls] * UD + co.m2[cls] * U2
                reps = reps + co.Rb[cls][:, None, :] * UD[None] + co.m2b[cls][:, None, :] * U2[None]
                vp_cat = vp_cat + UDn.sum() * co.sig_d_cat[cls]
                vp_reg = vp_reg + UDn * co.sig_d_tot[cls]
            vp_tot = float(vp_reg.sum())
            level = max(co.levels_used)
            U_r = U0 + sum(un[cls][2] for cls in CLASSES)  # uninspected travellers by region
            f_tot, f_cat, f_reg = _floor(
                index, post, group, week, U_r, co.n_pooled, min_category if floor_units is None else floor_units
            )
            cells = [
                (("total", "all"), point.sum(), reps.sum((1, 2)), vp_tot, f_tot),
                (("border_post", post), point.sum(), reps.sum((1, 2)), vp_tot, f_tot),
            ]
            cells += [
                (("category", cat), point[:, c].sum(), reps[:, :, c].sum(1), vp_cat[c], f_cat)
                for c, cat in enumerate(CATEGORIES)
            ]
            cells += [
                (("destination_region", reg), point[r].sum(), reps[:, r].sum(1), vp_reg[r], f_reg[r])
                for r, reg in enumerate(DESTINATION_REGIONS)
                if cen.departures[r] > 0
            ]
            for r, reg in enumerate(DESTINATION_REGIONS):
                if synthetic_error and cen.departures[r] > 0:
                    accs[(week, "destination_region", reg)].vsyn += float(U_r[r]) * co.tau_region / 100
            if synthetic_error:
                accs[(week, "border_post", post)].vsyn += float(U_r.sum()) * math.hypot(co.tau_post, co.tau_week) / 100
            for key, p, rb, vp, vf in cells:
                a = accs[(week, *key)]
                a.point += p / 100
                a.reps += rb / 100
                a.vpred += vp / 1e4
                a.vfloor += vf / 1e4
                a.level = max(a.level, level)
                a.n_pooled += co.n_pooled
                a.ok = a.ok and co.ok
    if period:
        accs, target, formal, payments = _period(accs, target, formal, payments)
    return _rows(accs, target, formal, payments, alpha, "pooled-ratio", window, interval,
                 open_week=index.weeks[-1] if index.weeks else None, classes=index.classes)


def estimate_period(states, formal=None, payments=None, weeks=None, alpha: float = 0.05, **options) -> pl.DataFrame:
    """Estimates for the sum of ``weeks`` (default: every week), one row per domain and key.

    The interval comes from the summed replicate totals of the weeks: each replicate
    re-fits the pooled coefficients on its reweighted units, so a coefficient that several
    weeks share moves all of them together in that replicate, and the period's interval
    carries that shared error (the correlation between weeks) instead of adding weekly
    variances as if independent. The prediction variances of the weeks' uninspected
    travellers (different people each week) add. Options as :func:`estimate_weeks`.
    """
    return estimate_weeks(states, formal, payments, weeks, alpha, period=True, **options)


# ----------------------------------------------------------------------------- textbook


def _taylor_ratio(F_num, F_den, s_nn, s_nd, s_dd, n, fpc):
    """HT ratio and its Taylor variance from (squared-)weight moments.

    ``Var(R) = fpc * n/(n-1) * sum w^2 (y - R x)^2 / (sum w x)^2`` (samplics'
    ``TaylorEstimator(param="ratio")`` for one stratum without PSUs).
    """
    r = F_num / F_den
    if n < 2:
        return r, float("nan")
    ss = s_nn - 2 * r * s_nd + r * r * s_dd
    return r, max(fpc * n / (n - 1) * ss / F_den**2, 0.0)


def textbook_weeks(
    states: Mapping[Stratum, StratumState],
    formal: Mapping[str, FormalExports] | None = None,
    payments: Mapping[str, WeekPayments] | None = None,
    weeks: Iterable[str] | None = None,
    alpha: float = 0.05,
    *,
    period: bool = False,
) -> pl.DataFrame:
    """Per-week stratified ratio estimator with Taylor variance (the baseline).

    ``period=True``: one row per (domain, key) for the sum of the weeks (each week's pools
    are its own, so weeks are independent and their variances add).

    Same output columns as :func:`estimate_weeks` (``method="textbook"``, normal
    intervals, ``prediction_se_usd`` 0). Strata that borrow a ratio or mean from a wider
    group of the same week are named in ``pooling`` (e.g. ``"mode-week"``); the variance
    treats different pools as independent.
    """
    index = _Index(states)
    accs: dict = defaultdict(lambda: _Acc(N_REPLICATES))
    target = _target_weeks(index, weeks)
    week_levels = ("post", "mode", "group", "all")
    for week in target:
        for post, group in index.cells:
            st = index.states.get(Stratum(week, post, group))
            if st is None or st.census.departures.sum() == 0:
                continue
            _add_counts(accs, week, post, st)
            cen = st.census
            D_r = _f(cen.declared_cents.sum(1))  # [R]
            M_r = np.maximum(_f(cen.departures - cen.declarations), 0.0)
            # Declarer pool: first level in the week with >= 2 declarers and declared value.
            dl = nl = None
            for i, lv in enumerate(week_levels):
                p = index.pooled(lv, post, group, week, 0)
                if dl is None and p.n_declarer.sum() >= 2 and p.first[D_WD : D_WD + C].sum() > 0:
                    dl = i
                if nl is None and p.n_nondeclarer.sum() >= 2:
                    nl = i
            coef = {}  # domain-part -> (coef, var, pool key)
            if dl is not None:
                p = index.pooled(week_levels[dl], post, group, week, 0)
                pk = ("D", week_levels[dl], tuple(index.members(week_levels[dl], post, group, week, 0)))
                n = int(p.n_declarer.sum())
                members = index.members(week_levels[dl], post, group, week, 0)
                N_D = sum(int(index.states[m].census.declarations.sum()) for m in members)
                fpc = max(1.0 - n / N_D, 0.0) if N_D > 0 else 1.0
                F = p.first
                wd = float(sum(F[D_WD : D_WD + C]))
                wa = _f(F[D_WA1 : D_WA1 + C]) + _f(F[D_WA2 : D_WA2 + C])
                tb = _f(p.tb_decl)
                coef["D", "tot"] = (*_taylor_ratio(wa.sum(), wd, tb[0], tb[1], tb[2], n, fpc), pk)
                for c in range(C):
                    coef["D", c] = (
                        *_taylor_ratio(wa[c], wd, tb[3 + c], tb[3 + C + c], tb[2], n, fpc),
                        pk,
                    )
            if nl is not None:
                p = index.pooled(week_levels[nl], post, group, week, 0)
                members = index.members(week_levels[nl], post, group, week, 0)
                pk = ("0", week_levels[nl], tuple(members))
                n = int(p.n_nondeclarer.sum())
                M = sum(
                    max(_nondeclarers(index.states[m].census), 0)
                    for m in members
                )
                fpc = max(1.0 - n / M, 0.0) if M > 0 else 1.0
                sw = float(p.first[N_W])
                wa = _f(p.first[N_WA : N_WA + C])
                tb = _f(p.tb_non)  # w2, w2A, w2A2, w2a_c, w2a_c^2
                coef["0", "tot"] = (*_taylor_ratio(wa.sum(), sw, tb[2], tb[1], tb[0], n, fpc), pk)
                for c in range(C):
                    coef["0", c] = (
                        *_taylor_ratio(wa[c], sw, tb[3 + C + c], tb[3 + c], tb[0], n, fpc),
                        pk,
                    )
            ok = (dl is not None or D_r.sum() == 0) and (nl is not None or M_r.sum() == 0)
            level = max(x for x in (dl, nl, 0) if x is not None)

            def part(kind, cat, mult):
                if (kind, cat) not in coef:
                    return 0.0, None, 0.0
                r, v, pk = coef[kind, cat]
                return r * mult, (pk, cat), v

            def add(key, cat, regions):
                a = accs[(week, *key)]
                for kind, mult in (("D", D_r[regions].sum()), ("0", M_r[regions].sum())):
                    val, vk, v = part(kind, cat, mult)
                    a.point += val / 100
                    if vk is not None:
                        # shared pools: accumulate the multiplier, variance formed later
                        a.var_parts[(vk, "mult")] += mult / 100
                        a.var_parts[(vk, "var")] = v
                a.level = max(a.level, level)
                a.ok = a.ok and ok

            allr = np.arange(R)
            add(("total", "all"), "tot", allr)
            add(("border_post", post), "tot", allr)
            for c, cat in enumerate(CATEGORIES):
                add(("category", cat), c, allr)
            for r, reg in enumerate(DESTINATION_REGIONS):
                if cen.departures[r] > 0:
                    add(("destination_region", reg), "tot", np.array([r]))
    # Turn accumulated multipliers into variances: sum over pools of mult^2 Var(coef).
    for a in accs.values():
        parts = {}
        for (vk, what), val in a.var_parts.items():
            parts.setdefault(vk, {})[what] = val
        a.var_parts = {vk: d["mult"] ** 2 * d["var"] for vk, d in parts.items()}
        a.n_pooled = a.n_insp
    if period:
        accs, target, formal, payments = _period(accs, target, formal, payments)
    return _rows(accs, target, formal, payments, alpha, "textbook", 0, "normal")
