"""Metric names, labels and values from a worker-like view, on a fresh registry."""

from __future__ import annotations

import datetime as dt

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from streams.pipeline.partition import Tally
from streams.publish.metrics import METRICS, register, week_fraction, week_shift


def at(text: str) -> float:
    return dt.datetime.fromisoformat(text).timestamp()


class View:
    """The state a worker exposes, filled by hand."""

    version = "9.9.9"

    def __init__(self) -> None:
        self.now = at("2026-03-19T12:00:00+03:30")  # Thursday of 2026-W12
        rows = {}
        for week, est in (("2026-W12", 700.0), ("2026-W11", 1000.0), ("2026-W10", 2000.0),
                          ("2026-W09", 1500.0), ("2026-W08", 3000.0), ("2026-W07", 9999.0)):
            rows[(week, "total", "all")] = {
                "estimate_usd": est, "ci_low_usd": est - 10, "ci_high_usd": est + 10,
                "std_error_usd": 5.0, "formal_exports_usd": 42.0,
            }
        self.rows = rows

    def tallies(self):
        t = Tally()
        t.accepted.update({"border.departures": 10, "fx.rates": 2})
        t.duplicates.update({"border.departures": 1})
        t.rejected.update({("border.departures", "not_json"): 2, ("border.departures", "too_late"): 1})
        t.late.update({"border.departures": 3})
        return t

    def held(self):
        return {"travellers.declarations": 4}

    def newest_event(self):
        return {"border.departures": self.now}

    def last_processed(self):
        return {"border.departures": 1.7e9}

    def lag(self):
        return {("border.departures", 0): 12}

    def published(self):
        return 5

    def clock(self):
        return self.now

    def estimate_rows(self):
        return self.rows

    def flash_estimates(self, week):
        # W11's flash said 900 and it moved to 1000; W10's flash equals its estimate now
        # (a week that never moved after its flash); W09 has no flash yet.
        return {"2026-W11": {("total", "all"): 900.0}, "2026-W10": {("total", "all"): 2000.0}}.get(week, {})

    def week_counts(self, week):
        assert week == "2026-W12"
        return {("IKA", "visitor"): 7}, {("IKA", "visitor"): 2}

    def healthy(self):
        return False

    def invalid_records(self):
        return {"suitcase-partition-state-changelog": 3}

    def tombstones(self):
        return 5


@pytest.fixture
def registry():
    reg = CollectorRegistry()
    instruments = register(View(), reg)
    instruments.observe_lag("border.departures", [0.02, 3.0])
    return reg


def test_counters_come_from_the_partition_tallies(registry):
    g = registry.get_sample_value
    assert g("suitcase_build_info", {"version": "9.9.9"}) == 1
    assert g("suitcase_events_accepted_total", {"topic": "border.departures"}) == 10
    assert g("suitcase_events_duplicate_total", {"topic": "border.departures"}) == 1
    assert g("suitcase_events_rejected_total", {"topic": "border.departures", "reason": "not_json"}) == 2
    assert g("suitcase_events_rejected_total", {"topic": "border.departures", "reason": "too_late"}) == 1
    assert g("suitcase_deadletter_total", {"topic": "border.departures"}) == 3
    assert g("suitcase_events_late_total", {"topic": "border.departures"}) == 3
    assert g("suitcase_estimates_published_total") == 5
    assert g("suitcase_events_held", {"topic": "travellers.declarations"}) == 4
    assert g("suitcase_newest_event_timestamp_seconds", {"topic": "border.departures"}) == at("2026-03-19T12:00:00+03:30")
    assert g("suitcase_last_event_processed_timestamp_seconds", {"topic": "border.departures"}) == 1.7e9
    assert g("suitcase_consumer_lag_messages", {"topic": "border.departures", "partition": "0"}) == 12
    assert g("suitcase_event_lag_seconds_count", {"topic": "border.departures"}) == 2
    assert g("suitcase_event_lag_seconds_bucket", {"topic": "border.departures", "le": "0.025"}) == 1


def test_estimates_by_period(registry):
    g = registry.get_sample_value
    labels = {"period": "week_to_date", "domain": "total", "key": "all"}
    assert g("suitcase_estimate_usd", labels) == 700
    assert g("suitcase_estimate_ci_low_usd", labels) == 690
    assert g("suitcase_estimate_ci_high_usd", labels) == 710
    assert g("suitcase_estimate_std_error_usd", labels) == 5
    assert g("suitcase_formal_exports_usd", labels) == 42
    assert g("suitcase_estimate_usd", {**labels, "period": "last_week"}) == 1000
    assert g("suitcase_departures", {"border_post": "IKA", "group": "visitor"}) == 7
    assert g("suitcase_random_inspections", {"border_post": "IKA", "group": "visitor"}) == 2


def test_recent_range_is_prorated_to_the_same_point_of_the_week(registry):
    f = week_fraction(at("2026-03-19T12:00:00+03:30"))
    assert f == pytest.approx(3.5 / 7)
    g = registry.get_sample_value
    # the four closed weeks W08..W11; W07 is out of the window
    assert g("suitcase_estimate_recent_range_usd", {"bound": "low", "domain": "total", "key": "all"}) == pytest.approx(1000 * f)
    assert g("suitcase_estimate_recent_range_usd", {"bound": "high", "domain": "total", "key": "all"}) == pytest.approx(3000 * f)


def test_revision_is_the_change_since_the_flash(registry):
    g = registry.get_sample_value
    assert g("suitcase_estimate_revision_usd", {"domain": "total", "key": "all", "week_offset": "1"}) == 100
    assert g("suitcase_estimate_revision_usd", {"domain": "total", "key": "all", "week_offset": "2"}) == 0
    assert g("suitcase_estimate_revision_usd", {"domain": "total", "key": "all", "week_offset": "3"}) is None


def test_exactly_the_declared_names_and_no_id_or_week_labels(registry):
    families = {m.name for m in registry.collect()}
    declared = {n.removesuffix("_total") for n in METRICS}
    assert generate_latest(registry)
    assert families == declared
    for name, (_, labels, _) in METRICS.items():
        assert not {"week", "event_id", "crossing_id", "traveller_id", "card_id"} & set(labels), name


def test_week_shift_crosses_years():
    assert week_shift("2026-W01", -1) == "2025-W52"
    assert week_shift("2026-W53", 1) == "2027-W01" or week_shift("2026-W52", 1) == "2026-W53"


def test_health_and_invalid_internal_records_are_exported(registry):
    g = registry.get_sample_value
    assert g("suitcase_worker_healthy") == 0.0
    assert g("suitcase_internal_records_invalid_total", {"topic": "suitcase-partition-state-changelog"}) == 3
    assert g("suitcase_changelog_tombstones_total") == 5
