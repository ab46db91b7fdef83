"""Design-based estimators of suitcase handicraft exports, from mergeable state.

Pure statistics, no Kafka: :mod:`estimators.observations` (the input types),
:mod:`estimators.state` (mergeable per-stratum sums), :mod:`estimators.estimate`
(weekly estimates by domain with intervals, and period totals), :mod:`estimators.nowcast`
(the whole current week from its data so far and a state-space model of past weeks).
"""

from estimators.estimate import COLUMNS, LEVELS, estimate_period, estimate_weeks, textbook_weeks
from estimators.nowcast import NOWCAST_COLUMNS, nowcast_week
from estimators.observations import (
    GROUPS,
    DeclarationSeen,
    DepartureSeen,
    FormalExportSeen,
    InspectionSeen,
    PaymentSeen,
    Stratum,
    unit_key,
)
from estimators.state import (
    CensusState,
    FormalExports,
    SampleState,
    StratumState,
    WeekPayments,
)
from estimators.tables import Tables

__all__ = [
    "COLUMNS",
    "LEVELS",
    "GROUPS",
    "Stratum",
    "DepartureSeen",
    "DeclarationSeen",
    "InspectionSeen",
    "PaymentSeen",
    "FormalExportSeen",
    "unit_key",
    "CensusState",
    "SampleState",
    "StratumState",
    "FormalExports",
    "WeekPayments",
    "Tables",
    "estimate_weeks",
    "estimate_period",
    "textbook_weeks",
    "NOWCAST_COLUMNS",
    "nowcast_week",
]
