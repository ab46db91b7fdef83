"""Recording rules, named ``level:metric:operations``; each says why it exists.

Aggregation across workers follows what a metric means: counters and per-partition gauges
(lag, held events, departures, inspections) are partial per worker and are summed;
estimates are whole-population figures that any worker publishing them reports alike, so
they are deduplicated with ``max``.
"""

from __future__ import annotations

from estimators.reference import BORDER_POSTS

from .config import Config
from .model import Group, Rule

CELL = "period, domain, key"


class Names:
    """Names of the recording rules under a config (rate rules carry their window)."""

    def __init__(self, config: Config) -> None:
        r = config.rate_suffix()
        self.accepted = f"topic:suitcase_events_accepted:{r}"
        self.duplicate = f"topic:suitcase_events_duplicate:{r}"
        self.rejected_by_reason = f"topic_reason:suitcase_events_rejected:{r}"
        self.rejected = f"topic:suitcase_events_rejected:{r}"
        self.received = f"topic:suitcase_events_received:{r}"
        self.reject_ratio = f"topic:suitcase_events_rejected:ratio_{r}"
        self.reject_ratio_all = f"suitcase:events_rejected:ratio_{r}"
        self.deadletter = f"topic:suitcase_deadletter:{r}"
        self.late = f"topic:suitcase_events_late:{r}"
        self.lag_bucket = f"topic_le:suitcase_event_lag_seconds_bucket:{r}"
        self.lag_quantile = f"topic:suitcase_event_lag_seconds:quantile_{r}"
        self.consumer_lag = "topic:suitcase_consumer_lag_messages:sum"
        self.held = "topic:suitcase_events_held:sum"
        self.processed_age = "topic:suitcase_last_event_processed:age_seconds"
        self.event_clock_age = "topic:suitcase_newest_event:age_seconds"
        self.inspections = "border_post_group:suitcase_random_inspections:sum"
        self.departures = "border_post_group:suitcase_departures:sum"
        self.sampling_fraction = "border_post_group:suitcase_random_inspections:ratio"
        self.informal_formal = "suitcase:estimate_informal_formal:ratio"
        self.ci_halfwidth = "suitcase:estimate_ci_relative_halfwidth:ratio"
        self.range_excess_usd = "suitcase:estimate_recent_range_excess:usd"
        self.range_excess = "suitcase:estimate_recent_range_excess:ratio"
        self.revision_last_week = "suitcase:estimate_revision_last_week:ratio"
        self.post_location = "border_post:suitcase_location:info"


def estimate(config: Config, metric: str = "suitcase_estimate_usd", by: str = CELL,
             **matchers: str) -> str:
    """One value per cell of an estimate-like gauge, deduplicated across workers."""
    return f"max by ({by}) ({metric}{{{config.sel(**matchers)}}})"


def pipeline_rules(config: Config) -> list[Rule]:
    n, w = Names(config), config.rate_window
    sel = config.sel()
    return [
        Rule(record=n.accepted, why="""Accepted events per second per topic summed over
             workers: throughput panel, and the denominator of per-topic ratios.""",
             expr=f"sum by (topic) (rate(suitcase_events_accepted_total{{{sel}}}[{w}]))"),
        Rule(record=n.duplicate, why="""Producer retries caught by deduplication, per topic;
             a rise means an upstream producer is retrying hard.""",
             expr=f"sum by (topic) (rate(suitcase_events_duplicate_total{{{sel}}}[{w}]))"),
        Rule(record=n.rejected_by_reason, why="""Rejections per topic and reason: the
             'rejects by reason' panel tells operators which field an upstream broke.""",
             expr=f"sum by (topic, reason) (rate(suitcase_events_rejected_total{{{sel}}}[{w}]))"),
        Rule(record=n.rejected, why="""Rejections per topic, all reasons: numerator of the
             reject ratio and of the dead-letter completeness check.""",
             expr=f"sum by (topic) ({n.rejected_by_reason})"),
        Rule(record=n.received, why="""Every event read per topic: accepted, duplicate or
             rejected. A label per kind keeps `or` from merging them, so a topic that never
             had a reject or a duplicate still gets a value.""",
             expr=f"""
             sum by (topic) (
                 label_replace({n.accepted}, "kind", "accepted", "", "")
               or
                 label_replace({n.duplicate}, "kind", "duplicate", "", "")
               or
                 label_replace({n.rejected}, "kind", "rejected", "", "")
             )
             """),
        Rule(record=n.reject_ratio, why="""Share of a topic's events rejected; drives
             SuitcaseRejectRateHigh. Topics with no traffic have no value rather than NaN.""",
             expr=f"{n.rejected} / ({n.received} > 0)"),
        Rule(record=n.reject_ratio_all, why="""Share of all events rejected, one number for
             the operations dashboard's headline.""",
             expr=f"sum({n.rejected}) / (sum({n.received}) > 0)"),
        Rule(record=n.deadletter, why="""Dead-letter writes per second by the topic label the
             worker sets; compared in total with rejections (every reject must be written).""",
             expr=f"sum by (topic) (rate(suitcase_deadletter_total{{{sel}}}[{w}]))"),
        Rule(record=n.late, why="""Accepted events whose week had already closed: these
             revise published weeks, so economists see them coming.""",
             expr=f"sum by (topic) (rate(suitcase_events_late_total{{{sel}}}[{w}]))"),
        Rule(record=n.lag_bucket, why="""Lag histogram buckets summed over workers; the
             quantile rules below and the dashboard read this instead of raw buckets.""",
             expr=f"sum by (topic, le) (rate(suitcase_event_lag_seconds_bucket{{{sel}}}[{w}]))"),
        *[
            Rule(record=n.lag_quantile, labels={"quantile": q},
                 why=f"""Production-to-processing lag, {q} quantile per topic; the 0.99
                 quantile drives SuitcaseEventLagHigh.""",
                 expr=f"histogram_quantile({q}, {n.lag_bucket})")
            for q in ("0.5", "0.9", "0.99")
        ],
        Rule(record=n.consumer_lag, why="""Kafka consumer lag per topic over all partitions
             and workers; partitions move between workers on rebalance, the topic sum does
             not. SuitcaseConsumerLagGrowing takes its derivative.""",
             expr=f"sum by (topic) (suitcase_consumer_lag_messages{{{sel}}})"),
        Rule(record=n.held, why="""Events parked for want of an exchange rate, per topic,
             over all workers: their value is missing from the estimate until released.""",
             expr=f"sum by (topic) (suitcase_events_held{{{sel}}})"),
        Rule(record=n.processed_age, why="""Wall-clock seconds since any worker last processed
             an event of the topic: the 'feed went quiet' signal of SuitcaseFeedQuiet.""",
             expr=f"time() - max by (topic) (suitcase_last_event_processed_timestamp_seconds{{{sel}}})"),
        Rule(record=n.event_clock_age, why="""How far the newest event time seen per topic is
             behind now: a source that delivers, but only old events, shows here.""",
             expr=f"time() - max by (topic) (suitcase_newest_event_timestamp_seconds{{{sel}}})"),
    ]


def sample_rules(config: Config) -> list[Rule]:
    n = Names(config)
    sel = config.sel()
    return [
        Rule(record=n.inspections, why="""Random inspections this week per stratum over all
             workers (partitions split a stratum): the sample the estimate rests on.""",
             expr=f"sum by (border_post, group) (suitcase_random_inspections{{{sel}}})"),
        Rule(record=n.departures, why="""Departures this week per stratum over all workers:
             the population a stratum's sample is scaled to.""",
             expr=f"sum by (border_post, group) (suitcase_departures{{{sel}}})"),
        Rule(record=n.sampling_fraction, why="""Share of a stratum's departures randomly
             inspected this week: a falling fraction widens that stratum's interval.""",
             expr=f"{n.inspections} / ({n.departures} > 0)"),
    ]


def estimate_rules(config: Config) -> list[Rule]:
    n = Names(config)
    wtd = estimate(config, by="domain, key", period="week_to_date")
    high = estimate(config, "suitcase_estimate_recent_range_usd", by="domain, key", bound="high")
    low = estimate(config, "suitcase_estimate_recent_range_usd", by="domain, key", bound="low")
    revision = estimate(config, "suitcase_estimate_revision_usd", by="domain, key", week_offset="1")
    last_week = estimate(config, by="domain, key", period="last_week")
    return [
        Rule(record=n.informal_formal, why="""Informal (suitcase) estimate per dollar of
             recorded exports in the same cell; the headline comparison of the economists'
             dashboard. Cells without formal exports have no ratio, not +Inf.""",
             expr=f"""
             {estimate(config)}
             /
             ({estimate(config, "suitcase_formal_exports_usd")} > 0)
             """),
        Rule(record=n.ci_halfwidth, why="""Half-width of the 95% interval as a share of the
             estimate (0.1 reads "plus or minus 10%"): precision at a glance.""",
             expr=f"""
             (
               {estimate(config, "suitcase_estimate_ci_high_usd")}
               -
               {estimate(config, "suitcase_estimate_ci_low_usd")}
             ) / 2
             /
             ({estimate(config)} > 0)
             """),
        Rule(record=n.range_excess_usd, why="""How many US dollars the week-to-date estimate
             lies outside the last 4 closed weeks' range, prorated to the same point of the
             week: positive above the highest, negative below the lowest, 0 inside. Together
             with the ratio below it drives SuitcaseEstimateJump.""",
             expr=f"""
             {wtd} - {high} > 0
             or
             {wtd} - {low} < 0
             or
             0 * ({wtd} and {high} and {low})
             """),
        Rule(record=n.range_excess, why="""The same distance as a share of the nearest bound
             of the range (0.5: half again above the highest week); the estimate-jump panel
             and SuitcaseEstimateJump read it.""",
             expr=f"""
             ({n.range_excess_usd} > 0) / on (domain, key) clamp_min({high}, 1)
             or
             ({n.range_excess_usd} < 0) / on (domain, key) clamp_min({low}, 1)
             or
             {n.range_excess_usd}
             """),
        Rule(record=n.revision_last_week, why="""Change of last week's estimate since its
             flash vintage, as a share of the flash (flash = current minus revision). Drives
             SuitcaseEstimateRevisionLarge.""",
             expr=f"""
             {revision}
             /
             (({last_week} - {revision}) > 0)
             """),
    ]


def reference_rules(config: Config) -> list[Rule]:
    """One constant series per border post carrying its coordinates, from estimators.reference.

    Prometheus is the dashboards' only data source; these series let the geomap panel join
    a post's estimate to where the post is (``* on (key) group_left (latitude, longitude)``).
    """
    n = Names(config)
    return [
        Rule(record=n.post_location, expr="vector(1)",
             why=f"""Coordinates of border post {code} ({post["place"]}) for the geomap
             panel; generated from estimators/reference.py.""",
             labels={"domain": "border_post", "key": code, "place": post["place"],
                     "mode": post["mode"], "latitude": f'{post["lat"]:.4f}',
                     "longitude": f'{post["lon"]:.4f}'})
        for code, post in BORDER_POSTS.items()
    ]


def groups(config: Config) -> list[Group]:
    return [
        Group("suitcase-pipeline.rules", pipeline_rules(config), config.evaluation_interval),
        Group("suitcase-sample.rules", sample_rules(config), config.evaluation_interval),
        Group("suitcase-estimates.rules", estimate_rules(config), config.evaluation_interval),
        Group("suitcase-reference.rules", reference_rules(config), config.evaluation_interval),
    ]
