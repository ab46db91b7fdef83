"""Schema'd MessagePack encoding of the estimators' observations (msgspec), and their check.

The live path carries each processing step's observations inside its changelog record
(see :mod:`streams.pipeline.encoding`); this module says how they look on the wire. The public
observation classes (:mod:`estimators.observations`) are NamedTuples, which msgspec
encodes as arrays and decodes with type validation, so the wire shape *is* the class:

- :class:`Observations` holds one list per kind (the states' sums do not depend on the
  order of updates, so grouping by kind loses nothing);
- :func:`invalid` says why a decoded observation would make a state refuse it (an
  unknown region, a category tuple of the wrong length, a negative or absurd amount, a
  probability outside (0, 1]), so a reader can refuse a whole record *before* adding
  any of it: a record is applied completely or not at all.

No pickle: decoding builds only these types, never runs code.

>>> from estimators.observations import Stratum, DepartureSeen
>>> o = Observations.of([DepartureSeen(Stratum("2026-W07", "IKA", "visitor"), "gulf")])
>>> decoded = msgspec.msgpack.decode(msgspec.msgpack.encode(o), type=Observations)
>>> list(decoded) == list(o)
True
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

import msgspec

from estimators.observations import (
    DeclarationSeen,
    DepartureSeen,
    FormalExportSeen,
    InspectionSeen,
    PaymentSeen,
)
from estimators.state import CARD_TYPES, POST_INDEX, REGION_INDEX, C

__all__ = ["Observations", "invalid"]

#: Largest absolute amount (US cents) an observation may carry on an internal topic:
#: far above any real crossing, far below int64 overflow of a week's sums.
MAX_CENTS = 10**15
_WEEK = re.compile(r"\A\d{4}-W\d{2}\Z")


class Observations(msgspec.Struct, array_like=True, forbid_unknown_fields=True):
    """The observations a step released, one list per kind."""

    departures: list[DepartureSeen] = []
    declarations: list[DeclarationSeen] = []
    inspections: list[InspectionSeen] = []
    formal: list[FormalExportSeen] = []
    payments: list[PaymentSeen] = []

    @classmethod
    def of(cls, observations: Iterable) -> "Observations":
        out = cls([], [], [], [], [])
        lists = {
            DepartureSeen: out.departures, DeclarationSeen: out.declarations,
            InspectionSeen: out.inspections, FormalExportSeen: out.formal, PaymentSeen: out.payments,
        }
        for o in observations:
            lists[type(o)].append(o)
        return out

    def __iter__(self) -> Iterator:
        yield from self.departures
        yield from self.declarations
        yield from self.inspections
        yield from self.formal
        yield from self.payments

    def __len__(self) -> int:
        return (len(self.departures) + len(self.declarations) + len(self.inspections)
                + len(self.formal) + len(self.payments))

    def split(self, parts: int) -> list["Observations"]:
        """``parts`` pieces whose union is this (for records below Kafka's size limit)."""
        return [
            Observations(self.departures[k::parts], self.declarations[k::parts],
                         self.inspections[k::parts], self.formal[k::parts], self.payments[k::parts])
            for k in range(parts)
        ]


def _cents_bad(values, signed: bool = False) -> bool:
    if len(values) != C:
        return True
    return any((v < 0 and not signed) or abs(v) > MAX_CENTS for v in values)


def _stratum_bad(s) -> bool:
    return not _WEEK.match(s.week) or s.border_post not in POST_INDEX or s.group not in ("resident", "visitor")


def invalid(obs) -> str | None:
    """Why a state would refuse this observation (None: it takes it)."""
    kind = type(obs)
    if kind is DepartureSeen:
        bad = _stratum_bad(obs.stratum) or obs.region not in REGION_INDEX
    elif kind is DeclarationSeen:
        bad = (_stratum_bad(obs.stratum) or obs.region not in REGION_INDEX
               or _cents_bad(obs.declared_cents) or not 0 <= obs.traveller_key < 2**64)
    elif kind is InspectionSeen:
        p = obs.selection_probability
        bad = (_stratum_bad(obs.stratum) or obs.region not in REGION_INDEX
               or _cents_bad(obs.assessed_cents) or _cents_bad(obs.declared_cents)
               or not 0 <= obs.unit_key < 2**64 or not 0 <= obs.traveller_key < 2**64
               or (obs.random and (p is None or not 1e-6 <= p <= 1.0)))
    elif kind is FormalExportSeen:
        bad = (not _WEEK.match(obs.week) or obs.border_post not in POST_INDEX
               or obs.region not in REGION_INDEX or _cents_bad(obs.cents_by_category))
    elif kind is PaymentSeen:
        bad = (not _WEEK.match(obs.week) or obs.card_type not in CARD_TYPES
               or abs(obs.amount_cents) > MAX_CENTS)
    else:
        return "not_an_observation"
    return f"bad_{kind.__name__}" if bad else None
