"""The batch estimate over an archive: the same states and estimator as the live path.

:func:`estimate_archive` reads an archive directory (``<topic>.ndjson`` files) through
:func:`streams.pipeline.archive.observe` (validation, dedup by ``event_id``, FX conversion and the
crossing join, exactly as live), feeds every observation into
:class:`estimators.Tables`, and returns :func:`estimators.estimate_weeks` of the result.
Because states are exact integer sums, the batch table equals the live one (fed the same
events in any order or partitioning) to the last digit.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from estimators import Tables

__all__ = ["build_tables", "estimate_archive"]

#: Observations gathered before they reach the states in bulk (``Tables.update_many``).
_BULK = 100_000


def build_tables(events_dir: Path, *, workers: int | None = None,
                 traveller_strata: bool = False, traveller_window: str = "past") -> tuple[Tables, object]:
    """(states, archive report) of an archive directory.

    ``traveller_strata``: post-stratify by trip frequency (groups ``"visitor|5+"`` ...;
    :func:`streams.pipeline.archive.observe`). Off by default (the live path has no
    traveller lane); ``Tables.collapsed()`` of the result equals the default tables.

    Departures and payments reach the states in bulk (counts and sums
    per state cell, :meth:`CensusState.add_departures`, :meth:`WeekPayments.add_payments`),
    the same as as many single updates; everything else in batches through
    ``Tables.update_many`` (the same as one ``Tables.update`` each).
    """
    from estimators.state import StratumState, WeekPayments
    from streams.pipeline.archive import observe

    tables = Tables()

    def departures(stratum, region: str, day: int, count: int) -> None:
        state = tables.strata.get(stratum)
        if state is None:
            state = tables.strata[stratum] = StratumState()
        state.census.add_departures(region, count, day)

    def payments(week: str, card_type: str, handicraft: bool, count: int, cents: int) -> None:
        state = tables.payments.get(week)
        if state is None:
            state = tables.payments[week] = WeekPayments()
        state.add_payments(card_type, handicraft, count, cents)

    pending: list = []

    def sink(observation) -> None:
        pending.append(observation)
        if len(pending) >= _BULK:
            tables.update_many(pending)
            pending.clear()

    report = observe(
        Path(events_dir), sink, departures=departures, payments=payments, workers=workers,
        traveller_strata=traveller_strata, traveller_window=traveller_window,
    )
    tables.update_many(pending)
    return tables, report


def estimate_archive(events_dir: Path, *, traveller_strata: bool = False, **options) -> pl.DataFrame:
    """Weekly estimates by domain of an archive, with 95% intervals.

    Columns: week, domain, key, estimate_usd, ci_low_usd, ci_high_usd, std_error_usd,
    formal_exports_usd, n_departures, n_inspected, then the extras documented in
    :data:`estimators.COLUMNS`. ``options`` go to :func:`estimators.estimate_weeks`
    (``alpha``, ``window``, ...); ``traveller_strata`` to :func:`build_tables`.
    """
    tables, _ = build_tables(events_dir, traveller_strata=traveller_strata)
    return tables.estimate(**options)
