"""Every published vintage of every week's estimate, kept on disk and never rewritten.

Layout (one Parquet file per vintage, partitioned by ISO week)::

    DIR/
      week=2026-W07/
        vintage-20260223T000512.000000Z.parquet    # flash
        vintage-20260224T134000.250000Z.parquet    # revised
      week=2026-W08/
        ...

A vintage file holds the week's estimate rows exactly as the estimator produced them
(columns of ``suitcase estimate``), plus ``status`` (``flash`` or ``revised``) and
``vintage_time`` (UTC). Its Parquet key-value metadata holds, under ``suitcase.*``, the
week, status, vintage time, and ``sources_changed``: for each topic, how many events of
that week were accepted since the previous vintage (all events so far for a flash). Files
are created under a temporary name and linked into place, so a reader never sees half a
file and an existing vintage is never replaced. Names sort in time order.

The worker calls :func:`due_for_flash` to decide when a week's flash is due, then
:meth:`VintageStore.publish` with the rows whenever it has new numbers: the first call for
a week writes the flash; later calls write a ``revised`` vintage only when accepted events
of the week arrived since the last vintage (``sources_changed`` names them) AND a number
moved beyond :data:`TOLERANCE_USD` (or a count changed, or a cell appeared or vanished).
Numbers that move with no event of the week (the ratios borrow strength from the
neighbouring weeks, so a later week's inspections nudge a closed week) wait for the next
late event of the week: a vintage is always explained by the events that moved it.

Examples
--------
>>> due_for_flash("2026-W07", datetime.datetime(2026, 2, 22, 23, 59, tzinfo=TEHRAN))
False
>>> due_for_flash("2026-W07", datetime.datetime(2026, 2, 23, tzinfo=TEHRAN))
True
>>> due_for_flash("2026-W07", datetime.datetime(2026, 2, 16, tzinfo=TEHRAN), delay=datetime.timedelta(0))
True
"""

from __future__ import annotations

import datetime
import json
import os
import uuid
from pathlib import Path
from typing import NamedTuple
from zoneinfo import ZoneInfo

import polars as pl
import pyarrow.parquet as pq

from estimators.calendar import iso_week_monday, parse_iso_week

__all__ = [
    "TEHRAN",
    "DEFAULT_FLASH_DELAY",
    "DEFAULT_VINTAGES_DIR",
    "VINTAGES_ENV",
    "TOLERANCE_USD",
    "KEY_COLUMNS",
    "MONEY_COLUMNS",
    "Vintage",
    "VintageStore",
    "week_closes_at",
    "due_for_flash",
    "default_vintages_dir",
    "numbers_changed",
    "revision_rows",
]

TEHRAN = ZoneInfo("Asia/Tehran")
#: A week's flash is due this long after it closes (Sunday 24:00, Tehran), to let late
#: events in.
DEFAULT_FLASH_DELAY = datetime.timedelta(days=7)
#: Where the store lives when neither ``--vintages`` nor :data:`VINTAGES_ENV` says.
DEFAULT_VINTAGES_DIR = Path(".suitcase") / "vintages"  # under the workers' default --data-dir
#: Environment variable naming the vintage store directory.
VINTAGES_ENV = "SUITCASE_VINTAGES"
#: A money figure (US dollars) counts as changed only when it moved by more than this:
#: half a dollar, i.e. more than rounding to the whole dollars the exports show. Counts
#: (columns starting ``n_``) compare exactly.
TOLERANCE_USD = 0.5

#: Columns that identify a cell within a week.
KEY_COLUMNS: tuple[str, ...] = ("domain", "key")
#: Money columns compared with :data:`TOLERANCE_USD`.
MONEY_COLUMNS: tuple[str, ...] = (
    "estimate_usd", "ci_low_usd", "ci_high_usd", "std_error_usd", "formal_exports_usd",
)
_STATUSES = ("flash", "revised")
_META = "suitcase."


def default_vintages_dir(data_dir: Path | None = None) -> Path:
    """``$SUITCASE_VINTAGES`` if set, else ``vintages`` in the worker's data directory
    (``.suitcase/vintages`` for the default one)."""
    if os.environ.get(VINTAGES_ENV):
        return Path(os.environ[VINTAGES_ENV])
    return DEFAULT_VINTAGES_DIR if data_dir is None else Path(data_dir) / "vintages"


def week_closes_at(week: str) -> datetime.datetime:
    """The instant an ISO week ends: the next Monday 00:00 in Asia/Tehran (tz-aware).

    >>> week_closes_at("2026-W07").isoformat()
    '2026-02-16T00:00:00+03:30'
    """
    monday = iso_week_monday(week) + datetime.timedelta(days=7)
    return datetime.datetime.combine(monday, datetime.time(0), tzinfo=TEHRAN)


def due_for_flash(
    week: str, watermark: datetime.datetime, delay: datetime.timedelta = DEFAULT_FLASH_DELAY
) -> bool:
    """True once ``watermark`` has reached the week's close plus ``delay``.

    Pure: the worker passes its watermark (the event-time watermark, or the wall clock,
    as it chooses; tz-aware) and checks :meth:`VintageStore.has` itself, so a week whose
    flash is published is not published again as a flash.
    """
    if watermark.tzinfo is None:
        raise ValueError("watermark must be timezone-aware")
    return watermark >= week_closes_at(week) + delay


class Vintage(NamedTuple):
    """One published vintage of one week."""

    week: str
    vintage_time: datetime.datetime  # UTC
    status: str  # "flash" or "revised"
    sources_changed: dict[str, int]
    path: Path

    def rows(self) -> pl.DataFrame:
        """The vintage's rows (estimate columns, ``status``, ``vintage_time``)."""
        return pl.read_parquet(self.path)


def _utc(moment: datetime.datetime) -> datetime.datetime:
    if moment.tzinfo is None:
        raise ValueError("vintage_time must be timezone-aware")
    return moment.astimezone(datetime.timezone.utc)


def _stamp(moment: datetime.datetime) -> str:
    return moment.strftime("%Y%m%dT%H%M%S.%fZ")


def numbers_changed(
    old: pl.DataFrame, new: pl.DataFrame, tolerance_usd: float = TOLERANCE_USD
) -> bool:
    """True when ``new`` publishes different numbers from ``old`` beyond rounding.

    Different cells (``domain``, ``key``), a count that differs, a money figure that
    moved by more than ``tolerance_usd``, or a figure that appeared or became empty.
    """
    keys = [c for c in KEY_COLUMNS if c in new.columns and c in old.columns]
    if not keys:
        raise ValueError("rows need domain and key columns")
    compared = [
        c for c in new.columns
        if c in old.columns and c not in keys
        and (c in MONEY_COLUMNS or c.startswith("n_") or c.endswith("_usd"))
    ]
    if set(old.select(keys).rows()) != set(new.select(keys).rows()) or old.height != new.height:
        return True
    joined = old.select(keys + compared).join(
        new.select(keys + compared), on=keys, how="inner", suffix="__new", nulls_equal=True
    )
    for column in compared:
        a, b = joined[column], joined[column + "__new"]
        if a.dtype.is_float() or b.dtype.is_float():  # NaN (no interval) equals NaN
            a, b = a.cast(pl.Float64).fill_nan(None), b.cast(pl.Float64).fill_nan(None)
        if (a.is_null() != b.is_null()).any():
            return True
        both = a.is_not_null() & b.is_not_null()
        if column.startswith("n_") and not column.endswith("_usd"):
            if (a.filter(both) != b.filter(both)).any():
                return True
        else:
            diff = (a.filter(both).cast(pl.Float64) - b.filter(both).cast(pl.Float64)).abs()
            if (diff > tolerance_usd).any():
                return True
    return False


class VintageStore:
    """Append-only store of published vintages under one directory (see module docstring).

    Parameters
    ----------
    root
        Directory of the store; created on the first publish.
    tolerance_usd
        Money moves up to this many dollars are rounding, not revisions.
    """

    def __init__(self, root: Path | str, tolerance_usd: float = TOLERANCE_USD) -> None:
        self.root = Path(root)
        self.tolerance_usd = tolerance_usd
        self._flash: dict[str, pl.DataFrame] = {}  # a flash is never rewritten: cache it

    # -- writing -----------------------------------------------------------------------
    def publish(
        self,
        week: str,
        rows: pl.DataFrame,
        vintage_time: datetime.datetime,
        sources_changed: dict[str, int] | None = None,
    ) -> str | None:
        """Publish ``rows`` as the week's next vintage if they are new; return its status.

        Returns ``"flash"`` for the week's first vintage, ``"revised"`` for a later one
        whose numbers changed (see :func:`numbers_changed`) after events of the week
        arrived (a positive count in ``sources_changed``), and None otherwise (no file
        is written).

        ``sources_changed`` maps topic to the number of this week's events accepted since
        the previous *published* vintage: keep counting across calls that return None and
        reset the counts only when a status is returned, so every vintage says which late
        events moved it. ``vintage_time`` (tz-aware; the publication time, e.g. now in
        UTC) must be later than the latest vintage's when a new vintage is written.

        One publisher per week at a time (the worker that owns the week): two
        processes publishing the same week at once could both write a flash.
        """
        parse_iso_week(week)
        moment = _utc(vintage_time)
        if rows.height == 0:
            raise ValueError(f"no rows to publish for {week}")
        if "week" in rows.columns:
            weeks = set(rows["week"].unique().to_list())
            if weeks != {week}:
                raise ValueError(f"rows are for weeks {sorted(weeks)}, not {week}")
        else:
            rows = rows.with_columns(pl.lit(week).alias("week")).select(["week", *rows.columns])
        rows = rows.drop([c for c in ("status", "vintage_time") if c in rows.columns])
        previous = self.latest_vintage(week)
        if previous is None:
            status = "flash"
        else:
            if not any(int(n) > 0 for n in (sources_changed or {}).values()):
                return None  # no late event of the week: nothing explains a revision
            if not numbers_changed(previous.rows(), rows, self.tolerance_usd):
                return None  # also for a replay after a restart: nothing new to say
            if moment <= previous.vintage_time:
                raise ValueError(
                    f"vintage_time {moment.isoformat()} is not after the latest vintage of "
                    f"{week} ({previous.vintage_time.isoformat()})"
                )
            status = "revised"
        self._write(week, rows, moment, status, dict(sources_changed or {}))
        return status

    def _write(
        self, week: str, rows: pl.DataFrame, moment: datetime.datetime, status: str,
        sources: dict[str, int],
    ) -> Path:
        folder = self.root / f"week={week}"
        folder.mkdir(parents=True, exist_ok=True)
        final = folder / f"vintage-{_stamp(moment)}.parquet"
        table = rows.with_columns(
            pl.lit(status).alias("status"),
            pl.lit(moment).cast(pl.Datetime("us", "UTC")).alias("vintage_time"),
        ).to_arrow()
        metadata = {
            f"{_META}week": week,
            f"{_META}status": status,
            f"{_META}vintage_time": moment.isoformat(),
            f"{_META}sources_changed": json.dumps({str(k): int(v) for k, v in sorted(sources.items())}),
        }
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), **metadata})
        temporary = folder / f".tmp-{uuid.uuid4().hex}.parquet"
        try:
            pq.write_table(table, temporary)
            os.link(temporary, final)  # fails if the vintage exists: never overwritten
        except FileExistsError:
            raise FileExistsError(f"vintage {final} exists; vintages are never rewritten") from None
        finally:
            temporary.unlink(missing_ok=True)
        return final

    # -- reading -----------------------------------------------------------------------
    def weeks(self) -> list[str]:
        """Weeks with at least one vintage, ascending."""
        if not self.root.is_dir():
            return []
        return sorted(
            p.name.removeprefix("week=") for p in self.root.glob("week=*")
            if p.is_dir() and any(p.glob("vintage-*.parquet"))
        )

    def has(self, week: str) -> bool:
        """True when the week has a published vintage (its flash is out)."""
        return self.latest_vintage(week) is not None

    def history(self, week: str) -> list[Vintage]:
        """Every vintage of the week, oldest first."""
        parse_iso_week(week)
        folder = self.root / f"week={week}"
        if not folder.is_dir():
            return []
        return [self._describe(week, p) for p in sorted(folder.glob("vintage-*.parquet"))]

    def latest_vintage(self, week: str) -> Vintage | None:
        """The newest vintage of the week, or None."""
        parse_iso_week(week)
        folder = self.root / f"week={week}"
        files = sorted(folder.glob("vintage-*.parquet")) if folder.is_dir() else []
        return self._describe(week, files[-1]) if files else None

    def flash(self, week: str) -> pl.DataFrame | None:
        """The rows of the week's flash vintage (its first), or None before its flash."""
        if week not in self._flash:
            history = self.history(week)
            if not history:
                return None
            self._flash[week] = history[0].rows()
        return self._flash[week]

    def latest(self, week: str) -> pl.DataFrame | None:
        """The rows of the newest vintage of the week, or None when it has none."""
        vintage = self.latest_vintage(week)
        return None if vintage is None else vintage.rows()

    def latest_totals(self, up_to: str, weeks: int = 12) -> pl.DataFrame:
        """The ``total`` row of the newest vintage of each of the last ``weeks`` weeks up to ``up_to``."""
        chosen = [w for w in self.weeks() if w <= up_to][-weeks:]
        frames = []
        for week in chosen:
            rows = self.latest(week)
            if rows is not None:
                frames.append(rows.filter(pl.col("domain") == "total"))
        return pl.concat(frames, how="diagonal_relaxed") if frames else pl.DataFrame()

    @staticmethod
    def _describe(week: str, path: Path) -> Vintage:
        meta = {
            k.decode(): v.decode()
            for k, v in (pq.read_schema(path).metadata or {}).items()
            if k.startswith(_META.encode())
        }
        return Vintage(
            week=week,
            vintage_time=datetime.datetime.fromisoformat(meta[f"{_META}vintage_time"]),
            status=meta[f"{_META}status"],
            sources_changed=json.loads(meta.get(f"{_META}sources_changed", "{}")),
            path=path,
        )


def revision_rows(
    store: VintageStore, week: str, *, k: int | None = None, min_inspected: int | None = None
) -> list[dict]:
    """How the week's total moved, one dict per vintage, oldest first.

    Keys: ``vintage_time`` (ISO, UTC), ``status``, ``estimate_usd``, ``ci_low_usd``,
    ``ci_high_usd``, ``change_usd`` (against the previous vintage; None for the first),
    ``suppressed`` and ``sources_changed`` (accepted events per topic since the previous
    vintage). The total is suppressed by the disclosure rule like any cell (defaults of
    :mod:`estimators.disclosure` unless given).
    """
    from estimators.disclosure import DEFAULT_K, DEFAULT_MIN_INSPECTED, suppress

    out: list[dict] = []
    previous: float | None = None
    for vintage in store.history(week):
        total = vintage.rows().filter(pl.col("domain") == "total")
        total = suppress(
            total, k=DEFAULT_K if k is None else k,
            min_inspected=DEFAULT_MIN_INSPECTED if min_inspected is None else min_inspected,
            complementary=False,
        )
        row = total.row(0, named=True) if total.height else {}
        value = row.get("estimate_usd")
        out.append({
            "vintage_time": vintage.vintage_time.isoformat().replace("+00:00", "Z"),
            "status": vintage.status,
            "estimate_usd": value,
            "ci_low_usd": row.get("ci_low_usd"),
            "ci_high_usd": row.get("ci_high_usd"),
            "change_usd": None if value is None or previous is None else value - previous,
            "suppressed": row.get("suppressed"),
            "sources_changed": vintage.sources_changed,
        })
        previous = value if value is not None else previous
    return out
