"""Reproducible border simulator: one seeded world of departures, declarations, inspections,
formal exports, card payments and exchange rates, with the true informal exports beside it.

Estimators can only be checked against a world whose truth is known, and the live feeder and
the archive must show the same world: both read :func:`iter_days`, and :func:`simulate` only
writes its days to files. Each day draws from its own random stream keyed by (seed, date),
so a day is the same whatever window it is simulated in; nothing reads the clock or global
random state. Counts and values are calibrated at ``scale=1`` to about 12 million departures
and about $250M of informal and $250M of formal handicraft exports a year (see
``bench/simulate_year.py`` for the measured figures).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import polars as pl

from streams.pipeline.contract import (
    DECLARATIONS,
    DEPARTURES,
    EXPORTS,
    INSPECTIONS,
    PAYMENTS,
    TOPICS,
)
from streams.pipeline.contract import RATES as FX_RATES
from estimators.reference import CATEGORIES, DESTINATION_REGIONS, DOMAINS
from streams.simulation.day import build_world, generate_day
from streams.simulation.faults import Faults
from streams.simulation.fx import fx_events
from streams.simulation.world import (
    DAY_S,
    POSTS,
    PURCHASE_DAYS_BEFORE,
    iso_week,
)

__all__ = [
    "DECLARATIONS",
    "DEPARTURES",
    "EXPORTS",
    "FX_RATES",
    "INSPECTIONS",
    "PAYMENTS",
    "TOPICS",
    "SimulatedDay",
    "SimulationSummary",
    "WorldConfig",
    "iter_days",
    "simulate",
    "truth_table",
]


@dataclass(frozen=True)
class WorldConfig:
    """Every knob of the simulated world; the defaults are the calibrated world."""

    seed: int = 1
    #: First simulated day (Asia/Tehran local date).
    start: dt.date = dt.date(2026, 3, 2)
    weeks: int = 12
    #: Multiplies every count of people, cards, merchants' customers and export declarations.
    scale: float = 1.0
    #: Duplicates, late and out-of-order lines, malformed lines. Never changes truth.
    faults: bool = False
    #: Departures a year at scale 1, Arbaeen pilgrims and suitcase traders' trips included.
    departures_per_year: float = 12_000_000
    #: Arbaeen pilgrims leaving in the fortnight before Arbaeen, mostly via Mehran/Shalamcheh.
    arbaeen_pilgrims: float = 1_800_000
    #: Repeat suitcase traders in the pool at scale 1, and their mean trips a year.
    traders: int = 1_500
    trader_trips_per_year: float = 15.0
    #: Formal export declarations filed on a working day at scale 1.
    export_declarations_per_day: float = 160.0
    #: Fault model (used only when ``faults``): share of lines re-emitted, share of
    #: departure-linked lines arriving days late, share of lines with a malformed twin,
    #: share of a day's lines shuffled out of order, and the longest delay in days.
    duplicate_rate: float = 0.01
    late_rate: float = 0.02
    malformed_rate: float = 0.001
    shuffle_rate: float = 0.05
    max_delay_days: int = 7
    #: World variations (the defaults leave the calibrated world byte for byte unchanged).
    #: Multiplies every group's chance of declaring (few-declarer worlds below 1).
    declare_factor: float = 1.0
    #: Multiplies the traders' mean pieces per item line (heavy repeat traders above 1).
    trader_load_factor: float = 1.0
    #: Log-sd of a per-trader load multiplier (mean one): the same trader carries heavy
    #: loads trip after trip, so repeat trips are correlated (0: no trader effect).
    trader_load_sd: float = 0.0
    #: From week ``card_drop_week`` (0-based, None: never) on, foreign visitors hold a
    #: tourist card ``card_share_factor`` times as often (cards suspended, switch outage).
    card_drop_week: int | None = None
    card_share_factor: float = 1.0
    #: Multiplies every post's random-inspection probability.
    inspection_factor: float = 1.0
    #: Posts whose random-inspection probability is further multiplied by ``thin_factor``.
    thin_posts: tuple[str, ...] = ()
    thin_factor: float = 1.0

    @property
    def days(self) -> int:
        return 7 * self.weeks


@dataclass(frozen=True)
class SimulatedDay:
    """One simulated day as the feeder would publish it.

    ``events`` holds that day's JSON lines per topic in production order (late, duplicate
    and malformed lines included when faults are on); ``truth`` holds the handicraft items
    carried by the travellers who departed that day (see :data:`TRUTH_ITEM_COLUMNS`).
    """

    date: dt.date
    events: dict[str, list[bytes]]
    truth: pl.DataFrame


@dataclass(frozen=True)
class SimulationSummary:
    """What :func:`simulate` wrote, for the CLI to print and tests to check."""

    out_dir: Path
    days: int
    #: Lines written per topic (duplicates and malformed lines included).
    lines: dict[str, int]
    #: Distinct well-formed events per topic (what a perfect consumer counts).
    events: dict[str, int]
    duplicates: int
    late: int
    malformed: int
    departures: int
    truth_total_usd: float
    formal_handicraft_usd: float
    formal_total_usd: float


#: Columns of ``SimulatedDay.truth``: one row per carried item line.
TRUTH_ITEM_COLUMNS: Final[tuple[str, ...]] = (
    "crossing_id", "week", "border_post", "destination_region", "category", "quantity",
    "value_usd",
)


@dataclass
class _Stats:
    events: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TOPICS, 0))
    departures: int = 0
    formal_handicraft_usd: float = 0.0
    formal_total_usd: float = 0.0


def _days(config: WorldConfig, stats: _Stats | None = None, faults_out: list[Faults] | None = None,
          ) -> Iterator[tuple[dt.date, dict[str, list[str]], pl.DataFrame]]:
    """The world one emitted day at a time: lines per topic (as str) and carried items.

    Day g is generated ``PURCHASE_DAYS_BEFORE`` days before it is emitted, because the card
    payments of its travellers fall in the week before they leave.
    """
    w = build_world(config)
    stats = stats if stats is not None else _Stats()
    faults = Faults(w) if config.faults else None
    if faults_out is not None and faults is not None:
        faults_out.append(faults)
    lookahead = PURCHASE_DAYS_BEFORE
    pending: dict[int, dict[str, list[pl.DataFrame]]] = defaultdict(lambda: defaultdict(list))
    truth: dict[int, pl.DataFrame] = {}
    pending[0][FX_RATES].append(fx_events(w.fx, w.first_day - 1))  # a rate before any amount
    for g in range(config.days + lookahead):
        out = generate_day(w, g)
        if g < config.days:
            out.frames[FX_RATES] = fx_events(w.fx, w.first_day + g)
            truth[g] = out.truth
            stats.formal_handicraft_usd += out.formal_handicraft_usd
            stats.formal_total_usd += out.formal_total_usd
        for topic, frame in out.frames.items():
            day = (frame["t"] // DAY_S - w.first_day).clip(0, None)
            for (e,), part in frame.with_columns(e=day).partition_by("e", as_dict=True).items():
                pending[e][topic].append(part.drop("e"))
        e = g - lookahead
        if e < 0:
            continue
        parts = pending.pop(e, {})
        batches = {}
        for topic in TOPICS:
            frames = parts.get(topic, [])
            lines = (pl.concat(frames).sort("t", maintain_order=True)["line"].to_list()
                     if frames else [])
            stats.events[topic] += len(lines)
            batches[topic] = lines
        stats.departures += len(batches[DEPARTURES])
        if faults is not None:
            batches = faults.apply(e, batches)
        yield config.start + dt.timedelta(e), batches, truth.pop(e)


def iter_days(config: WorldConfig) -> Iterator[SimulatedDay]:
    """The world one simulated day at a time, for the live feeder (the same days as
    :func:`simulate` writes)."""
    for date, batches, truth in _days(config):
        yield SimulatedDay(date=date, events={t: [s.encode() for s in lines]
                                              for t, lines in batches.items()}, truth=truth)


def truth_table(items: pl.DataFrame, weeks: list[str] | None = None) -> pl.DataFrame:
    """True informal exports per ISO week and domain key, from carried items
    (``SimulatedDay.truth`` rows, or their partial sums with the same columns).

    Every (week, domain, key) of the reference codes is present, zero when nothing was
    carried, so each domain sums to the week's total. Sums run on whole cents, so the
    table does not depend on the order of the items.
    """
    if weeks is None:
        weeks = sorted(set(items["week"].to_list()))
    cents = items.select("week", *DOMAINS[1:],
                         cents=(pl.col("value_usd") * 100).round().cast(pl.Int64))
    keys = {"total": ["all"], "category": list(CATEGORIES), "border_post": list(POSTS),
            "destination_region": list(DESTINATION_REGIONS)}
    parts = []
    for rank, domain in enumerate(DOMAINS):
        key = pl.lit("all") if domain == "total" else pl.col(domain)
        sums = cents.group_by("week", key=key).agg(pl.col("cents").sum())
        grid = pl.DataFrame({"week": weeks}, schema={"week": pl.String}).join(
            pl.DataFrame({"key": keys[domain], "rank": range(len(keys[domain]))}), how="cross")
        parts.append(grid.join(sums, on=["week", "key"], how="left")
                     .with_columns(domain=pl.lit(domain), drank=pl.lit(rank)))
    return (pl.concat(parts).sort("week", "drank", "rank")
            .select("week", "domain", "key",
                    value_usd=pl.col("cents").fill_null(0).cast(pl.Float64) / 100))


def simulate(out_dir: Path, config: WorldConfig,
             progress: Callable[[int, int], None] | None = None) -> SimulationSummary:
    """Write ``<topic>.ndjson`` for the six topics and ``truth.parquet`` into ``out_dir``:
    the concatenation of :func:`iter_days` (faults included when configured)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stats = _Stats()
    faults: list[Faults] = []
    lines = dict.fromkeys(TOPICS, 0)
    items = []
    files = {t: (out_dir / f"{t}.ndjson").open("wb") for t in TOPICS}
    try:
        for done, (_, batches, truth) in enumerate(_days(config, stats, faults), start=1):
            for topic, batch in batches.items():
                if batch:
                    files[topic].write(("\n".join(batch) + "\n").encode("utf-8"))
                    lines[topic] += len(batch)
            items.append(truth.select("week", *DOMAINS[1:], "value_usd"))
            if progress is not None:
                progress(done, config.days)
    finally:
        for f in files.values():
            f.close()
    weeks = sorted({iso_week(config.start + dt.timedelta(d)) for d in range(config.days)})
    truth = truth_table(pl.concat(items), weeks)
    truth.write_parquet(out_dir / "truth.parquet")
    f = faults[0] if faults else None
    return SimulationSummary(
        out_dir=out_dir, days=config.days, lines=lines, events=stats.events,
        duplicates=f.duplicates if f else 0, late=f.late if f else 0,
        malformed=f.malformed if f else 0, departures=stats.departures,
        truth_total_usd=float(truth.filter(pl.col("domain") == "total")["value_usd"].sum()),
        formal_handicraft_usd=stats.formal_handicraft_usd, formal_total_usd=stats.formal_total_usd,
    )
