"""Prometheus metrics of the live path: names declared once, values read from state.

Every metric except the event-lag histogram is computed at scrape time by
:class:`SuitcaseCollector` from the worker's state (partition tallies, held events,
watermarks, the merged estimator state and the last estimate table), so a restarted
worker reports the counts its recovered state holds. No label carries an id or a week:
series are bounded by topics x reasons x posts x groups x domain keys.

Periods: ``week_to_date`` is the ISO week (Asia/Tehran) of the newest departure's event
time (the event clock), ``last_week`` the week before it; ``nowcast`` (estimate and interval
bounds of the total only) the whole current week, when the estimate carries its nowcast.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Final, Protocol

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from estimators.observations import iso_week_label
from streams.pipeline.contract import DECLARATIONS, INSPECTIONS

# name -> (type, labels, help). The single list of what the worker exports.
METRICS: Final[dict[str, tuple[str, tuple[str, ...], str]]] = {
    "suitcase_build_info": ("gauge", ("version",), "Always 1; the running suitcase version."),
    "suitcase_estimate_usd": ("gauge", ("period", "domain", "key"), "Informal handicraft exports estimate, US dollars."),
    "suitcase_estimate_ci_low_usd": ("gauge", ("period", "domain", "key"), "Lower bound of the 95% interval, US dollars."),
    "suitcase_estimate_ci_high_usd": ("gauge", ("period", "domain", "key"), "Upper bound of the 95% interval, US dollars."),
    "suitcase_estimate_std_error_usd": ("gauge", ("period", "domain", "key"), "Standard error of the estimate, US dollars."),
    "suitcase_formal_exports_usd": ("gauge", ("period", "domain", "key"), "Formal (declared) handicraft exports, US dollars."),
    "suitcase_estimate_recent_range_usd": ("gauge", ("bound", "domain", "key"), "Min (low) and max (high) of the last 4 closed weeks' estimates prorated to the week-to-date point, US dollars."),
    "suitcase_estimate_revision_usd": ("gauge", ("domain", "key", "week_offset"), "Change of a past week's estimate since its flash vintage, US dollars (absent before the flash)."),
    "suitcase_events_accepted_total": ("counter", ("topic",), "Events accepted (valid, first of their event_id, within the horizon)."),
    "suitcase_events_duplicate_total": ("counter", ("topic",), "Events dropped as repeats of an accepted event_id."),
    "suitcase_events_rejected_total": ("counter", ("topic", "reason"), "Events refused, by reason (contract reasons and too_late)."),
    "suitcase_deadletter_total": ("counter", ("topic",), "Records sent to the dead-letter topic."),
    "suitcase_events_late_total": ("counter", ("topic",), "Events accepted after their week closed (on the event clock)."),
    "suitcase_crossings_unjoined_total": ("counter", ("topic", "border_post"), "Declarations and inspections dropped at the horizon without ever meeting their departure (a producer not partitioning by murmur2 of crossing_id?)."),
    "suitcase_estimates_published_total": ("counter", (), "Estimate rows published to suitcase.estimates."),
    "suitcase_events_held": ("gauge", ("topic",), "Accepted events waiting for an exchange rate."),
    "suitcase_newest_event_timestamp_seconds": ("gauge", ("topic",), "Newest accepted event_time, Unix seconds (the event clock)."),
    "suitcase_last_event_processed_timestamp_seconds": ("gauge", ("topic",), "Wall-clock time the worker last processed a record, Unix seconds."),
    "suitcase_random_inspections": ("gauge", ("border_post", "group"), "Random inspections in the week to date."),
    "suitcase_departures": ("gauge", ("border_post", "group"), "Departures in the week to date."),
    "suitcase_consumer_lag_messages": ("gauge", ("topic", "partition"), "Records in the partition not yet processed by this worker."),
    "suitcase_worker_healthy": ("gauge", (), "1 while every task of the worker runs; 0 once one failed (the process then exits non-zero)."),
    "suitcase_internal_records_invalid_total": ("counter", ("topic",), "Records on an internal topic that did not decode (skipped, never applied)."),
    "suitcase_changelog_tombstones_total": ("counter", (), "Obsolete step records of the state changelog this worker tombstoned (so compaction removes them)."),
    "suitcase_event_lag_seconds": ("histogram", ("topic",), "Kafka record timestamp to processing, seconds."),
}

LAG_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0)
PERIODS: Final = ("week_to_date", "last_week")
RECENT_WEEKS: Final = 4
_ESTIMATE_COLUMNS: Final = {
    "suitcase_estimate_usd": "estimate_usd",
    "suitcase_estimate_ci_low_usd": "ci_low_usd",
    "suitcase_estimate_ci_high_usd": "ci_high_usd",
    "suitcase_estimate_std_error_usd": "std_error_usd",
    "suitcase_formal_exports_usd": "formal_exports_usd",
}

#: Period ``nowcast``: the whole current week (estimators.nowcast), on the total row.
_NOWCAST_COLUMNS: Final = {
    "suitcase_estimate_usd": "nowcast_usd",
    "suitcase_estimate_ci_low_usd": "nowcast_ci_low_usd",
    "suitcase_estimate_ci_high_usd": "nowcast_ci_high_usd",
}


class MetricsView(Protocol):
    """What the collector reads (implemented by :class:`streams.kafka.worker.LiveWorker`)."""

    version: str

    def tallies(self): ...  # -> Tally summed over this worker's partitions
    def held(self) -> dict[str, int]: ...
    def newest_event(self) -> dict[str, float]: ...
    def last_processed(self) -> dict[str, float]: ...
    def lag(self) -> dict[tuple[str, int], int]: ...
    def published(self) -> int: ...
    def clock(self) -> float | None: ...  # event clock: newest departure event time
    def estimate_rows(self) -> dict[tuple[str, str, str], dict]: ...  # (week, domain, key) -> row
    def flash_estimates(self, week: str) -> dict[tuple[str, str], float]: ...  # (domain, key) -> flash USD
    def week_counts(self, week: str) -> tuple[dict, dict]: ...  # departures, random inspections
    def healthy(self) -> bool: ...
    def invalid_records(self) -> dict[str, int]: ...  # internal topic -> records skipped
    def tombstones(self) -> int: ...  # obsolete changelog step records tombstoned


def _family(name: str):
    kind, labels, help_text = METRICS[name]
    if kind == "counter":
        return CounterMetricFamily(name, help_text, labels=labels)
    return GaugeMetricFamily(name, help_text, labels=labels)


def week_shift(week: str, weeks: int) -> str:
    """The ISO week label ``weeks`` after ``week`` (negative: before)."""
    year, _, num = week.partition("-W")
    monday = dt.date.fromisocalendar(int(year), int(num), 1)
    return iso_week_label(monday + dt.timedelta(weeks=weeks))


def week_fraction(at: float) -> float:
    """Fraction of its ISO week (Asia/Tehran) elapsed at epoch second ``at``."""
    from streams.pipeline.partition import week_end

    return min(1.0, max(0.0, 1.0 - (week_end(at) - at) / (7 * 86400)))


class SuitcaseCollector(Collector):
    """Computes every metric of :data:`METRICS` (but the histogram) from the worker's state."""

    def __init__(self, view: MetricsView) -> None:
        self.view = view

    def describe(self) -> Iterable:
        return []  # values appear as state arrives; no fixed sample set

    def collect(self) -> Iterable:
        v = self.view
        build = _family("suitcase_build_info")
        build.add_metric([v.version], 1.0)
        yield build

        tally = v.tallies()
        for name, counts in (
            ("suitcase_events_accepted_total", tally.accepted),
            ("suitcase_events_duplicate_total", tally.duplicates),
            ("suitcase_events_late_total", tally.late),
        ):
            fam = _family(name)
            for topic, n in sorted(counts.items()):
                fam.add_metric([topic], n)
            yield fam
        rejected = _family("suitcase_events_rejected_total")
        dead: dict[str, int] = {}
        for (topic, reason), n in sorted(tally.rejected.items()):
            rejected.add_metric([topic, reason], n)
            dead[topic] = dead.get(topic, 0) + n
        yield rejected
        fam = _family("suitcase_deadletter_total")
        for topic, n in sorted(dead.items()):
            fam.add_metric([topic], n)
        yield fam
        # Every (topic, post) from 0, so the first unjoined piece is an increase, not a new series.
        fam = _family("suitcase_crossings_unjoined_total")
        unjoined = {(topic, post): 0 for topic in (DECLARATIONS, INSPECTIONS) for post in _border_posts()}
        for (topic, post), n in tally.unjoined.items():
            unjoined[topic, post or "unknown"] = n
        for (topic, post), n in sorted(unjoined.items()):
            fam.add_metric([topic, post], n)
        yield fam
        fam = _family("suitcase_estimates_published_total")
        fam.add_metric([], v.published())
        yield fam

        for name, values in (
            ("suitcase_events_held", v.held()),
            ("suitcase_newest_event_timestamp_seconds", v.newest_event()),
            ("suitcase_last_event_processed_timestamp_seconds", v.last_processed()),
        ):
            fam = _family(name)
            for topic, x in sorted(values.items()):
                fam.add_metric([topic], x)
            yield fam
        fam = _family("suitcase_consumer_lag_messages")
        for (topic, partition), n in sorted(v.lag().items()):
            fam.add_metric([topic, str(partition)], n)
        yield fam
        fam = _family("suitcase_worker_healthy")
        fam.add_metric([], 1.0 if v.healthy() else 0.0)
        yield fam
        fam = _family("suitcase_internal_records_invalid_total")
        for topic, n in sorted(v.invalid_records().items()):
            fam.add_metric([topic], n)
        yield fam
        fam = _family("suitcase_changelog_tombstones_total")
        fam.add_metric([], v.tombstones())
        yield fam

        yield from self._estimates()

    def _estimates(self) -> Iterable:
        v = self.view
        clock = v.clock()
        rows = v.estimate_rows()
        fams = {name: _family(name) for name in _ESTIMATE_COLUMNS}
        recent = _family("suitcase_estimate_recent_range_usd")
        revision = _family("suitcase_estimate_revision_usd")
        departures = _family("suitcase_departures")
        inspections = _family("suitcase_random_inspections")
        if clock is not None:
            current = iso_week_label(
                dt.datetime.fromtimestamp(clock, dt.timezone.utc).astimezone(_tehran()).date()
            )
            for period, week in zip(PERIODS, (current, week_shift(current, -1))):
                for (w, domain, key), row in rows.items():
                    if w != week:
                        continue
                    for name, column in _ESTIMATE_COLUMNS.items():
                        value = row.get(column)
                        if value is not None:
                            fams[name].add_metric([period, domain, key], float(value))
            for (w, domain, key), row in rows.items():  # the whole current week, nowcast
                if w != current:
                    continue
                for name, column in _NOWCAST_COLUMNS.items():
                    value = row.get(column)
                    if value is not None:
                        fams[name].add_metric(["nowcast", domain, key], float(value))
            fraction = week_fraction(clock)
            past: dict[tuple[str, str], list[float]] = {}
            closed = {week_shift(current, -k) for k in range(1, RECENT_WEEKS + 1)}
            for (w, domain, key), row in rows.items():
                if w in closed and row.get("estimate_usd") is not None:
                    past.setdefault((domain, key), []).append(float(row["estimate_usd"]) * fraction)
            for (domain, key), values in sorted(past.items()):
                recent.add_metric(["low", domain, key], min(values))
                recent.add_metric(["high", domain, key], max(values))
            for k in range(1, RECENT_WEEKS + 1):
                week = week_shift(current, -k)
                flash = v.flash_estimates(week)  # empty before the week's flash
                for (w, domain, key), row in rows.items():
                    if w != week or row.get("estimate_usd") is None:
                        continue
                    if (domain, key) in flash:
                        revision.add_metric(
                            [domain, key, str(k)], float(row["estimate_usd"]) - flash[(domain, key)]
                        )
            deps, insp = v.week_counts(current)
            for (post, group), n in sorted(deps.items()):
                departures.add_metric([post, group], n)
            for (post, group), n in sorted(insp.items()):
                inspections.add_metric([post, group], n)
        yield from fams.values()
        yield recent
        yield revision
        yield departures
        yield inspections


def _border_posts() -> tuple[str, ...]:
    from estimators.reference import BORDER_POSTS

    return tuple(BORDER_POSTS)


def _tehran():
    from streams.pipeline.crossings import TEHRAN

    return TEHRAN


class Instruments:
    """The one metric updated on the hot path (a histogram cannot be derived from state)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        kind, labels, help_text = METRICS["suitcase_event_lag_seconds"]
        self.event_lag = Histogram(
            "suitcase_event_lag_seconds", help_text, labels, registry=registry, buckets=LAG_BUCKETS
        )
        self._children: dict[str, object] = {}

    def observe_lag(self, topic: str, lags: list[float]) -> None:
        child = self._children.get(topic)
        if child is None:
            child = self._children[topic] = self.event_lag.labels(topic)
        observe = child.observe
        for lag in lags:
            observe(lag)


def register(view: MetricsView, registry: CollectorRegistry) -> Instruments:
    """Register the collector and the histogram on ``registry``."""
    registry.register(SuitcaseCollector(view))
    return Instruments(registry)
