"""The batch estimate over an archive: the same states and estimator as the live path.

:func:`estimate_archive` reads an archive directory (``<topic>.ndjson`` files) through
:func:`streams.archive.observe` (validation, dedup by ``event_id``, FX conversion and the
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


def build_tables(events_dir: Path) -> tuple[Tables, object]:
    """(states, archive report) of an archive directory."""
    from streams.archive import observe

    tables = Tables()
    report = observe(Path(events_dir), tables.update)
    return tables, report


def estimate_archive(events_dir: Path, **options) -> pl.DataFrame:
    """Weekly estimates by domain of an archive, with 95% intervals.

    Columns: week, domain, key, estimate_usd, ci_low_usd, ci_high_usd, std_error_usd,
    formal_exports_usd, n_departures, n_inspected, then the extras documented in
    :data:`estimators.COLUMNS`. ``options`` go to :func:`estimators.estimate_weeks`
    (``alpha``, ``window``, ...).
    """
    tables, _ = build_tables(events_dir)
    return tables.estimate(**options)
