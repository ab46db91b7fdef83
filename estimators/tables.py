"""All the states of a run, keyed like the stream processor's tables, in one mergeable object.

:class:`Tables` routes any observation to its state: stratum states by
:class:`~estimators.observations.Stratum`, formal exports and card payments by ISO week.
It is what the batch estimate builds over an archive and what tests compare: two
``Tables`` fed the same set of observations, in any order and any split, are equal.

>>> from estimators.observations import Stratum, DepartureSeen, PaymentSeen
>>> t = Tables()
>>> t.update(DepartureSeen(Stratum("2026-W07", "IKA", "visitor"), "gulf"))
>>> t.update(PaymentSeen("2026-W07", "tourist", True, 5_000))
>>> t
Tables(strata=1, formal_weeks=0, payment_weeks=1)
"""

from __future__ import annotations

import copy

from estimators.observations import (
    DeclarationSeen,
    DepartureSeen,
    FormalExportSeen,
    InspectionSeen,
    PaymentSeen,
    Stratum,
)
from estimators.state import FormalExports, StratumState, WeekPayments

__all__ = ["Tables"]


class Tables:
    """Stratum, formal-export and payment states, merged by key."""

    __slots__ = ("strata", "formal", "payments")

    def __init__(self) -> None:
        self.strata: dict[Stratum, StratumState] = {}
        self.formal: dict[str, FormalExports] = {}
        self.payments: dict[str, WeekPayments] = {}

    def update(self, obs) -> None:
        """Route one observation to the state it belongs to."""
        if isinstance(obs, (DepartureSeen, DeclarationSeen, InspectionSeen)):
            key = Stratum(*obs.stratum)
            st = self.strata.get(key)
            if st is None:
                st = self.strata[key] = StratumState()
            st.update(obs)
        elif isinstance(obs, FormalExportSeen):
            self.formal.setdefault(obs.week, FormalExports()).update(obs)
        elif isinstance(obs, PaymentSeen):
            self.payments.setdefault(obs.week, WeekPayments()).update(obs)
        else:
            raise TypeError(f"not an observation: {type(obs).__name__}")

    def update_many(self, observations) -> None:
        """Route many observations, each stratum's in bulk (:meth:`StratumState.update_many`):
        the same tables as one :meth:`update` each (on an error, the states other than the
        failing one may hold a different part of the batch)."""
        by_stratum: dict[Stratum, list] = {}
        for obs in observations:
            if isinstance(obs, (DepartureSeen, DeclarationSeen, InspectionSeen)):
                by_stratum.setdefault(obs.stratum, []).append(obs)
            else:
                self.update(obs)
        for key, batch in by_stratum.items():
            key = Stratum(*key)
            st = self.strata.get(key)
            if st is None:
                st = self.strata[key] = StratumState()
            st.update_many(batch)

    def __iadd__(self, other: Tables) -> Tables:
        if not isinstance(other, Tables):
            return NotImplemented
        for mine, theirs in (
            (self.strata, other.strata),
            (self.formal, other.formal),
            (self.payments, other.payments),
        ):
            for k, v in theirs.items():
                if k in mine:
                    mine[k] += v
                else:
                    mine[k] = copy.deepcopy(v)
        return self

    def __add__(self, other: Tables) -> Tables:
        if not isinstance(other, Tables):
            return NotImplemented
        out = copy.deepcopy(self)
        out += other
        return out

    def __eq__(self, other) -> bool:
        if not isinstance(other, Tables):
            return NotImplemented
        return (
            self.strata == other.strata
            and self.formal == other.formal
            and self.payments == other.payments
        )

    __hash__ = None

    def __getstate__(self):
        return (self.strata, self.formal, self.payments)

    def __setstate__(self, state) -> None:
        self.strata, self.formal, self.payments = state

    def collapsed(self) -> Tables:
        """These tables with post-strata merged into their groups (``"visitor|5+"`` ->
        ``"visitor"``): a traveller-strata run collapsed equals the default run's tables."""
        out = Tables()
        for k, v in self.strata.items():
            key = Stratum(k.week, k.border_post, k.group.split("|", 1)[0])
            if key in out.strata:
                out.strata[key] += v
            else:
                out.strata[key] = copy.deepcopy(v)
        out.formal = copy.deepcopy(self.formal)
        out.payments = copy.deepcopy(self.payments)
        return out

    def estimate(self, **kwargs):
        """:func:`estimators.estimate_weeks` over these tables."""
        from estimators.estimate import estimate_weeks

        return estimate_weeks(self.strata, self.formal, self.payments, **kwargs)

    def textbook(self, **kwargs):
        """:func:`estimators.textbook_weeks` over these tables (the baseline of the default
        strata: frequency post-strata are collapsed first)."""
        from estimators.estimate import textbook_weeks

        if any("|" in s.group for s in self.strata):
            return self.collapsed().textbook(**kwargs)
        return textbook_weeks(self.strata, self.formal, self.payments, **kwargs)

    def __repr__(self) -> str:
        return (
            f"Tables(strata={len(self.strata)}, formal_weeks={len(self.formal)}, "
            f"payment_weeks={len(self.payments)})"
        )
