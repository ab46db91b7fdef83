"""Commands over published estimates: export a week's files, show a week's revisions."""

from __future__ import annotations

import datetime as dt
import json
import sys
from contextlib import contextmanager
from pathlib import Path

import typer

from estimators.disclosure import DEFAULT_K, DEFAULT_MIN_INSPECTED
from streams.commands import BOUND_HELP, CliError, app, apply_bounds, why, writing

_VINTAGES_HELP = "Vintage store directory (default: $SUITCASE_VINTAGES, else .suitcase/vintages, where suitcase up and worker keep them)."


def _week(value: str) -> str:
    from estimators.calendar import parse_iso_week

    try:
        parse_iso_week(value)
    except ValueError as err:
        raise CliError(f"--week: {err}") from None
    return value


def _store(vintages: Path | None):
    from streams.publish.vintages import VintageStore, default_vintages_dir

    root = vintages or default_vintages_dir()
    try:
        if root.exists() and not root.is_dir():
            raise CliError(f"{root} is not a directory")
    except OSError as err:
        raise CliError(f"--vintages {root}: {why(err)}") from None
    return VintageStore(root)


@contextmanager
def _reading_store(root: Path):
    """Turn a vintage store that cannot be read (a corrupt Parquet file, an unreadable
    directory) into a one-line :class:`CliError`; export errors pass through."""
    import polars as pl
    import pyarrow as pa

    from streams.publish import exports

    try:
        yield
    except exports.ExportError:
        raise
    except (OSError, ValueError, pa.ArrowException, pl.exceptions.PolarsError) as err:
        detail = why(err) if isinstance(err, OSError) else (str(err).splitlines() or [type(err).__name__])[0]
        raise CliError(f"cannot read the vintage store {root}: {detail}") from None


def _write(table, out: Path, fmt: str, history, notes) -> None:
    """Write the file in a temporary directory, then copy it to ``out``: a write that fails
    (``/dev/full``) fails in one place, as one line, and leaves no half-written workbook
    whose clean-up fails again."""
    import shutil
    import tempfile

    from streams.publish import exports

    with writing(out):
        out.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="suitcase-export-") as tmp:
            staged = Path(tmp) / "export"
            exports.write_export(table, staged, fmt, history=history, notes=notes)
            shutil.copyfile(staged, out)


@app.command()
def export(
    week: str = typer.Option(..., "--week", help="ISO week to export, YYYY-Www (e.g. 2026-W07)."),
    out: Path = typer.Option(..., "--out", help="File to write."),
    fmt: str | None = typer.Option(
        None, "--format",
        help="csv, parquet, xlsx or sdmx-csv; default from --out (.csv, .parquet, .xlsx, .sdmx.csv).",
    ),
    vintages: Path | None = typer.Option(None, "--vintages", help=_VINTAGES_HELP),
    events: Path | None = typer.Option(
        None, "--events", help="Archive of <topic>.ndjson files: export its batch estimate instead (backfills).",
    ),
    k: int = typer.Option(DEFAULT_K, "--k", min=1, help="Suppress cells with fewer distinct travellers than this."),
    min_inspected: int = typer.Option(
        DEFAULT_MIN_INSPECTED, "--min-inspected", min=0,
        help="Suppress cells with fewer randomly inspected travellers than this.",
    ),
    history_weeks: int = typer.Option(12, "--history-weeks", min=1, help="Weeks in the Excel trend chart."),
    vintage_time: str | None = typer.Option(
        None, "--vintage-time", help="With --events: the vintage time to stamp (RFC 3339; default now).",
    ),
    bound: list[str] = typer.Option(None, "--bound", help="With --events: " + BOUND_HELP),
) -> None:
    """Write one week's estimates (newest vintage, small cells suppressed) as a file economists open."""
    from streams.publish import exports

    week = _week(week)
    apply_bounds(bound)
    if fmt is None:
        try:
            fmt = exports.infer_format(out)
        except exports.ExportError as err:
            raise CliError(str(err)) from None
    elif fmt not in exports.FORMATS:
        raise CliError(f"unknown --format {fmt!r}; use one of {', '.join(exports.FORMATS)}")
    if events is not None and vintages is not None:
        raise CliError("give --vintages or --events, not both")
    if vintage_time is not None and events is None:
        raise CliError("--vintage-time only applies with --events (vintages carry their own time)")
    with writing(out):
        if out.is_dir():
            raise CliError(f"--out {out} is a directory")
    try:
        if events is not None:
            from streams.pipeline.archive import ArchiveError

            moment = None
            if vintage_time is not None:
                try:
                    moment = dt.datetime.fromisoformat(vintage_time)
                except ValueError:
                    raise CliError(f"--vintage-time {vintage_time!r} is not an RFC 3339 time") from None
                if moment.tzinfo is None:
                    raise CliError("--vintage-time needs an offset, e.g. 2026-02-23T10:00:00+00:00")
            try:
                table, history = exports.from_archive(
                    events, week, vintage_time=moment, k=k, min_inspected=min_inspected,
                    history_weeks=history_weeks,
                )
            except ArchiveError as err:
                raise CliError(str(err)) from None
            notes = exports._notes("archive", events, k, min_inspected)
        else:
            store = _store(vintages)
            with _reading_store(store.root):
                table, history = exports.from_store(
                    store, week, k=k, min_inspected=min_inspected, history_weeks=history_weeks
                )
            notes = exports._notes("vintage store", store.root, k, min_inspected)
        _write(table, out, fmt, history, notes)
    except exports.ExportError as err:
        raise CliError(str(err)) from None
    suppressed = table["suppressed"].is_not_null().sum()
    typer.echo(
        f"wrote {out} ({fmt}): {table.height} rows of {week}, {table['status'][0]}, "
        f"{suppressed} suppressed"
    )


@app.command()
def revisions(
    week: str = typer.Option(..., "--week", help="ISO week, YYYY-Www."),
    vintages: Path | None = typer.Option(None, "--vintages", help=_VINTAGES_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of a table."),
) -> None:
    """How a week's total moved from vintage to vintage, and which sources' late events moved it."""
    from streams.publish.vintages import revision_rows

    week = _week(week)
    store = _store(vintages)
    with _reading_store(store.root):
        rows = revision_rows(store, week)
    if not rows:
        raise CliError(f"no published vintage for week {week} in {store.root}")
    if as_json:
        json.dump({"week": week, "vintages": rows}, sys.stdout, default=str)
        sys.stdout.write("\n")
        return
    from streams.publish.exports import describe_sources

    def usd(value: float | None, signed: bool = False) -> str:
        if value is None:
            return "-"
        return f"{value:+,.0f}" if signed else f"{value:,.0f}"

    lines = [("vintage_time (UTC)", "status", "total_usd", "change_usd", "95% interval", "moved by (accepted events since the previous vintage)")]
    for row in rows:
        interval = "-" if row["ci_low_usd"] is None else f"{usd(row['ci_low_usd'])} to {usd(row['ci_high_usd'])}"
        total = usd(row["estimate_usd"]) if row["suppressed"] is None else f"suppressed ({row['suppressed']})"
        lines.append((
            row["vintage_time"], row["status"], total, usd(row["change_usd"], signed=True), interval,
            describe_sources(row["sources_changed"]),
        ))
    widths = [max(len(line[j]) for line in lines) for j in range(5)]
    typer.echo(f"Vintages of {week}: total informal handicraft exports, US dollars")
    for line in lines:
        cells = [line[0].ljust(widths[0]), line[1].ljust(widths[1])]
        cells += [line[j].rjust(widths[j]) for j in (2, 3, 4)]
        typer.echo("  ".join([*cells, line[5]]))
