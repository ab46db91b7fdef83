"""Commands over archives: validate, simulate, estimate."""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path

import typer

from streams.commands import BOUND_HELP, CliError, account, app, apply_bounds, why, writing


@app.command()
def validate(
    events: Path = typer.Option(..., "--events", help="Archive directory of <topic>.ndjson files."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of a table."),
    bound: list[str] = typer.Option(None, "--bound", help=BOUND_HELP),
) -> None:
    """Count accepted, duplicate and rejected lines per topic of an archive, by reason."""
    from streams.pipeline.archive import ArchiveError
    from streams.pipeline.archive import validate as validate_archive

    apply_bounds(bound)
    try:
        tallies = validate_archive(events)
    except ArchiveError as err:
        raise CliError(str(err)) from err
    if as_json:
        json.dump({t: tally.as_dict() for t, tally in tallies.items()}, sys.stdout)
        sys.stdout.write("\n")
    else:
        from rich.console import Console
        from rich.table import Table

        table = Table("topic", "accepted", "duplicates", "rejected", "reasons")
        for topic, tally in tallies.items():
            reasons = ", ".join(f"{r} {n:,}" for r, n in tally.rejected.most_common())
            table.add_row(
                topic, f"{tally.accepted:,}", f"{tally.duplicates:,}",
                f"{sum(tally.rejected.values()):,}", reasons or "-",
            )
        Console().print(table)
    sys.stdout.flush()
    typer.echo(f"suitcase validate: {account(tallies)}", err=True)


def _iso_date(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a date of the form YYYY-MM-DD") from None


def _plausible_window(first_day: dt.date, weeks: int) -> None:
    """Refuse a simulated window whose events ``decode`` would refuse as implausible."""
    import time
    from zoneinfo import ZoneInfo

    from streams.pipeline.contract import BOUNDS

    tehran = ZoneInfo("Asia/Tehran")
    try:
        last_day = first_day + dt.timedelta(days=7 * weeks)
        first = dt.datetime.combine(first_day, dt.time(0), tzinfo=tehran)
        end = dt.datetime.combine(last_day, dt.time(0), tzinfo=tehran)
        first.astimezone(dt.timezone.utc), end.astimezone(dt.timezone.utc)
    except (OverflowError, ValueError):
        raise CliError(f"--start {first_day} with --weeks {weeks} runs past the year 9999") from None
    latest = time.time() + BOUNDS.max_future_days * 86_400
    if first < BOUNDS.earliest_event_time or end.timestamp() > latest:
        raise CliError(
            f"simulated days {first_day} to {last_day} would be implausible events (before "
            f"{BOUNDS.earliest_event_time.date()} or more than {BOUNDS.max_future_days:g} days "
            "after today); move --start or widen with --bound earliest_event_time=... / max_future_days=..."
        )


@app.command()
def simulate(
    out: Path = typer.Option(..., "--out", help="Directory to write the archive and truth.parquet into."),
    seed: int = typer.Option(1, "--seed", min=0, max=2**63 - 1, help="Seed of the simulated world; the same seed gives the same bytes."),
    start: str = typer.Option("2026-03-02", "--start", help="First simulated day (Tehran), YYYY-MM-DD."),
    weeks: int = typer.Option(12, "--weeks", min=1, max=520, help="Number of weeks to simulate."),
    scale: float = typer.Option(1.0, "--scale", min=0.0001, max=10.0, help="1 = Iran's real traffic (~12M departures a year)."),
    faults: bool = typer.Option(False, "--faults", help="Add duplicates, late and out-of-order events and malformed lines."),
    bound: list[str] = typer.Option(None, "--bound", help=BOUND_HELP + " The simulated days must lie within them."),
) -> None:
    """Write a simulated border archive (six <topic>.ndjson files) and its true informal exports."""
    first_day = _iso_date(start)
    apply_bounds(bound)
    _plausible_window(first_day, weeks)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from streams.simulation.simulator import WorldConfig
    from streams.simulation.simulator import simulate as run

    try:
        config = WorldConfig(seed=seed, start=first_day, weeks=weeks, scale=scale, faults=faults)
    except ValueError as err:
        raise CliError(str(err)) from None
    try:
        if out.exists() and not out.is_dir():
            raise CliError(f"--out {out} exists and is not a directory")
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise CliError(f"cannot make the directory --out {out}: {why(err)}") from None
    with writing(out), Progress(
        TextColumn("simulating days"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        transient=True, disable=not sys.stdout.isatty(),  # else it leaves a blank line behind
    ) as bar:
        task = bar.add_task("days", total=weeks * 7)
        summary = run(out, config, progress=lambda done, total: bar.update(task, completed=done, total=total))
    n_lines, n_events = sum(summary.lines.values()), sum(summary.events.values())
    extras = (
        f", with {summary.duplicates:,} duplicate, {summary.late:,} late and "
        f"{summary.malformed:,} malformed lines" if faults else ""
    )
    typer.echo(
        f"Wrote {summary.days} simulated days from {first_day} to {out}: {n_events:,} events in "
        f"{n_lines:,} lines over {len(summary.lines)} topic files{extras}, and truth.parquet. "
        f"True informal handicraft exports: ${summary.truth_total_usd:,.0f} "
        f"(formal handicraft exports beside them: ${summary.formal_handicraft_usd:,.0f})."
    )


@app.command()
def estimate(
    events: Path = typer.Option(..., "--events", help="Archive directory of <topic>.ndjson files."),
    out: Path = typer.Option(..., "--out", help="Output file, .parquet or .csv."),
    bound: list[str] = typer.Option(None, "--bound", help=BOUND_HELP),
    period: bool = typer.Option(
        False, "--period", help="Also one row per cell for the whole period (week 'first..last')."
    ),
    traveller_strata: bool = typer.Option(
        False, "--traveller-strata",
        help="Post-stratify by trip frequency (1, 2-4, 5+ trips in 90 days, from the archive's"
        " traveller ids), so repeat traders' loads are learnt from their own class. Off by default:"
        " the live worker has no traveller lane yet, and live equals batch exactly only without it.",
    ),
    traveller_window: str = typer.Option(
        "past", "--traveller-window",
        help="Trip-count window of --traveller-strata: 'past' = the 90 days up to the departure;"
        " 'centred' = also the 90 days after it (batch only: later trips in the archive count).",
    ),
) -> None:
    """Estimate every week of an archive (the batch path) and write one row per week and cell."""
    from streams.pipeline.archive import ArchiveError

    if out.suffix not in (".parquet", ".csv"):
        raise CliError(f"--out must end in .parquet or .csv, not {out.name!r}")
    if traveller_window not in ("past", "centred"):
        raise CliError(f"--traveller-window must be 'past' or 'centred', not {traveller_window!r}")
    if traveller_window != "past" and not traveller_strata:
        raise CliError("--traveller-window needs --traveller-strata")
    apply_bounds(bound)
    from streams.pipeline.batch import build_tables

    try:
        tables, report = build_tables(events, traveller_strata=traveller_strata, traveller_window=traveller_window)
    except ArchiveError as err:
        raise CliError(str(err)) from err
    if not any(t.accepted for t in report.tallies.values()):
        raise CliError(f"no valid event in {events}: {account(report.tallies)}")
    table = tables.estimate()
    if table.is_empty():
        raise CliError(f"nothing to estimate in {events}: no valid departure ({account(report.tallies)})")
    if period:
        import polars as pl

        table = pl.concat([table, tables.estimate(period=True)])
    with writing(out):
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.suffix == ".parquet":
            table.write_parquet(out)
        else:
            table.write_csv(out)
    typer.echo(f"wrote {len(table):,} rows to {out}")
    typer.echo(f"suitcase estimate: {account(report.tallies, report.unpriced)}", err=True)
