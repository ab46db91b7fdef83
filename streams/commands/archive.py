"""Commands over archives: validate, simulate, estimate."""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path

import typer

from streams.commands import CliError, app


@app.command()
def validate(
    events: Path = typer.Option(..., "--events", help="Archive directory of <topic>.ndjson files."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of a table."),
) -> None:
    """Count accepted, duplicate and rejected lines per topic of an archive, by reason."""
    from streams.archive import ArchiveError
    from streams.archive import validate as validate_archive

    try:
        tallies = validate_archive(events)
    except ArchiveError as err:
        raise CliError(str(err)) from err
    if as_json:
        json.dump({t: tally.as_dict() for t, tally in tallies.items()}, sys.stdout)
        sys.stdout.write("\n")
        return
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


def _iso_date(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a date of the form YYYY-MM-DD") from None


@app.command()
def simulate(
    out: Path = typer.Option(..., "--out", help="Directory to write the archive and truth.parquet into."),
    seed: int = typer.Option(1, "--seed", help="Seed of the simulated world; the same seed gives the same bytes."),
    start: str = typer.Option("2026-03-02", "--start", help="First simulated day (Tehran), YYYY-MM-DD."),
    weeks: int = typer.Option(12, "--weeks", min=1, max=520, help="Number of weeks to simulate."),
    scale: float = typer.Option(1.0, "--scale", min=0.0001, max=10.0, help="1 = Iran's real traffic (~12M departures a year)."),
    faults: bool = typer.Option(False, "--faults", help="Add duplicates, late and out-of-order events and malformed lines."),
) -> None:
    """Write a simulated border archive (six <topic>.ndjson files) and its true informal exports."""
    first_day = _iso_date(start)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from streams.simulator import WorldConfig
    from streams.simulator import simulate as run

    if out.exists() and not out.is_dir():
        raise CliError(f"{out} exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    config = WorldConfig(seed=seed, start=first_day, weeks=weeks, scale=scale, faults=faults)
    with Progress(
        TextColumn("simulating days"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        transient=True,
    ) as bar:
        task = bar.add_task("days", total=weeks * 7)
        summary = run(out, config, progress=lambda done, total: bar.update(task, completed=done, total=total))
    typer.echo(f"wrote {out}: {summary}")


@app.command()
def estimate(
    events: Path = typer.Option(..., "--events", help="Archive directory of <topic>.ndjson files."),
    out: Path = typer.Option(..., "--out", help="Output file, .parquet or .csv."),
    period: bool = typer.Option(
        False, "--period", help="Also one row per cell for the whole period (week 'first..last')."
    ),
) -> None:
    """Estimate every week of an archive (the batch path) and write one row per week and cell."""
    from streams.archive import ArchiveError

    if out.suffix not in (".parquet", ".csv"):
        raise CliError(f"--out must end in .parquet or .csv, not {out.name!r}")
    from streams.batch import build_tables

    try:
        tables, _ = build_tables(events)
    except ArchiveError as err:
        raise CliError(str(err)) from err
    table = tables.estimate()
    if period and table.height:
        import polars as pl

        table = pl.concat([table, tables.estimate(period=True)])
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".parquet":
        table.write_parquet(out)
    else:
        table.write_csv(out)
    typer.echo(f"wrote {len(table):,} rows to {out}")
