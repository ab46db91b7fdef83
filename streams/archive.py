"""Archives: one ``<topic>.ndjson`` file per topic, one event per line, in any order.

Reading an archive runs every line through the same decoder and the same event-id
deduplication as the stream, so a line is exactly one of accepted, duplicate (of an
accepted ``event_id`` earlier in the file) or rejected (with its reason).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from streams.contract import TOPICS, AnyEvent, Rejection, decode


class ArchiveError(ValueError):
    """The archive cannot be read at all (no directory, no topic files)."""


@dataclass
class TopicTally:
    """What became of one topic's lines."""

    accepted: int = 0
    duplicates: int = 0
    rejected: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict:
        return {
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "rejected": dict(sorted(self.rejected.items())),
        }


def topic_files(events_dir: Path) -> dict[str, Path]:
    """The archive's topic files; raises ArchiveError if there is nothing to read."""
    if not events_dir.is_dir():
        raise ArchiveError(f"{events_dir} is not a directory")
    found = {t: events_dir / f"{t}.ndjson" for t in TOPICS if (events_dir / f"{t}.ndjson").is_file()}
    if not found:
        raise ArchiveError(f"{events_dir} holds no <topic>.ndjson file of the contract's topics")
    return found


def lines(path: Path) -> Iterator[bytes]:
    """The lines of an NDJSON file without their line ends; a final newline ends a line."""
    with path.open("rb") as f:
        for line in f:
            if line.endswith(b"\n"):
                line = line[:-1]
            yield line


def read_topic(
    path: Path, topic: str, tally: TopicTally | None = None
) -> Iterator[AnyEvent]:
    """Accepted events of one topic file, first occurrence of each ``event_id`` only."""
    tally = tally if tally is not None else TopicTally()
    seen: set[str] = set()
    for raw in lines(path):
        event = decode(topic, raw)
        if type(event) is Rejection:
            tally.rejected[event.reason] += 1
        elif event.event_id in seen:
            tally.duplicates += 1
        else:
            seen.add(event.event_id)
            tally.accepted += 1
            yield event


def validate(events_dir: Path) -> dict[str, TopicTally]:
    """Count accepted, duplicate and rejected lines per topic file of an archive."""
    tallies: dict[str, TopicTally] = {}
    for topic, path in topic_files(events_dir).items():
        tally = tallies[topic] = TopicTally()
        for _ in read_topic(path, topic, tally):
            pass
    return tallies


@dataclass
class ArchiveReport:
    """What reading an archive into observations counted, beside the observations."""

    tallies: dict[str, TopicTally]
    unpriced: Counter[str]  # topic -> events whose currency had no rate at their time
    open_inspections: int  # inspections whose departure or declaration never arrived


def observe(events_dir: Path, sink: Callable[[object], None]) -> ArchiveReport:
    """Validate, deduplicate, price and join an archive, as the live worker does.

    Every observation (:mod:`estimators.observations`) goes to ``sink`` once. Rates are
    read first, so every amount meets the rate in force at its time whatever the file
    order; the crossing topics then go through the same :class:`Crossing` join as live.
    """
    from streams.contract import DECLARATIONS, DEPARTURES, EXPORTS, INSPECTIONS, PAYMENTS, RATES
    from streams.crossings import (
        Crossing,
        priced_declaration,
        departure_stratum,
        formal_export_seen,
        payment_seen,
        priced_inspection,
    )
    from streams.fx import RateBook

    files = topic_files(events_dir)
    tallies = {topic: TopicTally() for topic in files}
    unpriced: Counter[str] = Counter()
    rates = RateBook()
    if RATES in files:
        for rate in read_topic(files[RATES], RATES, tallies[RATES]):
            rates.add(rate.currency, rate.event_time.timestamp(), rate.event_id, rate.units_per_usd)

    crossings: dict[str, Crossing] = {}

    def crossing(crossing_id: str) -> Crossing:
        found = crossings.get(crossing_id)
        if found is None:
            found = crossings[crossing_id] = Crossing()
        return found

    def release(observations: list) -> None:
        for observation in observations:
            sink(observation)

    if DEPARTURES in files:
        for dep in read_topic(files[DEPARTURES], DEPARTURES, tallies[DEPARTURES]):
            release(crossing(dep.crossing_id).add_departure(*departure_stratum(dep)))
    for topic, price, add in (
        (DECLARATIONS, priced_declaration, Crossing.add_declaration),
        (INSPECTIONS, priced_inspection, Crossing.add_inspection),
    ):
        if topic not in files:
            continue
        for event in read_topic(files[topic], topic, tallies[topic]):
            priced = price(event, rates)
            if priced is None:
                unpriced[topic] += 1
            else:
                release(add(crossing(event.crossing_id), priced))
    for topic, convert in ((PAYMENTS, payment_seen), (EXPORTS, formal_export_seen)):
        if topic not in files:
            continue
        for event in read_topic(files[topic], topic, tallies[topic]):
            seen = convert(event, rates)
            if seen is None:
                unpriced[topic] += 1
            else:
                sink(seen)
    return ArchiveReport(
        tallies=tallies,
        unpriced=unpriced,
        open_inspections=sum(c.open_inspections for c in crossings.values()),
    )
