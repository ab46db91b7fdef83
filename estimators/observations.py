"""Pure input types of the estimators: what the join hands over, one crossing event at a time.

Money is in integer US cents, so every sum the estimators keep is an exact integer and
does not depend on the order in which observations arrive, down to the last digit. Value
tuples are indexed like :data:`estimators.reference.CATEGORIES`.

The join (``streams/pipeline/crossings.py``) guarantees that each crossing's departure, declaration
and inspection are delivered at most once each (duplicates are removed upstream by
``event_id``), and that an :class:`InspectionSeen` carries the declared values of its
crossing's declaration (zeros when there is none).

Examples
--------
>>> s = Stratum("2026-W07", "IKA", "visitor")
>>> DepartureSeen(s, "gulf")
DepartureSeen(stratum=Stratum(week='2026-W07', border_post='IKA', group='visitor'), region='gulf', day=0)
>>> unit_key("c-000001") == unit_key("c-000001")
True
>>> 0 <= unit_key("c-000001") < 2**64
True
>>> iso_week_label(datetime.date(2026, 2, 12))
'2026-W07'
"""

from __future__ import annotations

import datetime
import functools
import hashlib
from typing import NamedTuple

__all__ = [
    "GROUPS",
    "Stratum",
    "DepartureSeen",
    "DeclarationSeen",
    "InspectionSeen",
    "PaymentSeen",
    "FormalExportSeen",
    "Observation",
    "unit_key",
    "traveller_key",
    "iso_week_label",
]

#: Traveller group of a stratum, from the departure's ``resident`` flag.
GROUPS: tuple[str, ...] = ("resident", "visitor")


class Stratum(NamedTuple):
    """A design stratum: ISO week of the departure (Asia/Tehran), border post, group.

    ``week`` is an ISO week label such as ``"2026-W07"``; ``group`` is one of
    :data:`GROUPS` (``"resident"`` when the departure's ``resident`` flag is true). The
    batch-only option ``--traveller-strata`` appends the traveller's trip-frequency class,
    ``"visitor|5+"`` (:mod:`streams.pipeline.travellers`); live states never hold one
    (their encoding refuses it).
    """

    week: str
    border_post: str
    group: str


class DepartureSeen(NamedTuple):
    """One departing traveller (the census of N). ``region``: destination region code;
    ``day``: the departure's day of its week, 0 = Monday .. 6 = Sunday in Asia/Tehran
    (``date.weekday()`` of its Tehran date), so a nowcast knows how much of a week
    has passed by the departures' own clock."""

    stratum: Stratum
    region: str
    day: int = 0


class DeclarationSeen(NamedTuple):
    """One declaration (the census of declarers and of the declared total D).

    ``declared_cents``: declared value in US cents per category, in CATEGORIES order;
    ``resale``: some item is declared for resale (the trader's declaration);
    ``traveller_key``: keyed 64-bit digest of the traveller id (:func:`traveller_key`), for
    counting distinct travellers per cell; never the id.
    """

    stratum: Stratum
    region: str
    declared_cents: tuple[int, ...]
    resale: bool = False
    traveller_key: int = 0


class InspectionSeen(NamedTuple):
    """One baggage inspection at exit.

    Attributes
    ----------
    stratum, region
        Of the inspected crossing's departure.
    unit_key
        64-bit unsigned integer digest of the ``crossing_id`` (see :func:`unit_key`); it
        seeds the unit's bootstrap replicate weights. Never the id itself.
    random
        True for ``selection == "random"`` (a probability sample); False for targeted.
    selection_probability
        For random selections the inclusion probability in (0, 1]; None for targeted.
    declared
        The traveller filed a declaration (the event's ``declared`` flag).
    assessed_cents
        Assessed (true) value in US cents per category.
    declared_cents
        Declared value in US cents per category from the crossing's declaration; zeros
        when there is none.
    resale
        The crossing's declaration declares some item for resale.
    traveller_key
        Keyed 64-bit digest of the traveller id (:func:`traveller_key`); never the id.
    """

    stratum: Stratum
    region: str
    unit_key: int
    random: bool
    selection_probability: float | None
    declared: bool
    assessed_cents: tuple[int, ...]
    declared_cents: tuple[int, ...]
    resale: bool = False
    traveller_key: int = 0


class PaymentSeen(NamedTuple):
    """One card payment. ``amount_cents`` is signed: refunds and reversals are negative.

    ``week``: ISO week label of the payment's ``event_time`` (Asia/Tehran);
    ``card_type``: ``"tourist"`` or ``"domestic"``; ``handicraft``: the merchant's MCC is a
    handicraft MCC.
    """

    week: str
    card_type: str
    handicraft: bool
    amount_cents: int


class FormalExportSeen(NamedTuple):
    """One formal export declaration's handicraft lines, in US cents per category."""

    week: str
    border_post: str
    region: str
    cents_by_category: tuple[int, ...]


Observation = DepartureSeen | DeclarationSeen | InspectionSeen


def unit_key(crossing_id: str, key: bytes = b"") -> int:
    """The 64-bit unsigned digest of a crossing id that seeds its bootstrap weights.

    BLAKE2b with an 8-byte digest, read little-endian, keyed with ``key`` (production
    passes the pseudonym secret, so a digest cannot be matched to a crossing id by
    enumerating ids; the empty key is plain BLAKE2b). Stable across processes and
    platforms (unlike :func:`hash`).

    >>> unit_key("abc")
    6455300059550759896
    """
    return int.from_bytes(
        hashlib.blake2b(crossing_id.encode("utf-8"), digest_size=8, key=key).digest(), "little"
    )


def traveller_key(traveller_id: str, key: bytes = b"") -> int:
    """The keyed 64-bit digest of a traveller id that distinct-traveller counts use.

    Keyed BLAKE2b (``key`` up to 64 bytes; production passes a secret, the same in every
    worker and batch run, so digests cannot be looked up from known ids).

    >>> traveller_key("t-1") == traveller_key("t-1") != traveller_key("t-1", b"secret")
    True
    """
    return int.from_bytes(
        hashlib.blake2b(traveller_id.encode("utf-8"), digest_size=8, key=key).digest(), "little"
    )


@functools.lru_cache(maxsize=1 << 12)  # every event asks; a few dates are asked again and again
def iso_week_label(day: datetime.date) -> str:
    """ISO week label ``YYYY-Www`` of a (local, Asia/Tehran) calendar date.

    >>> iso_week_label(datetime.date(2026, 1, 1))
    '2026-W01'
    >>> iso_week_label(datetime.date(2027, 1, 1))
    '2026-W53'
    """
    y, w, _ = day.isocalendar()
    return f"{y:04d}-W{w:02d}"
