"""Mergeable sufficient statistics of one stratum (week x border post x traveller group).

Every state here is a pure function of the *set* of observations it has seen: all sums
are exact integers (money in US cents, inclusion weights quantised to integer units of
``1 / WEIGHT_SCALE``), so neither the order of updates nor the way observations are split
across partitions or workers changes a single digit. States merge with ``+=`` / ``+``.

Notation (per stratum; ``c`` a category, ``r`` a destination region):

* census: ``N_r`` departures, ``N_D,r`` declarations, ``N_Dc,r`` declarations with a
  positive value in ``c``, ``D_rc`` declared cents;
* random inspections, with weight ``w = 1/p`` (Horvitz-Thompson) and assessed ``a_c``:
  declarers (declared ``d_c``; ``z_c = 1`` when ``d_c = 0``) and non-declarers, kept as
  weighted first moments, the weighted cross-products the prediction variance needs, the
  squared-weight moments of the textbook Taylor variance, unweighted sums of the week's
  own sample (by region), and Poisson(1) bootstrap replicate sums (integer, int64);
* targeted inspections: counted and summed apart, never used for the level;
* the declarers' purpose: a declaration that declares some item for resale (a trader's)
  makes its declarer a *resale declarer*; the census and the sample keep the resale
  declarers' sums apart as well (the personal declarers' are the all-declarer sums minus
  them, exactly), so each class gets its own ratio;
* the *heavy* non-declarers (assessed ``A >= HEAVY_CENTS``): weighted first moments and
  replicates kept apart too, so their rare contribution can be pooled over a longer span;
* distinct travellers per cell (total, category, region) as bottom-k sketches
  (:class:`~estimators.disclosure.DistinctSketch`, ``k = SKETCH_K``) of keyed traveller
  digests: declarers with a positive declared value in the census, randomly inspected
  travellers with a positive assessed value in the sample.

The two halves are separate classes, :class:`CensusState` (a few hundred bytes, updated on
every departure) and :class:`SampleState` (a few KB: it keeps only the replicate rows that
are not zero, typically 1-3 of 84; updated on inspections only), so a stream processor
can keep them in separate changelogged tables; :class:`StratumState` holds both and
routes observations.

Examples
--------
>>> from estimators.observations import Stratum, DepartureSeen, DeclarationSeen, InspectionSeen
>>> s = Stratum("2026-W07", "IKA", "visitor")
>>> z = (0,) * 8
>>> st = StratumState()
>>> st.update(DepartureSeen(s, "gulf"))
>>> st.update(DeclarationSeen(s, "gulf", (50_000,) + z[1:]))
>>> st.update(InspectionSeen(s, "gulf", 7, True, 0.05, True, (80_000,) + z[1:], (50_000,) + z[1:]))
>>> st
StratumState(departures=1, declarations=1, declared_usd=500.00, random=1, targeted=0)
>>> other = StratumState()
>>> other.update(DepartureSeen(s, "iraq"))
>>> int((st + other).census.departures.sum())
2
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import ClassVar

import numpy as np

from estimators.disclosure import DistinctSketch
from estimators.observations import (
    DeclarationSeen,
    DepartureSeen,
    FormalExportSeen,
    InspectionSeen,
    PaymentSeen,
)
from estimators.replicates import N_REPLICATES, poisson_weights, poisson_weights_many
from estimators.reference import BORDER_POSTS, CATEGORIES, DESTINATION_REGIONS

__all__ = [
    "WEIGHT_SCALE",
    "update_isolated",
    "CensusState",
    "SampleState",
    "StratumState",
    "FormalExports",
    "WeekPayments",
    "quantised_weight",
    "HEAVY_CENTS",
    "SKETCH_K",
    "TopLoads",
    "TOP_LOADS_K",
]

C = len(CATEGORIES)
R = len(DESTINATION_REGIONS)
POSTS = tuple(BORDER_POSTS)
REGION_INDEX = {r: i for i, r in enumerate(DESTINATION_REGIONS)}
POST_INDEX = {p: i for i, p in enumerate(POSTS)}
CARD_TYPES = ("tourist", "domestic")

#: Inclusion weights 1/p are kept as integers in units of 1/WEIGHT_SCALE.
WEIGHT_SCALE: int = 1000
#: Replicate sums are int64; a state refuses updates that could take them past this.
_REPLICATE_LIMIT = 2**62

#: Assessed value (US cents) from which a non-declarer's load counts as heavy ($1,000).
HEAVY_CENTS: int = 100_000
#: Capacity of the distinct-traveller sketches (above the default disclosure threshold 10).
SKETCH_K: int = 16

# Row layout of the first moments and of the replicate sums.
#   declarers:        0: w | 1+c: w z_c | 1+C+c: w a_c (1-z_c) | 1+2C+c: w a_c z_c | 1+3C+c: w d_c
#   non-declarers:    K_D: w | K_D+1+c: w a_c
#   resale declarers: RES + (the declarer layout)
#   heavy non-declarers (A >= HEAVY_CENTS): HVY: w | HVY+1+c: w a_c
D_W, D_WZ, D_WA1, D_WA2, D_WD = 0, 1, 1 + C, 1 + 2 * C, 1 + 3 * C
K_D = 1 + 4 * C
N_W, N_WA = K_D, K_D + 1
K = K_D + 1 + C
RES = K
HVY = RES + K_D
K_ALL = HVY + 1 + C
#: Sketch index of a cell: 0 total, 1 + c category, 1 + C + r region.
N_SKETCHES = 1 + C + R


_ZERO_ROW = np.zeros(N_REPLICATES, dtype=np.int64)
_ZERO_ROW.flags.writeable = False


def quantised_weight(p: float) -> int:
    """The Horvitz-Thompson weight ``1/p`` in integer units of ``1/WEIGHT_SCALE``.

    >>> quantised_weight(0.05), quantised_weight(1.0), quantised_weight(0.3)
    (20000, 1000, 3333)
    """
    if not (isinstance(p, (int, float)) and 0.0 < p <= 1.0):
        raise ValueError(f"selection_probability must be in (0, 1], got {p!r}")
    return max(1, round(WEIGHT_SCALE / p))


def _region(region: str) -> int:
    try:
        return REGION_INDEX[region]
    except KeyError:
        raise ValueError(f"unknown destination region {region!r}") from None


def _day(day) -> int:
    if type(day) is not int or not 0 <= day < 7:
        raise ValueError(f"day of the week must be an integer 0..6, got {day!r}")
    return day


def _cents(values: tuple[int, ...], what: str) -> np.ndarray:
    if len(values) != C:
        raise ValueError(f"{what} must have {C} categories, got {len(values)}")
    out = np.array(values, dtype=np.int64)
    if (out < 0).any():
        raise ValueError(f"{what} must not be negative")
    return out


def _zeros(shape, exact: bool = False) -> np.ndarray:
    return np.zeros(shape, dtype=object if exact else np.int64)


def _sketches() -> tuple[DistinctSketch, ...]:
    return tuple(DistinctSketch(SKETCH_K) for _ in range(N_SKETCHES))


def _note_traveller(sketches, key: int, r: int, values: np.ndarray) -> None:
    """Add a traveller to the sketches of the cells where ``values`` (per category) is positive."""
    if values.sum() <= 0:
        return
    sketches[0].update_hash(key)
    sketches[1 + C + r].update_hash(key)
    for c in np.flatnonzero(values > 0):
        sketches[1 + int(c)].update_hash(key)


def _note_travellers(sketches, keys: np.ndarray, regions: np.ndarray, values: np.ndarray) -> None:
    """``_note_traveller`` for many travellers at once (rows of ``values``): same sketches."""
    if not len(keys):
        return
    pos = values.sum(1) > 0
    if not pos.any():
        return
    sketches[0].update_hashes(keys[pos].tolist())
    for r in np.unique(regions[pos]).tolist():
        sketches[1 + C + r].update_hashes(keys[pos & (regions == r)].tolist())
    for c in range(C):
        rows = pos & (values[:, c] > 0)
        if rows.any():
            sketches[1 + c].update_hashes(keys[rows].tolist())


def _bulk_cents(observations, field: str) -> np.ndarray:
    """(n, C) int64 of a value field of many observations; ValueError where ``_cents`` would."""
    out = np.array([getattr(o, field) for o in observations], dtype=np.int64)
    if out.shape != (len(observations), C) or (out < 0).any():
        raise ValueError(f"bad {field}")
    return out


def _joined(*parts) -> np.ndarray:
    """Python ints (scalars or arrays) end to end as one object array; never via floats."""
    return np.concatenate([np.array([p], dtype=object) if np.isscalar(p) or not hasattr(p, "shape")
                           else np.asarray(p, dtype=object).ravel() for p in parts])


def _exact(a: np.ndarray) -> np.ndarray:
    """Python-int (object) copy of an integer array, for sums that must not wrap."""
    return a.astype(object)



def update_isolated(state, observations: list) -> list[Exception]:
    """Add ``observations`` to ``state``, in bulk when the state would take every one of
    them, else one at a time, leaving out those it refuses: their errors are returned, the
    others are in the state (a live partition's states must not lose a step's good
    observations to one bad one)."""
    bulk = getattr(state, "_bulk", None)
    apply = bulk(observations) if bulk is not None else None
    if apply is not None:
        apply()
        return []
    errors = []
    for o in observations:
        try:
            state.update(o)
        except Exception as error:  # noqa: BLE001 -- returned to the caller, who counts it
            errors.append(error)
    return errors


def _bulk_or_each(state, observations) -> None:
    """Add ``observations`` to ``state`` in bulk, or one at a time when the bulk path says
    it would not do exactly what one-at-a-time updates do (``state._bulk`` returns None)."""
    obs = list(observations)
    apply = state._bulk(obs)
    if apply is None:
        for o in obs:
            state.update(o)
    else:
        apply()

#: Largest non-declarer loads a sample keeps unit by unit (for the robust estimator).
TOP_LOADS_K: int = 4


class TopLoads:
    """The ``k`` randomly inspected non-declarers with the largest ``(w - 1) A`` (their
    excess over representing themselves: the conditional bias of a heavy unit), and the
    largest non-declarer weight; merges exactly (top ``k`` of the union, a total order on
    entries, so any partition and any order give the same ``k``).

    Entries are ``(score, unit_key, w, a)`` with ``score = (w - WEIGHT_SCALE) * A`` (exact
    integers; ``w`` in units of ``1 / WEIGHT_SCALE``) and ``a`` the assessed cents by
    category.
    """

    __slots__ = ("k", "entries", "w_max")

    def __init__(self, k: int = TOP_LOADS_K, entries=(), w_max: int = 0):
        self.k = k
        self.entries = tuple(sorted(entries, reverse=True)[:k])
        self.w_max = int(w_max)

    def update(self, unit_key: int, w: int, a: tuple[int, ...]) -> None:
        A = sum(a)
        self.w_max = max(self.w_max, int(w))
        if A > 0:
            e = ((int(w) - WEIGHT_SCALE) * A, int(unit_key), int(w), tuple(int(v) for v in a))
            if len(self.entries) < self.k or e > self.entries[-1]:
                self.entries = tuple(sorted(self.entries + (e,), reverse=True)[: self.k])

    def __add__(self, other: "TopLoads") -> "TopLoads":
        if not isinstance(other, TopLoads) or other.k != self.k:
            return NotImplemented
        return TopLoads(self.k, self.entries + other.entries, max(self.w_max, other.w_max))

    def __eq__(self, other) -> bool:
        if not isinstance(other, TopLoads):
            return NotImplemented
        return (self.k, self.entries, self.w_max) == (other.k, other.entries, other.w_max)

    __hash__ = None

    def __getstate__(self):
        return (self.k, self.entries, self.w_max)

    def __setstate__(self, state) -> None:
        self.k, self.entries, self.w_max = state

    def __repr__(self) -> str:
        return f"TopLoads(k={self.k}, entries={len(self.entries)}, w_max={self.w_max})"


class _Summary:
    """Fields that merge by addition; equality, copy and pickle by value."""

    _FIELDS: ClassVar[tuple[str, ...]] = ()
    #: Fields holding a tuple of :class:`DistinctSketch` (merged cell by cell).
    _SKETCHES: ClassVar[tuple[str, ...]] = ()
    #: Fields holding one object that merges with ``+`` and compares with ``==``.
    _OBJECTS: ClassVar[tuple[str, ...]] = ()

    def __iadd__(self, other):
        if type(other) is not type(self):
            return NotImplemented
        for f in self._FIELDS:
            if f in self._SKETCHES:
                setattr(self, f, tuple(a + b for a, b in zip(getattr(self, f), getattr(other, f))))
            else:
                setattr(self, f, getattr(self, f) + getattr(other, f))
        self._check()
        return self

    def __add__(self, other):
        if type(other) is not type(self):
            return NotImplemented
        out = copy.deepcopy(self)
        out += other
        return out

    def __eq__(self, other) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return all(
            getattr(self, f) == getattr(other, f)
            if f in self._SKETCHES or f in self._OBJECTS
            else np.array_equal(getattr(self, f), getattr(other, f))
            for f in self._FIELDS
        )

    __hash__ = None  # mutable

    def __getstate__(self):
        return {f: getattr(self, f) for f in self._FIELDS}

    def __setstate__(self, state) -> None:
        for f in self._FIELDS:
            setattr(self, f, state[f])

    def _check(self) -> None:
        pass


class CensusState(_Summary):
    """Census counts of a stratum, by destination region (and category).

    Attributes
    ----------
    departures : int64[R]
        Departures ``N_r``.
    declarations : int64[R]
        Declarations ``N_D,r``.
    declarations_by_category : int64[R, C]
        Declarations with a positive declared value in the category, ``N_Dc,r``.
    declared_cents : int64[R, C]
        Declared total ``D_rc`` in US cents.
    resale_declarations, resale_declarations_by_category, resale_declared_cents
        The same three over resale declarations only (some item declared for resale).
    travellers : tuple of DistinctSketch
        Distinct declarers with a positive declared value, per cell (total, categories,
        regions; see ``N_SKETCHES``).
    departures_by_day : int64[7]
        Departures by day of the week (Monday first, Asia/Tehran): how far a week has got,
        for the nowcast. Sums to ``departures`` (except in states restored from an encoding
        older than the field, which hold zeros here).
    """

    _FIELDS = (
        "departures", "declarations", "declarations_by_category", "declared_cents",
        "resale_declarations", "resale_declarations_by_category", "resale_declared_cents",
        "travellers", "departures_by_day",
    )
    _SKETCHES = ("travellers",)

    def __init__(self) -> None:
        self.departures = _zeros(R)
        self.declarations = _zeros(R)
        self.declarations_by_category = _zeros((R, C))
        self.declared_cents = _zeros((R, C))
        self.resale_declarations = _zeros(R)
        self.resale_declarations_by_category = _zeros((R, C))
        self.resale_declared_cents = _zeros((R, C))
        self.travellers = _sketches()
        self.departures_by_day = _zeros(7)

    def update(self, obs: DepartureSeen | DeclarationSeen) -> None:
        """Count one departure or one declaration."""
        r = _region(obs.region)
        if isinstance(obs, DepartureSeen):
            day = _day(obs.day)
            self.departures[r] += 1
            self.departures_by_day[day] += 1
        elif isinstance(obs, DeclarationSeen):
            d = _cents(obs.declared_cents, "declared_cents")
            self.declarations[r] += 1
            self.declarations_by_category[r] += d > 0
            self.declared_cents[r] += d
            if obs.resale:
                self.resale_declarations[r] += 1
                self.resale_declarations_by_category[r] += d > 0
                self.resale_declared_cents[r] += d
            _note_traveller(self.travellers, obs.traveller_key, r, d)
        else:
            raise TypeError(f"CensusState cannot take {type(obs).__name__}")

    def update_many(self, observations) -> None:
        """Count many departures and declarations: the same state as one ``update`` each.

        Any observation one-at-a-time updates would refuse makes this fall back to them
        (so the error, and the state before it, are the same too).
        """
        _bulk_or_each(self, observations)

    def _bulk(self, obs: list):
        """A function adding ``obs`` in bulk, or None if one-at-a-time updates would fail."""
        try:
            deps = np.array([REGION_INDEX[o.region] for o in obs if type(o) is DepartureSeen], dtype=np.intp)
            days = np.array([_day(o.day) for o in obs if type(o) is DepartureSeen], dtype=np.intp)
            decl = [o for o in obs if type(o) is DeclarationSeen]
            if len(deps) + len(decl) != len(obs):
                raise TypeError("not a census observation")
            r = np.array([REGION_INDEX[o.region] for o in decl], dtype=np.intp)
            d = _bulk_cents(decl, "declared_cents") if decl else np.zeros((0, C), dtype=np.int64)
            resale = np.array([bool(o.resale) for o in decl], dtype=bool)
            keys = np.array([o.traveller_key for o in decl], dtype=np.uint64)
        except (KeyError, TypeError, ValueError, OverflowError):
            return None

        def apply() -> None:
            np.add.at(self.departures, deps, 1)
            np.add.at(self.departures_by_day, days, 1)
            if not decl:
                return
            np.add.at(self.declarations, r, 1)
            np.add.at(self.declarations_by_category, r, (d > 0).astype(np.int64))
            np.add.at(self.declared_cents, r, d)
            if resale.any():
                np.add.at(self.resale_declarations, r[resale], 1)
                np.add.at(self.resale_declarations_by_category, r[resale], (d[resale] > 0).astype(np.int64))
                np.add.at(self.resale_declared_cents, r[resale], d[resale])
            _note_travellers(self.travellers, keys, r, d)

        return apply

    def add_departures(self, region: str, count: int, day: int = 0) -> None:
        """Count ``count`` departures to ``region`` on ``day`` of the week at once: the same
        as as many updates."""
        if count < 0:
            raise ValueError(f"count must not be negative, got {count}")
        r, d = _region(region), _day(day)
        self.departures[r] += count
        self.departures_by_day[d] += count

    def __repr__(self) -> str:
        return (
            f"CensusState(departures={int(self.departures.sum())}, "
            f"declarations={int(self.declarations.sum())}, "
            f"declared_usd={int(self.declared_cents.sum()) / 100:.2f})"
        )


class SampleState(_Summary):
    """Inspections of a stratum: random ones as a probability sample, targeted ones apart.

    Attributes (random inspections; ``w`` is the quantised weight, ``A = sum_c a_c``)
    ----------
    n_declarer : int64[R]
        Inspected declarers, by region.
    n_declarer_zero : int64[R, C]
        Inspected declarers who declared nothing in the category.
    assessed_declarer, declared_declarer : int64[R, C]
        Unweighted sums of ``a_c`` and ``d_c`` over inspected declarers.
    n_nondeclarer : int64[R]
        Inspected non-declarers, by region.
    assessed_nondeclarer : int64[R, C]
        Unweighted sum of ``a_c`` over inspected non-declarers.
    first : object[K_ALL]
        Weighted first moments, rows as the replicate layout (``D_W`` ... ``N_WA``, then
        the resale declarers from ``RES`` and the heavy non-declarers from ``HVY``).
    decl_cross : object[1 + 2C, 1 + 2C]
        ``sum w x x'`` over declarers with ``x = (A, d_1..d_C, z_1..z_C)``.
    decl_cat : object[2, C]
        ``sum w a_c^2`` and ``sum w a_c d_c`` over declarers.
    nondecl_second : object[1 + C]
        ``sum w A^2`` and ``sum w a_c^2`` over non-declarers.
    tb_decl : object[3 + 2C]
        Textbook Taylor moments over declarers, ``d = sum_c d_c``: ``sum w^2 A^2``,
        ``sum w^2 A d``, ``sum w^2 d^2``, ``sum w^2 a_c^2``, ``sum w^2 a_c d``.
    tb_non : object[3 + 2C]
        Over non-declarers: ``sum w^2``, ``sum w^2 A``, ``sum w^2 A^2``, ``sum w^2 a_c``,
        ``sum w^2 a_c^2``.
    resale_n_declarer, resale_n_declarer_zero, resale_assessed_declarer, resale_declared_declarer
        As the four declarer counts and sums above, over resale declarers only.
    resale_decl_cross, resale_decl_cat
        As ``decl_cross`` and ``decl_cat``, over resale declarers only.
    n_heavy : int64[R]
        Inspected non-declarers with ``A >= HEAVY_CENTS``.
    replicates : int64[K_ALL, B]
        Replicate sums of the ``first`` rows with Poisson(1) weights from ``unit_key``
        (built on read from the rows that are not zero, see :meth:`replicate_rows`).
    travellers : tuple of DistinctSketch
        Distinct randomly inspected travellers with a positive assessed value, per cell.
    top_loads : TopLoads
        The ``TOP_LOADS_K`` non-declarers with the largest ``(w - 1) A`` unit by unit, and
        the largest non-declarer weight (the robust estimator's conditional biases).
    replicate_bound : object (int)
        Upper bound of any replicate sum's absolute value (overflow guard).
    n_targeted : int64[R]
        Targeted inspections (never part of the level).
    targeted_assessed, targeted_declared : int64[C]
        Unweighted sums over targeted inspections.
    """

    _FIELDS = (
        "n_declarer",
        "n_declarer_zero",
        "assessed_declarer",
        "declared_declarer",
        "n_nondeclarer",
        "assessed_nondeclarer",
        "first",
        "decl_cross",
        "decl_cat",
        "nondecl_second",
        "tb_decl",
        "tb_non",
        "replicates",
        "replicate_bound",
        "n_targeted",
        "targeted_assessed",
        "targeted_declared",
        "resale_n_declarer",
        "resale_n_declarer_zero",
        "resale_assessed_declarer",
        "resale_declared_declarer",
        "resale_decl_cross",
        "resale_decl_cat",
        "n_heavy",
        "travellers",
        "top_loads",
    )
    _SKETCHES = ("travellers",)
    _OBJECTS = ("top_loads",)

    def __init__(self) -> None:
        self.n_declarer = _zeros(R)
        self.n_declarer_zero = _zeros((R, C))
        self.assessed_declarer = _zeros((R, C))
        self.declared_declarer = _zeros((R, C))
        self.n_nondeclarer = _zeros(R)
        self.assessed_nondeclarer = _zeros((R, C))
        self.first = _zeros(K_ALL, exact=True)
        self.decl_cross = _zeros((1 + 2 * C, 1 + 2 * C), exact=True)
        self.decl_cat = _zeros((2, C), exact=True)
        self.nondecl_second = _zeros(1 + C, exact=True)
        self.tb_decl = _zeros(3 + 2 * C, exact=True)
        self.tb_non = _zeros(3 + 2 * C, exact=True)
        self._rep_rows = np.zeros(0, dtype=np.intp)  # sorted rows of replicates not all zero
        self._rep_values = np.zeros((0, N_REPLICATES), dtype=np.int64)
        self._rep_values.flags.writeable = False
        self._rep_index: dict[int, int] | None = None  # row -> index in _rep_values, on demand
        self.replicate_bound = 0
        self.n_targeted = _zeros(R)
        self.targeted_assessed = _zeros(C)
        self.targeted_declared = _zeros(C)
        self.resale_n_declarer = _zeros(R)
        self.resale_n_declarer_zero = _zeros((R, C))
        self.resale_assessed_declarer = _zeros((R, C))
        self.resale_declared_declarer = _zeros((R, C))
        self.resale_decl_cross = _zeros((1 + 2 * C, 1 + 2 * C), exact=True)
        self.resale_decl_cat = _zeros((2, C), exact=True)
        self.n_heavy = _zeros(R)
        self.travellers = _sketches()
        self.top_loads = TopLoads()

    def update(self, obs: InspectionSeen) -> None:
        """Add one inspection (random: to the sample; targeted: to the apart counts)."""
        if not isinstance(obs, InspectionSeen):
            raise TypeError(f"SampleState cannot take {type(obs).__name__}")
        r = _region(obs.region)
        a = _cents(obs.assessed_cents, "assessed_cents")
        d = _cents(obs.declared_cents, "declared_cents")
        if not obs.random:
            self.n_targeted[r] += 1
            self.targeted_assessed += a
            self.targeted_declared += d
            return
        w = quantised_weight(obs.selection_probability)
        reps = poisson_weights(obs.unit_key)
        a_int = [int(v) for v in a]
        A = sum(a_int)
        _note_traveller(self.travellers, obs.traveller_key, r, a)
        row = np.zeros(K_ALL, dtype=object)
        if obs.declared:
            d_int = [int(v) for v in d]
            z = [int(v == 0) for v in d_int]
            dt = sum(d_int)
            self.n_declarer[r] += 1
            self.n_declarer_zero[r] += np.array(z, dtype=np.int64)
            self.assessed_declarer[r] += a
            self.declared_declarer[r] += d
            row[D_W] = 1
            row[D_WZ : D_WZ + C] = z
            row[D_WA1 : D_WA1 + C] = [ac * (1 - zc) for ac, zc in zip(a_int, z)]
            row[D_WA2 : D_WA2 + C] = [ac * zc for ac, zc in zip(a_int, z)]
            row[D_WD : D_WD + C] = d_int
            x = np.array([A, *d_int, *z], dtype=object)
            cross = w * np.outer(x, x)
            cat = np.array(
                [[w * ac * ac for ac in a_int], [w * ac * dc for ac, dc in zip(a_int, d_int)]],
                dtype=object,
            )
            self.decl_cross += cross
            self.decl_cat += cat
            if obs.resale:
                self.resale_n_declarer[r] += 1
                self.resale_n_declarer_zero[r] += np.array(z, dtype=np.int64)
                self.resale_assessed_declarer[r] += a
                self.resale_declared_declarer[r] += d
                self.resale_decl_cross += cross
                self.resale_decl_cat += cat
                row[RES : RES + K_D] = row[:K_D]
            w2 = w * w
            self.tb_decl += np.array(
                [w2 * A * A, w2 * A * dt, w2 * dt * dt]
                + [w2 * ac * ac for ac in a_int]
                + [w2 * ac * dt for ac in a_int],
                dtype=object,
            )
            top = max(A, dt, 1)
        else:
            self.n_nondeclarer[r] += 1
            self.assessed_nondeclarer[r] += a
            self.top_loads.update(obs.unit_key, w, a_int)
            row[N_W] = 1
            row[N_WA : N_WA + C] = a_int
            if A >= HEAVY_CENTS:
                self.n_heavy[r] += 1
                row[HVY] = 1
                row[HVY + 1 : HVY + 1 + C] = a_int
            self.nondecl_second += np.array([w * A * A] + [w * ac * ac for ac in a_int], dtype=object)
            w2 = w * w
            self.tb_non += np.array(
                [w2, w2 * A, w2 * A * A] + [w2 * ac for ac in a_int] + [w2 * ac * ac for ac in a_int],
                dtype=object,
            )
            top = max(A, 1)
        row = row * w
        self.first += row
        self.replicate_bound += int(reps.max()) * w * top
        self._check()
        row64 = row.astype(np.int64)
        rows = np.flatnonzero(row64)
        self._add_replicate_rows(rows, np.outer(row64[rows], reps))

    def update_many(self, observations) -> None:
        """Add many inspections in bulk (arrays per sum): the same state as one ``update`` each.

        Any inspection one-at-a-time updates would refuse (or an overflow guard that would
        trip) makes this fall back to them, so the error and the state before it match too.
        """
        _bulk_or_each(self, observations)

    def _bulk(self, obs: list):
        """A function adding ``obs`` in bulk, or None if one-at-a-time updates would fail."""
        if not obs:
            return lambda: None
        try:
            if any(type(o) is not InspectionSeen for o in obs):
                raise TypeError("not an inspection")
            r = np.array([REGION_INDEX[o.region] for o in obs], dtype=np.intp)
            a = _bulk_cents(obs, "assessed_cents")
            d = _bulk_cents(obs, "declared_cents")
            rnd = np.array([bool(o.random) for o in obs], dtype=bool)
            picked = [o for o, keep in zip(obs, rnd.tolist()) if keep]
            w_list = [quantised_weight(o.selection_probability) for o in picked]
            reps = poisson_weights_many([o.unit_key for o in picked])
            keys = np.array([o.traveller_key for o in picked], dtype=np.uint64)
        except (KeyError, TypeError, ValueError, OverflowError):
            return None
        tg = ~rnd
        r_t, r = r[tg], r[rnd]
        a_t, d_t, a, d = a[tg], d[tg], a[rnd], d[rnd]
        dec = np.array([bool(o.declared) for o in picked], dtype=bool)
        res = np.array([bool(o.declared and o.resale) for o in picked], dtype=bool)
        n = len(picked)
        w = np.array(w_list, dtype=object)
        w2 = w * w
        a_x, d_x = _exact(a), _exact(d)
        A = a_x.sum(1) if n else np.zeros(0, dtype=object)
        dt = d_x.sum(1) if n else np.zeros(0, dtype=object)
        z = (d == 0).astype(np.int64)
        top = [max(x, y, 1) if k else max(x, 1) for x, y, k in zip(A.tolist(), dt.tolist(), dec.tolist())]
        bound = self.replicate_bound + sum(
            int(m) * wi * t for m, wi, t in zip(reps.max(1).tolist() if n else [], w_list, top)
        )
        if bound >= _REPLICATE_LIMIT:
            return None  # one-at-a-time updates raise where they should

        def apply() -> None:
            # Targeted: apart.
            if len(r_t):
                np.add.at(self.n_targeted, r_t, 1)
                self.targeted_assessed += a_t.sum(0)
                self.targeted_declared += d_t.sum(0)
            if not n:
                return
            _note_travellers(self.travellers, keys, r, a)
            rows = np.zeros((n, K_ALL), dtype=np.int64)
            heavy = ~dec & np.array([x >= HEAVY_CENTS for x in A.tolist()], dtype=bool)
            if dec.any():
                rd, ad, dd, zd = r[dec], a[dec], d[dec], z[dec]
                np.add.at(self.n_declarer, rd, 1)
                np.add.at(self.n_declarer_zero, rd, zd)
                np.add.at(self.assessed_declarer, rd, ad)
                np.add.at(self.declared_declarer, rd, dd)
                block = np.zeros((len(rd), K_D), dtype=np.int64)
                block[:, D_W] = 1
                block[:, D_WZ : D_WZ + C] = zd
                block[:, D_WA1 : D_WA1 + C] = ad * (1 - zd)
                block[:, D_WA2 : D_WA2 + C] = ad * zd
                block[:, D_WD : D_WD + C] = dd
                rows[dec, :K_D] = block
                wd, w2d = w[dec], w2[dec]
                Ad, dtd, axd, dxd = A[dec], dt[dec], a_x[dec], d_x[dec]
                x = np.concatenate([Ad.reshape(-1, 1), dxd, _exact(zd)], axis=1)
                cross = np.dot((x * wd.reshape(-1, 1)).T, x)
                cat = np.stack([_joined((axd * axd * wd.reshape(-1, 1)).sum(0)), _joined((axd * dxd * wd.reshape(-1, 1)).sum(0))])
                self.decl_cross += cross
                self.decl_cat += cat
                rs = res[dec]
                if rs.any():
                    rr = rd[rs]
                    np.add.at(self.resale_n_declarer, rr, 1)
                    np.add.at(self.resale_n_declarer_zero, rr, zd[rs])
                    np.add.at(self.resale_assessed_declarer, rr, ad[rs])
                    np.add.at(self.resale_declared_declarer, rr, dd[rs])
                    xs = x[rs]
                    self.resale_decl_cross += np.dot((xs * wd[rs].reshape(-1, 1)).T, xs)
                    self.resale_decl_cat += np.stack([
                        _joined((axd[rs] * axd[rs] * wd[rs].reshape(-1, 1)).sum(0)),
                        _joined((axd[rs] * dxd[rs] * wd[rs].reshape(-1, 1)).sum(0)),
                    ])
                    rows[res, RES : RES + K_D] = rows[res, :K_D]
                w2c = w2d.reshape(-1, 1)
                self.tb_decl += _joined(
                    (w2d * Ad * Ad).sum(), (w2d * Ad * dtd).sum(), (w2d * dtd * dtd).sum(),
                    (w2c * axd * axd).sum(0),
                    (w2c * axd * dtd.reshape(-1, 1)).sum(0),
                )
            non = ~dec
            if non.any():
                rn, an = r[non], a[non]
                np.add.at(self.n_nondeclarer, rn, 1)
                np.add.at(self.assessed_nondeclarer, rn, an)
                rows[non, N_W] = 1
                rows[non, N_WA : N_WA + C] = an
                if heavy.any():
                    np.add.at(self.n_heavy, r[heavy], 1)
                    rows[heavy, HVY] = 1
                    rows[heavy, HVY + 1 : HVY + 1 + C] = a[heavy]
                for o, wi, ai in zip((o for o, k in zip(picked, dec.tolist()) if not k),
                                     w[non].tolist(), an.tolist()):
                    self.top_loads.update(o.unit_key, wi, ai)
                wn, w2n, An, axn = w[non], w2[non], A[non], a_x[non]
                wc, w2c = wn.reshape(-1, 1), w2n.reshape(-1, 1)
                self.nondecl_second += _joined((wn * An * An).sum(), (wc * axn * axn).sum(0))
                self.tb_non += _joined(
                    w2n.sum(), (w2n * An).sum(), (w2n * An * An).sum(),
                    (w2c * axn).sum(0),
                    (w2c * axn * axn).sum(0),
                )
            weighted = _exact(rows) * w.reshape(-1, 1)
            self.first += weighted.sum(0)
            self.replicate_bound = bound
            w64 = weighted.astype(np.int64)
            rows = np.flatnonzero(w64.any(0))
            self._add_replicate_rows(rows, w64[:, rows].T @ reps)

        return apply

    # Replicate sums, kept sparse: a stratum's inspected travellers mostly carry nothing,
    # so of the 84 rows (134 KB dense) typically only the weight rows are ever non-zero.
    @property
    def replicates(self) -> np.ndarray:
        """Replicate sums, int64[K_ALL, B] (a new dense array on every read)."""
        out = np.zeros((K_ALL, N_REPLICATES), dtype=np.int64)
        out[self._rep_rows] = self._rep_values
        return out

    @replicates.setter
    def replicates(self, dense) -> None:
        dense = np.asarray(dense)
        if dense.shape != (K_ALL, N_REPLICATES) or dense.dtype != np.int64:
            raise ValueError(f"replicates must be int64{(K_ALL, N_REPLICATES)}, got {dense.dtype}{dense.shape}")
        rows = np.flatnonzero(dense.any(1))
        self._rep_rows, self._rep_values, self._rep_index = rows, dense[rows], None
        self._rep_values.flags.writeable = False

    def replicate_rows(self) -> tuple[np.ndarray, np.ndarray]:
        """(rows, values): the sorted rows of :attr:`replicates` that are not all zero and
        their sums (read-only int64[len(rows), B]); every other row is zero."""
        return self._rep_rows, self._rep_values

    def replicate_row(self, i: int) -> np.ndarray:
        """Row ``i`` of :attr:`replicates` (read-only int64[B]) without building the rest."""
        index = self._rep_index
        if index is None:
            index = self._rep_index = {r: k for k, r in enumerate(self._rep_rows.tolist())}
        k = index.get(i)
        return _ZERO_ROW if k is None else self._rep_values[k]

    def _add_replicate_rows(self, rows: np.ndarray, values: np.ndarray, canonical: bool = False) -> None:
        """Add ``values`` to the replicate ``rows`` (sorted, distinct; ``canonical``: none of
        them all zero). Never in place (the arrays are read-only), so copies that share them
        stay apart. Every sum added is non-negative, so a row once non-zero stays so."""
        if not canonical:
            keep = values.any(1)
            rows, values = rows[keep], values[keep]
        if not len(rows):
            return
        if len(self._rep_rows) == len(rows) and (self._rep_rows == rows).all():
            out, union = self._rep_values + values, self._rep_rows
        elif not len(self._rep_rows):
            out, union = values.astype(np.int64), rows.astype(np.intp)
        else:
            union = np.union1d(self._rep_rows, rows)
            out = np.zeros((len(union), N_REPLICATES), dtype=np.int64)
            out[np.searchsorted(union, self._rep_rows)] = self._rep_values
            out[np.searchsorted(union, rows)] += values
        out.flags.writeable = False
        self._rep_rows, self._rep_values, self._rep_index = union, out, None

    def __iadd__(self, other):
        if type(other) is not type(self):
            return NotImplemented
        return self.add_sums(other, sketches=True)

    @classmethod
    def pool(cls, samples: Iterable["SampleState"]) -> "SampleState":
        """The sum of ``samples`` without their traveller sketches (see :meth:`add_sums`),
        starting from a shallow copy of the first: a sum never writes into its arrays (it
        replaces them), so sharing them is safe and saves one addition per pool."""
        members = list(samples)
        if not members:
            return cls()
        out = cls.__new__(cls)
        out.__dict__.update(members[0].__dict__)
        if len(members) == 1:
            return out
        for other in members[1:]:
            out.add_sums(other, replicates=False)
        # the replicate sums in one dense buffer (a merge of sparse rows per member cost
        # more than all the other fields); kept: the union of the members' rows, as a
        # sum of non-negative sums, the same rows and values as adding one by one
        dense = np.zeros((K_ALL, N_REPLICATES), dtype=np.int64)
        keep = np.zeros(K_ALL, dtype=bool)
        for m in members:
            dense[m._rep_rows] += m._rep_values
            keep[m._rep_rows] = True
        rows = np.flatnonzero(keep)
        values = dense[rows]
        values.flags.writeable = False
        out._rep_rows, out._rep_values, out._rep_index = rows, values, None
        return out

    def add_sums(self, other: "SampleState", sketches: bool = False, replicates: bool = True) -> "SampleState":
        """``self += other``; with ``sketches=False`` the traveller sketches are left as
        they were: the estimator's pools never count travellers, and merging their
        sketches was a fifth of the estimate's time. ``replicates=False`` leaves the
        replicate sums too (for :meth:`pool`, which adds them at once)."""
        for f in self._FIELDS:
            if f == "replicates":
                if replicates:
                    self._add_replicate_rows(*other.replicate_rows(), canonical=True)
            elif f in self._SKETCHES:
                if not sketches:
                    continue
                setattr(self, f, tuple(a + b for a, b in zip(getattr(self, f), getattr(other, f))))
            else:
                setattr(self, f, getattr(self, f) + getattr(other, f))
        self._check()
        return self

    def __eq__(self, other) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        for f in self._FIELDS:
            if f == "replicates":  # both canonical (no zero row kept): compare the rows
                (ra, va), (rb, vb) = self.replicate_rows(), other.replicate_rows()
                same = np.array_equal(ra, rb) and np.array_equal(va, vb)
            elif f in self._SKETCHES:
                same = getattr(self, f) == getattr(other, f)
            else:
                same = np.array_equal(getattr(self, f), getattr(other, f))
            if not same:
                return False
        return True

    __hash__ = None

    def __getstate__(self):
        state = {f: getattr(self, f) for f in self._FIELDS if f != "replicates"}
        state["replicate_rows"] = self.replicate_rows()
        return state

    def __setstate__(self, state) -> None:
        for f in self._FIELDS:
            if f != "replicates":
                setattr(self, f, state[f])
        rows, values = state["replicate_rows"]
        values = np.array(values, dtype=np.int64)
        values.flags.writeable = False
        self._rep_rows, self._rep_values = np.asarray(rows, dtype=np.intp), values
        self._rep_index = None

    def _check(self) -> None:
        if self.replicate_bound >= _REPLICATE_LIMIT:
            raise OverflowError(
                "replicate sums of this stratum could exceed int64; "
                "use coarser strata or larger selection probabilities"
            )

    @property
    def n_random(self) -> int:
        """Random inspections in the sample."""
        return int(self.n_declarer.sum() + self.n_nondeclarer.sum())

    def __repr__(self) -> str:
        return (
            f"SampleState(declarers={int(self.n_declarer.sum())}, "
            f"nondeclarers={int(self.n_nondeclarer.sum())}, targeted={int(self.n_targeted.sum())})"
        )


class StratumState:
    """Census and sample of one stratum; routes each observation to its half.

    ``census`` and ``sample`` are public so that a stream processor can keep them in
    separate tables; ``StratumState`` itself merges, compares and pickles by value.
    """

    __slots__ = ("census", "sample")

    def __init__(self) -> None:
        self.census = CensusState()
        self.sample = SampleState()

    def update(self, obs: DepartureSeen | DeclarationSeen | InspectionSeen) -> None:
        """Add one observation of this stratum."""
        if isinstance(obs, InspectionSeen):
            self.sample.update(obs)
        else:
            self.census.update(obs)

    def update_many(self, observations) -> None:
        """Add many observations of this stratum in bulk: the same state as one update each."""
        obs = list(observations)
        apply = self._bulk(obs)
        if apply is None:
            for o in obs:  # one at a time: the same error at the same observation
                self.update(o)
        else:
            apply()

    def _bulk(self, obs: list):
        """A function adding ``obs`` in bulk, or None if one-at-a-time updates would fail."""
        census = self.census._bulk([o for o in obs if not isinstance(o, InspectionSeen)])
        sample = self.sample._bulk([o for o in obs if isinstance(o, InspectionSeen)])
        if census is None or sample is None:
            return None

        def apply() -> None:
            census()
            sample()

        return apply

    def __iadd__(self, other: StratumState) -> StratumState:
        if not isinstance(other, StratumState):
            return NotImplemented
        self.census += other.census
        self.sample += other.sample
        return self

    def __add__(self, other: StratumState) -> StratumState:
        if not isinstance(other, StratumState):
            return NotImplemented
        out = copy.deepcopy(self)
        out += other
        return out

    def __eq__(self, other) -> bool:
        if not isinstance(other, StratumState):
            return NotImplemented
        return self.census == other.census and self.sample == other.sample

    __hash__ = None

    def __getstate__(self):
        return (self.census, self.sample)

    def __setstate__(self, state) -> None:
        self.census, self.sample = state

    def __repr__(self) -> str:
        return (
            f"StratumState(departures={int(self.census.departures.sum())}, "
            f"declarations={int(self.census.declarations.sum())}, "
            f"declared_usd={int(self.census.declared_cents.sum()) / 100:.2f}, "
            f"random={self.sample.n_random}, targeted={int(self.sample.n_targeted.sum())})"
        )


class FormalExports(_Summary):
    """Formal (recorded) handicraft exports of one week, by post, region and category.

    >>> from estimators.observations import FormalExportSeen
    >>> fx = FormalExports()
    >>> fx.update(FormalExportSeen("2026-W07", "BAZ", "turkey_caucasus", (0, 1_000_000, 0, 0, 0, 0, 0, 0)))
    >>> fx
    FormalExports(declarations=1, usd=10000.00)
    """

    _FIELDS = ("n", "cents")

    def __init__(self) -> None:
        self.n = _zeros(1)
        self.cents = _zeros((len(POSTS), R, C))

    def update(self, obs: FormalExportSeen) -> None:
        """Add one formal export declaration's handicraft lines."""
        if not isinstance(obs, FormalExportSeen):
            raise TypeError(f"FormalExports cannot take {type(obs).__name__}")
        try:
            p = POST_INDEX[obs.border_post]
        except KeyError:
            raise ValueError(f"unknown border post {obs.border_post!r}") from None
        self.n[0] += 1
        self.cents[p, _region(obs.region)] += _cents(obs.cents_by_category, "cents_by_category")

    def __repr__(self) -> str:
        return f"FormalExports(declarations={int(self.n[0])}, usd={int(self.cents.sum()) / 100:.2f})"


class WeekPayments(_Summary):
    """Card payments of one week: count and signed cents by card type and merchant kind.

    Index ``[card_type, handicraft]`` with card types ``("tourist", "domestic")``.

    >>> from estimators.observations import PaymentSeen
    >>> p = WeekPayments()
    >>> p.update(PaymentSeen("2026-W07", "tourist", True, 12_500))
    >>> p.update(PaymentSeen("2026-W07", "tourist", True, -2_500))
    >>> p.handicraft_usd("tourist")
    100.0
    """

    _FIELDS = ("count", "cents")

    def __init__(self) -> None:
        self.count = _zeros((2, 2))
        self.cents = _zeros((2, 2))

    def update(self, obs: PaymentSeen) -> None:
        """Add one payment (refunds and reversals carry negative cents)."""
        if not isinstance(obs, PaymentSeen):
            raise TypeError(f"WeekPayments cannot take {type(obs).__name__}")
        try:
            t = CARD_TYPES.index(obs.card_type)
        except ValueError:
            raise ValueError(f"unknown card type {obs.card_type!r}") from None
        h = int(bool(obs.handicraft))
        self.count[t, h] += 1
        self.cents[t, h] += int(obs.amount_cents)

    def add_payments(self, card_type: str, handicraft: bool, count: int, amount_cents: int) -> None:
        """``count`` payments of net ``amount_cents`` at once: the same as as many updates."""
        try:
            t = CARD_TYPES.index(card_type)
        except ValueError:
            raise ValueError(f"unknown card type {card_type!r}") from None
        if count < 0:
            raise ValueError(f"count must not be negative, got {count}")
        h = int(bool(handicraft))
        self.count[t, h] += count
        self.cents[t, h] += int(amount_cents)

    def handicraft_usd(self, card_type: str = "tourist") -> float:
        """Net handicraft-merchant card spending of the week, in US dollars."""
        return int(self.cents[CARD_TYPES.index(card_type), 1]) / 100

    def __repr__(self) -> str:
        return (
            f"WeekPayments(payments={int(self.count.sum())}, "
            f"tourist_handicraft_usd={self.handicraft_usd('tourist'):.2f})"
        )
