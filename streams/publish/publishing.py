"""From live estimates to published vintages and the weekly files economists pick up.

The worker that estimates (the leader) hands every new estimate table to a
:class:`VintagePublisher`. A week gets its flash vintage once the event clock has passed
its close plus the flash delay (default 7 days), and a revised vintage whenever late
events move its numbers beyond rounding (the store decides, see
:func:`streams.publish.vintages.numbers_changed`). With the flash, the week's files are written
into the exports directory, so nobody has to run ``suitcase export`` by hand.

Which sources moved a vintage is read from the week's own counts: the census of
departures, declarations and inspections in the week's total row, compared with the last
published vintage. (Payments and formal exports have no per-week count in the estimate
table; a change of formal exports shows as ``customs.exports: 1``.)
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import Final

import polars as pl

from streams.pipeline.contract import DECLARATIONS, DEPARTURES, EXPORTS, INSPECTIONS
from streams.publish.vintages import DEFAULT_FLASH_DELAY, VintageStore, due_for_flash

log = logging.getLogger(__name__)

#: Total-row columns whose growth counts each source's new events of the week.
_SOURCE_COUNTS: Final = {
    DEPARTURES: ("n_departures",),
    DECLARATIONS: ("n_declarations",),
    INSPECTIONS: ("n_inspected", "n_targeted"),
}


class VintagePublisher:
    """Publishes the flash and revised vintages of closed weeks, and the weekly exports."""

    def __init__(
        self,
        store: VintageStore,
        exports_dir: Path | None = None,
        delay: dt.timedelta = DEFAULT_FLASH_DELAY,
        formats: tuple[str, ...] | None = None,
    ) -> None:
        self.store = store
        self.exports_dir = exports_dir
        self.delay = delay
        self.formats = formats
        self._offered: dict[str, pl.DataFrame] = {}  # week -> rows last offered to the store

    def consider(self, table: pl.DataFrame, watermark: dt.datetime) -> dict[str, str]:
        """Offer every due week of ``table`` to the store; returns week -> status written."""
        written: dict[str, str] = {}
        if table.height == 0:
            return written
        for week in sorted(table["week"].unique().to_list()):
            if not due_for_flash(week, watermark, self.delay):
                continue
            rows = table.filter(pl.col("week") == week)
            if week in self._offered and self._offered[week].equals(rows):
                continue  # the store already saw exactly these numbers
            status = self.store.publish(
                week, rows, dt.datetime.now(dt.timezone.utc), self._sources_changed(week, rows)
            )
            self._offered[week] = rows
            if status is None:
                continue
            written[week] = status
            log.info("published %s vintage of %s", status, week)
            if status == "flash" and self.exports_dir is not None:
                self._export(week)
        return written

    def _sources_changed(self, week: str, rows: pl.DataFrame) -> dict[str, int]:
        previous = self.store.latest(week)
        now = _total_row(rows)
        before = _total_row(previous) if previous is not None else {}
        changed = {}
        for topic, columns in _SOURCE_COUNTS.items():
            delta = sum(int(now.get(c) or 0) - int(before.get(c) or 0) for c in columns)
            if delta:
                changed[topic] = delta
        if before and now.get("formal_exports_usd") != before.get("formal_exports_usd"):
            changed[EXPORTS] = 1
        return changed

    def _export(self, week: str) -> None:
        from streams.publish.exports import DEFAULT_WEEKLY_FORMATS, write_weekly_exports

        try:
            write_weekly_exports(self.store, week, self.exports_dir, self.formats or DEFAULT_WEEKLY_FORMATS)
        except Exception:  # a failed file must not stop the worker; the vintage is kept
            log.exception("weekly export of %s failed", week)


def _total_row(rows: pl.DataFrame) -> dict:
    total = rows.filter((pl.col("domain") == "total") & (pl.col("key") == "all"))
    return total.row(0, named=True) if total.height else {}
