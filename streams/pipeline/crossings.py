"""From accepted events to estimator observations: pricing in US cents, and the join.

A departure, its declaration and its inspections share a ``crossing_id`` (and a
partition) but arrive in any order, sometimes days apart. :class:`Crossing` holds what
has arrived of one crossing and releases each observation exactly once, as soon as it is
complete: the departure at once (it fixes the stratum), the declaration once the
departure is known, an inspection once the departure and, if the inspection says the
traveller declared, the declaration are known. What it releases depends only on the set
of events, not on their order. The live worker keeps one ``Crossing`` per open crossing
in a table; the batch path keeps them in a dict. Same code, same numbers.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import NamedTuple
from zoneinfo import ZoneInfo

from estimators.observations import (
    DeclarationSeen,
    DepartureSeen,
    FormalExportSeen,
    InspectionSeen,
    Observation,
    PaymentSeen,
    Stratum,
    iso_week_label,
    traveller_key,
    unit_key,
)
from streams.pipeline.contract import DECLARATIONS, INSPECTIONS, Declaration, Departure, FormalExport, Inspection, Payment
from streams.pipeline.fx import RateBook
from streams.pipeline.pseudonym import key as pseudonym_key  # the secret of every digest
from estimators.reference import CATEGORIES, HANDICRAFT_MCCS, destination_region, hs_category

TEHRAN = ZoneInfo("Asia/Tehran")
_CATEGORY_INDEX = {c: i for i, c in enumerate(CATEGORIES)}
_NO_VALUE = (0,) * len(CATEGORIES)


def tehran_date(at: datetime) -> date:
    """Calendar date in Asia/Tehran, the clock the estimates' weeks are counted in."""
    return at.astimezone(TEHRAN).date()


def week_of(at: datetime) -> str:
    """ISO week label (``2026-W07``) of an event time, in Asia/Tehran."""
    return iso_week_label(tehran_date(at))


def departure_stratum(departure: Departure) -> tuple[Stratum, str, int]:
    """The stratum (week, post, group), destination region and day of the week (0 =
    Monday, Asia/Tehran) of a departure."""
    group = "resident" if departure.resident else "visitor"
    day = tehran_date(departure.event_time)
    return (
        Stratum(iso_week_label(day), departure.border_post, group),
        destination_region(departure.destination_country),
        day.weekday(),
    )


class PricedDeclaration(NamedTuple):
    """A declaration with its values in US cents, waiting for its departure."""

    declared_cents: tuple[int, ...]
    resale: bool
    traveller_key: int


class PricedInspection(NamedTuple):
    """An inspection with its assessed values in US cents, waiting for its join."""

    unit_key: int
    random: bool
    selection_probability: float | None
    declared: bool
    assessed_cents: tuple[int, ...]
    traveller_key: int


def priced_declaration(declaration: Declaration, rates: RateBook) -> PricedDeclaration | None:
    """Declared value per category in US cents, or None if a currency has no rate yet."""
    cents = _cents_by_category(
        ((i.category, i.value, i.currency) for i in declaration.items), declaration.event_time, rates
    )
    if cents is None:
        return None
    return PricedDeclaration(
        cents,
        any(item.purpose == "resale" for item in declaration.items),
        traveller_key(declaration.traveller_id, pseudonym_key()),
    )


def priced_inspection(inspection: Inspection, rates: RateBook) -> PricedInspection | None:
    """The inspection with assessed values in US cents, or None if a rate is missing."""
    cents = _cents_by_category(
        ((i.category, i.assessed_value, i.currency) for i in inspection.items),
        inspection.event_time,
        rates,
    )
    if cents is None:
        return None
    return PricedInspection(
        unit_key(inspection.crossing_id, pseudonym_key()),
        inspection.selection == "random",
        inspection.selection_probability,
        inspection.declared,
        cents,
        traveller_key(inspection.traveller_id, pseudonym_key()),
    )


def priced_declarations(declarations: list[Declaration], rates: RateBook) -> list[PricedDeclaration | None]:
    """``[priced_declaration(d, rates) for d in declarations]``, every item priced in one
    numpy pass per currency (the batch reader's many declarations)."""
    cents = _cents_by_category_many(
        [[(i.category, i.value, i.currency) for i in d.items] for d in declarations],
        [d.event_time.timestamp() for d in declarations],
        rates,
    )
    if cents is None:
        return [priced_declaration(d, rates) for d in declarations]
    key = pseudonym_key()
    return [
        None if c is None else PricedDeclaration(
            c, any(item.purpose == "resale" for item in d.items), traveller_key(d.traveller_id, key)
        )
        for d, c in zip(declarations, cents)
    ]


def priced_inspections(inspections: list[Inspection], rates: RateBook) -> list[PricedInspection | None]:
    """``[priced_inspection(i, rates) for i in inspections]``, priced as
    :func:`priced_declarations` does."""
    cents = _cents_by_category_many(
        [[(i.category, i.assessed_value, i.currency) for i in e.items] for e in inspections],
        [e.event_time.timestamp() for e in inspections],
        rates,
    )
    if cents is None:
        return [priced_inspection(e, rates) for e in inspections]
    key = pseudonym_key()
    return [
        None if c is None else PricedInspection(
            unit_key(e.crossing_id, key), e.selection == "random", e.selection_probability,
            e.declared, c, traveller_key(e.traveller_id, key),
        )
        for e, c in zip(inspections, cents)
    ]


def payment_seen(payment: Payment, rates: RateBook) -> PaymentSeen | None:
    """A payment in signed US cents (refunds and reversals negative), or None without a rate."""
    cents = rates.to_cents(payment.amount, payment.currency, payment.event_time.timestamp())
    if cents is None:
        return None
    return PaymentSeen(
        week_of(payment.event_time),
        payment.card_type,
        payment.mcc in HANDICRAFT_MCCS,
        cents if payment.kind == "purchase" else -cents,
    )


def formal_export_seen(export: FormalExport, rates: RateBook) -> FormalExportSeen | None:
    """The handicraft lines of a formal export in US cents, or None without a rate."""
    handicraft_lines = (
        (category, i.value, i.currency)
        for i in export.items
        if (category := hs_category(i.hs_code)) is not None  # else not a handicraft heading
    )
    cents = _cents_by_category(handicraft_lines, export.event_time, rates)
    if cents is None:
        return None
    return FormalExportSeen(
        week_of(export.event_time),
        export.border_post,
        destination_region(export.destination_country),
        cents,
    )


def formal_exports_seen(exports: list[FormalExport], rates: RateBook) -> list[FormalExportSeen | None]:
    """``[formal_export_seen(e, rates) for e in exports]``, priced as
    :func:`priced_declarations` does."""
    cents = _cents_by_category_many(
        [
            [(category, i.value, i.currency) for i in e.items if (category := hs_category(i.hs_code)) is not None]
            for e in exports
        ],
        [e.event_time.timestamp() for e in exports],
        rates,
    )
    if cents is None:
        return [formal_export_seen(e, rates) for e in exports]
    return [
        None if c is None else FormalExportSeen(
            week_of(e.event_time), e.border_post, destination_region(e.destination_country), c
        )
        for e, c in zip(exports, cents)
    ]


def _cents_by_category(lines, at: datetime, rates: RateBook) -> tuple[int, ...] | None:
    """Sum (category, amount, currency) lines in US cents per category at time ``at``;
    None if some currency has no rate yet (the event is held, not priced in part)."""
    stamp = at.timestamp()
    cents = [0] * len(CATEGORIES)
    for category, amount, currency in lines:
        value = rates.to_cents(amount, currency, stamp)
        if value is None:
            return None
        cents[_CATEGORY_INDEX[category]] += value
    return tuple(cents)


def _cents_by_category_many(lines: list[list], stamps: list[float], rates: RateBook) -> list | None:
    """``[_cents_by_category(l, t, rates) ...]`` for each event's (category, amount,
    currency) lines ``l`` and epoch seconds ``t``, in numpy: the same float operations
    (:meth:`RateBook.to_cents_array`) and exact int64 sums. None when the vector form could
    differ (see ``to_cents_array``, or sums near int64's limit): then price one by one."""
    import numpy as np

    counts = np.fromiter(map(len, lines), dtype=np.int64, count=len(lines))
    flat = [line for event in lines for line in event]
    n = len(flat)
    category = np.fromiter((_CATEGORY_INDEX[c] for c, _, _ in flat), dtype=np.int64, count=n)
    amount = np.fromiter((a for _, a, _ in flat), dtype=float, count=n)
    owner = np.repeat(np.arange(len(lines), dtype=np.int64), counts)
    at = np.asarray(stamps, dtype=float)[owner]
    by_currency: dict[str, list[int]] = {}
    for i, (_, _, currency) in enumerate(flat):
        by_currency.setdefault(currency, []).append(i)
    cents = np.zeros(n, dtype=np.int64)
    priced = np.zeros(n, dtype=bool)
    for currency, rows in by_currency.items():
        rows = np.asarray(rows, dtype=np.int64)
        got = rates.to_cents_array(currency, amount[rows], at[rows])
        if got is None:
            return None
        cents[rows], priced[rows] = got
    if np.abs(cents).astype(float).sum() >= 2.0**62:
        return None
    sums = np.zeros((len(lines), len(CATEGORIES)), dtype=np.int64)
    np.add.at(sums, (owner, category), cents)
    unpriced = np.bincount(owner, weights=~priced, minlength=len(lines)) > 0
    return [None if bad else tuple(row) for row, bad in zip(sums.tolist(), unpriced.tolist())]


class Crossing:
    """What has arrived of one crossing; releases each observation once, when complete.

    Only the first departure and the first declaration of a crossing count (event-id
    duplicates are removed before this; a second, different event for the same piece is
    a producer error and is ignored). An inspection that says ``declared`` waits for the
    declaration's values; one that says not declared is joined with zeros.
    """

    __slots__ = ("stratum", "region", "declared", "waiting", "post")

    def __init__(self) -> None:
        self.post: str | None = None  # border post of the first piece seen (for unjoined counts)
        self.stratum: Stratum | None = None
        self.region: str | None = None
        self.declared: PricedDeclaration | None = None
        self.waiting: list[PricedInspection] = []

    def add_departure(self, stratum: Stratum, region: str, day: int, counted: bool = False) -> list[Observation]:
        """The crossing's observations that its departure completes. ``counted``: the
        caller counts the departure itself (the archive reader, per cell in bulk), so no
        ``DepartureSeen`` is among them."""
        if self.stratum is not None:
            return []
        self.stratum, self.region = stratum, region
        out: list[Observation] = [] if counted else [DepartureSeen(stratum, region, day)]
        if self.declared is not None:
            out.append(DeclarationSeen(stratum, region, *self.declared))
        return out + self._release()

    def add_declaration(self, declaration: PricedDeclaration) -> list[Observation]:
        if self.declared is not None:
            return []
        self.declared = declaration
        if self.stratum is None:
            return []
        return [DeclarationSeen(self.stratum, self.region, *declaration), *self._release()]

    def add_inspection(self, inspection: PricedInspection) -> list[Observation]:
        self.waiting.append(inspection)
        return self._release() if self.stratum is not None else []

    @property
    def open_inspections(self) -> int:
        """Inspections still waiting for their departure or declaration."""
        return len(self.waiting)

    def unjoined(self) -> list[tuple[str, str | None]]:
        """(topic, border post) of each piece that never met its departure."""
        if self.stratum is not None:
            return []
        return [(DECLARATIONS, self.post)] * (self.declared is not None) + [(INSPECTIONS, self.post)] * len(self.waiting)

    def _release(self) -> list[Observation]:
        if not self.waiting:
            return []
        ready = [i for i in self.waiting if not i.declared or self.declared is not None]
        if not ready:
            return []
        self.waiting = [i for i in self.waiting if i.declared and self.declared is None]
        return [
            InspectionSeen(
                self.stratum,
                self.region,
                i.unit_key,
                i.random,
                i.selection_probability,
                i.declared,
                i.assessed_cents,
                self.declared.declared_cents if i.declared else _NO_VALUE,
                i.declared and self.declared.resale,
                i.traveller_key,
            )
            for i in ready
        ]

    def __getstate__(self):
        return (self.stratum, self.region, self.declared, self.waiting, self.post)

    def __setstate__(self, state) -> None:
        self.stratum, self.region, self.declared, self.waiting = state[:4]
        self.post = state[4] if len(state) > 4 else None
        if self.stratum is not None:
            self.stratum = Stratum(*self.stratum)
        if self.declared is not None:
            self.declared = PricedDeclaration(*self.declared)
        self.waiting = [PricedInspection(*i) for i in self.waiting]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Crossing) and self.__getstate__() == other.__getstate__()

    def __repr__(self) -> str:
        return f"Crossing(stratum={self.stratum!r}, declared={self.declared is not None}, waiting={len(self.waiting)})"
