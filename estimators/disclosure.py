"""Statistical disclosure control: small cells are suppressed before anything is published.

Two pieces, both pure:

* :func:`suppress` marks and blanks the cells of an estimate table that rest on too few
  people: fewer than ``k`` distinct travellers, or fewer than ``min_inspected`` inspected
  travellers. The value columns of such a cell are emptied and a ``suppressed`` column
  says why (``few_travellers``, ``few_inspected``, both joined by ``;``, or
  ``complementary``). Totals are computed from all travellers *before* suppression, so
  every published total stays correct.
* :class:`DistinctSketch`, a mergeable bottom-k sketch that counts distinct travellers in a
  cell up to ``k`` without keeping their ids.

Complementary suppression
-------------------------
Each breakdown (category, border post, destination region) splits the total. If exactly
one cell of a breakdown were blanked, it could be recovered as the total minus the
others. :func:`suppress` therefore, by default, also blanks the smallest other published
cell of that breakdown (reason ``complementary``). This is the minimum for one-way tables
with a published total; it does not protect against differencing across vintages (a
revised vintage that adds one traveller to a cell) or across weeks, nor against
intervals narrow enough to bound a blanked cell: keep ``k`` generous for that reason.

Examples
--------
>>> s = DistinctSketch(k=3)
>>> for t in ["t1", "t2", "t1"]:
...     s.update(t)
>>> s.count(), s.saturated
(2, False)
>>> s.update("t3"); s.update("t4")
>>> s.count(), s.saturated, s.describe()
(3, True, '>= 3')
"""

from __future__ import annotations

import hashlib
import heapq
from collections.abc import Iterable

import polars as pl

__all__ = [
    "DEFAULT_K",
    "DEFAULT_MIN_INSPECTED",
    "VALUE_COLUMNS",
    "KEPT_USD_COLUMNS",
    "REASONS",
    "suppress",
    "traveller_hash",
    "DistinctSketch",
]

#: Default minimum number of distinct travellers behind a published cell.
DEFAULT_K = 10
#: Default minimum number of (randomly) inspected travellers behind a published cell.
DEFAULT_MIN_INSPECTED = 3
#: Columns blanked in a suppressed cell (those present in the table); any other column
#: ending in ``_usd`` is blanked too, except :data:`KEPT_USD_COLUMNS`.
VALUE_COLUMNS: tuple[str, ...] = (
    "estimate_usd", "ci_low_usd", "ci_high_usd", "std_error_usd", "informal_to_formal_ratio",
)
#: Money columns not about travellers, left in place: formal exports come from export
#: declarations, not from the cell's travellers.
KEPT_USD_COLUMNS: tuple[str, ...] = ("formal_exports_usd",)
#: Reasons the ``suppressed`` column can give (null: published).
REASONS: tuple[str, ...] = ("few_travellers", "few_inspected", "complementary")


def suppress(
    table: pl.DataFrame,
    k: int = DEFAULT_K,
    min_inspected: int = DEFAULT_MIN_INSPECTED,
    *,
    complementary: bool = True,
) -> pl.DataFrame:
    """Blank the value columns of cells built on too few travellers; add ``suppressed``.

    Parameters
    ----------
    table
        One row per cell, with ``n_inspected`` and ideally ``n_travellers`` (distinct
        travellers; from :meth:`DistinctSketch.count`, where ``k`` means "k or more").
        Without ``n_travellers``, ``n_departures`` is used: it bounds distinct travellers
        from above, so a cell with fewer than ``k`` departures surely has fewer than ``k``
        travellers, but a frequent trader crossing ``k`` times is not caught.
        With ``domain`` and ``week`` columns, complementary suppression works per week
        and breakdown; rows with ``domain == "total"`` are never complemented.
    k, min_inspected
        Thresholds: a cell is published only with at least ``k`` distinct travellers and
        at least ``min_inspected`` inspected travellers, or with no traveller at all (an
        empty cell is a zero that reveals no one, and blanking it would only force a
        needless complementary suppression).
    complementary
        Also blank the smallest other cell of a breakdown in which exactly one cell was
        blanked (see the module docstring).

    Returns
    -------
    The table with :data:`VALUE_COLUMNS` (and other ``*_usd`` columns but formal
    exports) set to null in suppressed rows, and a string column ``suppressed`` (null
    when the row is published). Counts are kept: they say why a cell is blank.

    Examples
    --------
    >>> t = pl.DataFrame({"domain": ["total", "border_post", "border_post", "border_post"],
    ...                   "key": ["all", "IKA", "NOR", "BAZ"],
    ...                   "estimate_usd": [100.0, 80.0, 5.0, 15.0],
    ...                   "n_travellers": [60, 40, 4, 16], "n_inspected": [12, 8, 1, 3]})
    >>> suppress(t).select("key", "estimate_usd", "suppressed").rows()
    [('all', 100.0, None), ('IKA', 80.0, None), ('NOR', None, 'few_travellers;few_inspected'), ('BAZ', None, 'complementary')]
    """
    if k < 1 or min_inspected < 0:
        raise ValueError("k must be >= 1 and min_inspected >= 0")
    if "n_inspected" not in table.columns:
        raise ValueError("suppress needs an n_inspected column")
    people = "n_travellers" if "n_travellers" in table.columns else "n_departures"
    if people not in table.columns:
        raise ValueError("suppress needs an n_travellers (or n_departures) column")
    nobody = pl.col(people).fill_null(0) == 0  # an empty cell reveals no one: published
    few_travellers = ~nobody & (pl.col(people).fill_null(0) < k)
    few_inspected = ~nobody & (pl.col("n_inspected").fill_null(0) < min_inspected)
    reason = (
        pl.when(few_travellers & few_inspected).then(pl.lit("few_travellers;few_inspected"))
        .when(few_travellers).then(pl.lit("few_travellers"))
        .when(few_inspected).then(pl.lit("few_inspected"))
        .otherwise(pl.lit(None, dtype=pl.String))
    )
    out = table.with_columns(reason.alias("suppressed"))
    if complementary and "domain" in out.columns:
        out = _complement(out, people)
    blank = pl.col("suppressed").is_not_null()
    return out.with_columns(
        pl.when(blank).then(pl.lit(None)).otherwise(pl.col(c)).alias(c)
        for c in out.columns
        if c in VALUE_COLUMNS or (c.endswith("_usd") and c not in KEPT_USD_COLUMNS)
    )


def _complement(table: pl.DataFrame, people: str) -> pl.DataFrame:
    """Blank one more cell in each breakdown where exactly one cell is blanked."""
    group = [c for c in ("week", "domain") if c in table.columns]
    size = "estimate_usd" if "estimate_usd" in table.columns else people
    indexed = table.with_row_index("_row")
    extra: list[int] = []
    for _, part in indexed.filter(pl.col("domain") != "total").group_by(group, maintain_order=True):
        if part["suppressed"].is_not_null().sum() != 1:
            continue
        candidates = part.filter(pl.col("suppressed").is_null())
        if candidates.height == 0:
            continue
        smallest = candidates.sort([size, people, "_row"], nulls_last=False).row(0, named=True)
        extra.append(smallest["_row"])
    if not extra:
        return table
    return indexed.with_columns(
        pl.when(pl.col("_row").is_in(extra)).then(pl.lit("complementary"))
        .otherwise(pl.col("suppressed")).alias("suppressed")
    ).drop("_row")


def traveller_hash(traveller_id: str, key: bytes = b"") -> int:
    """64-bit unsigned BLAKE2b digest of a traveller id (keyed when ``key`` is given).

    >>> traveller_hash("t-1") == traveller_hash("t-1") != traveller_hash("t-1", key=b"secret")
    True
    """
    return int.from_bytes(
        hashlib.blake2b(traveller_id.encode("utf-8"), digest_size=8, key=key).digest(), "little"
    )


class DistinctSketch:
    """Bottom-k sketch of the distinct travellers of one cell: the ``k`` smallest hashes seen.

    Fewer than ``k`` distinct hashes seen means all of them are kept, so :meth:`count` is
    exact; otherwise exactly ``k`` are kept and the count is "``k`` or more", which is all
    disclosure control needs to know. The state is a sorted tuple of at most ``k`` 64-bit
    integers: bounded, independent of the order of updates, and merged by union then
    keeping the ``k`` smallest, so the sketch of two partitions merged equals the sketch of
    their union (a commutative, associative, idempotent merge, with the empty sketch as
    identity). A repeat traveller (a frequent trader) hashes to the same value and counts
    once.

    No traveller id is stored, only the hashes. Traveller ids are pseudonymous already;
    since anyone holding the list of ids could hash them and recognise the kept hashes,
    production use should pass a secret ``key`` (keyed BLAKE2b), the same in every worker,
    and never publish the sketch itself. Two different travellers share a 64-bit hash with
    probability about 2**-64 per pair: negligible for a cell.

    Parameters
    ----------
    k
        Capacity: the disclosure threshold (at least 1).
    key
        Secret key of the hash (up to 64 bytes); sketches merge only with the same key.
    """

    __slots__ = ("k", "key", "_hashes")

    def __init__(self, k: int = DEFAULT_K, key: bytes = b"") -> None:
        self.k = k
        self.key = key
        self._hashes: tuple[int, ...] = ()

    # -- updates ---------------------------------------------------------------------
    def update(self, traveller_id: str) -> None:
        """Add one traveller (by id; only its hash is kept)."""
        self.update_hash(traveller_hash(traveller_id, self.key))

    def update_hash(self, h: int) -> None:
        """Add one traveller by its 64-bit hash (see :func:`traveller_hash`)."""
        if h in self._hashes:
            return
        if len(self._hashes) < self.k:
            self._hashes = tuple(sorted((*self._hashes, h)))
        elif h < self._hashes[-1]:
            self._hashes = tuple(sorted((*self._hashes[:-1], h)))

    def update_hashes(self, hashes: Iterable[int]) -> None:
        """Add many travellers by hash: the same sketch as one ``update_hash`` each."""
        self._hashes = tuple(heapq.nsmallest(self.k, set(self._hashes).union(hashes)))

    def __iadd__(self, other: DistinctSketch) -> DistinctSketch:
        """Merge ``other`` into this sketch (union, then keep the ``k`` smallest)."""
        self._check(other)
        if not other._hashes:
            return self
        if not self._hashes:  # the other's are already the k smallest, ascending
            self._hashes = other._hashes
            return self
        self._hashes = tuple(heapq.nsmallest(self.k, set(self._hashes) | set(other._hashes)))
        return self

    def __add__(self, other: DistinctSketch) -> DistinctSketch:
        merged = self.copy()
        merged += other
        return merged

    # -- reads -----------------------------------------------------------------------
    def count(self) -> int:
        """Distinct travellers seen: exact below ``k``; ``k`` means "``k`` or more"."""
        return len(self._hashes)

    @property
    def saturated(self) -> bool:
        """True when at least ``k`` distinct travellers were seen."""
        return len(self._hashes) >= self.k

    def describe(self) -> str:
        """The count as text: ``"7"`` or ``">= 10"``."""
        return f">= {self.k}" if self.saturated else str(len(self._hashes))

    def hashes(self) -> tuple[int, ...]:
        """The kept hashes, ascending (for a changelog; never publish them)."""
        return self._hashes

    # -- state -----------------------------------------------------------------------
    def copy(self) -> DistinctSketch:
        twin = DistinctSketch(self.k, self.key)
        twin._hashes = self._hashes
        return twin

    @classmethod
    def from_hashes(cls, hashes: Iterable[int], k: int = DEFAULT_K, key: bytes = b"") -> DistinctSketch:
        """Rebuild a sketch from hashes (e.g. read back from a changelog)."""
        sketch = cls(k, key)
        sketch._hashes = tuple(heapq.nsmallest(k, set(hashes)))
        return sketch

    def __getstate__(self) -> tuple:
        return (self.k, self.key, self._hashes)

    def __setstate__(self, state: tuple) -> None:
        self.k, self.key, self._hashes = state

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DistinctSketch):
            return NotImplemented
        return (self.k, self.key, self._hashes) == (other.k, other.key, other._hashes)

    __hash__ = None  # mutable

    def __repr__(self) -> str:
        return f"DistinctSketch(k={self.k}, count={self.describe()!r})"

    def _check(self, other: DistinctSketch) -> None:
        if not isinstance(other, DistinctSketch):
            raise TypeError(f"cannot merge a DistinctSketch with {type(other).__name__}")
        if other.k != self.k or other.key != self.key:
            raise ValueError("DistinctSketch merge needs the same k and key")
