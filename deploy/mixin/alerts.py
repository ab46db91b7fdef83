"""Alerting rules: component then symptom, each with ``for``, ``severity``, ``team``, a
short ``summary``, a ``description`` with labels and a formatted value, and a runbook link.

``team`` decides the Alertmanager route: ``economists`` for what the estimates say,
``operators`` for the pipeline that computes them.
"""

from __future__ import annotations

from .config import TEAM_ECONOMISTS, TEAM_OPERATORS, Config
from .model import Group, Rule
from .rules import Names


def _alert(config: Config, name: str, *, expr: str, for_: str, severity: str, team: str,
           summary: str, description: str, why: str) -> Rule:
    """An alerting rule with the labels and annotations every alert carries."""
    return Rule(
        alert=name, expr=expr, for_=for_, why=why,
        labels={"severity": severity, "team": team},
        annotations={
            "summary": summary,
            "description": " ".join(description.split()),
            "runbook_url": config.runbook_url(name),
        },
    )


def estimate_alerts(config: Config) -> list[Rule]:
    n = Names(config)
    ratio, usd = config.estimate_jump_ratio, config.estimate_jump_min_usd
    return [
        _alert(
            config, "SuitcaseEstimateJump", severity="warning", team=TEAM_ECONOMISTS,
            for_=config.estimate_jump_for,
            why="""The week so far is far outside what the last four weeks looked like at the
                 same point of the week: a real shift, or a data problem upstream.""",
            expr=f"""
            {n.range_excess} > {ratio} and on (domain, key) {n.range_excess_usd} > {usd:g}
            or
            {n.range_excess} < -{ratio} and on (domain, key) {n.range_excess_usd} < -{usd:g}
            """,
            summary="Week-to-date estimate far outside the last four weeks' range.",
            description="""The week-to-date informal export estimate for {{ $labels.domain }}
                 {{ $labels.key }} lies {{ $value | humanizePercentage }} beyond the nearest
                 bound of the last 4 closed weeks' range at the same point of the week
                 (positive: above the highest, negative: below the lowest).""",
        ),
        _alert(
            config, "SuitcaseInspectionsTooFew", severity="warning", team=TEAM_ECONOMISTS,
            for_=config.inspections_for,
            why="""The level of the estimate comes only from random inspections; a stratum
                 with many departures and few inspections gets a wide, fragile interval. A
                 stratum with no inspection series at all counts as zero.""",
            expr=f"""
            (
              {n.inspections}
              or on (border_post, group)
              0 * {n.departures}
            ) < {config.inspections_min}
            and on (border_post, group)
            {n.departures} >= {config.inspections_departures_min}
            """,
            summary="Too few random inspections in a stratum this week.",
            description=f"""Only {{{{ $value | printf "%.0f" }}}} random inspections of
                 {{{{ $labels.group }}}} travellers at {{{{ $labels.border_post }}}} this
                 week (fewer than {config.inspections_min}) although at least
                 {config.inspections_departures_min} have departed; this stratum's estimate
                 rests on too small a sample.""",
        ),
        _alert(
            config, "SuitcaseEstimateRevisionLarge", severity="info", team=TEAM_ECONOMISTS,
            for_=config.revision_for,
            why="""Late events revise a published week; a large revision of last week's total
                 means the flash figure economists may have quoted was off.""",
            expr=f'abs({n.revision_last_week}{{domain="total"}}) > {config.revision_ratio}',
            summary="Last week's total revised a lot since its flash estimate.",
            description="""Last week's informal export estimate ({{ $labels.domain }}
                 {{ $labels.key }}) has been revised by {{ $value | humanizePercentage }} of
                 its flash estimate (up or down) since it was first published.""",
        ),
    ]


def _feed_quiet_expr(config: Config, n: Names) -> str:
    """Quiet topics (each against its own threshold) while some topic still flows."""
    thresholds = config.feed_quiet_thresholds()
    default = config.feed_quiet_seconds
    special = {t: s for t, s in thresholds.items() if s != default}
    if special:
        others = "|".join(t.replace(".", "\\\\.") for t in special)
        clauses = [f'{n.processed_age}{{topic!~"{others}"}} > {default}']
        clauses += [f'{n.processed_age}{{topic="{t}"}} > {s}' for t, s in special.items()]
    else:
        clauses = [f"{n.processed_age} > {default}"]
    quiet = "\n  or\n  ".join(clauses)
    return f"""(\n  {quiet}\n)\nand on ()\ncount({n.processed_age} <= {default}) > 0"""


def pipeline_alerts(config: Config) -> list[Rule]:
    n = Names(config)
    sel = config.sel()
    return [
        _alert(
            config, "SuitcaseWorkerDown", severity="critical", team=TEAM_OPERATORS,
            for_=config.worker_down_for,
            why="""A worker Prometheus cannot scrape, or no worker target at all: estimates
                 stop updating. It inhibits the alerts it causes (quiet feeds, lag).""",
            expr=f'up{{{sel}}} == 0 or absent(up{{{sel}}})',
            summary="A suitcase stream worker is down.",
            description="""{{ if $labels.instance }}Worker {{ $labels.instance }} of job
                 {{ $labels.job }} has failed its scrapes (up = {{ $value }}){{ else }}No
                 target of job {{ $labels.job }} is known to Prometheus (absent = {{ $value
                 }}){{ end }} for more than """ + config.worker_down_for + ".",
        ),
        _alert(
            config, "SuitcaseWorkerUnhealthy", severity="critical", team=TEAM_OPERATORS,
            for_=config.worker_unhealthy_for,
            why="""A task of a worker failed (its traceback is in the log); the worker exits
                 non-zero so that it is restarted. Firing means it keeps failing or was not
                 restarted: its partitions' lag grows and the estimate falls behind.""",
            expr=f"suitcase_worker_healthy{{{sel}}} == 0",
            summary="A suitcase worker reports a failed task.",
            description="""Worker {{ $labels.instance }} of job {{ $labels.job }} reports
                 suitcase_worker_healthy = {{ $value }} (a task failed) for more than """
                 + config.worker_unhealthy_for + ".",
        ),
        _alert(
            config, "SuitcaseFeedQuiet", severity="warning", team=TEAM_OPERATORS,
            for_=config.feed_quiet_for,
            why="""One source topic has stopped arriving while others still flow: an upstream
                 producer or a connector is down, and that source's share of the estimate
                 freezes. Sparse topics (exchange rates, formal exports) have longer limits.""",
            expr=_feed_quiet_expr(config, n),
            summary="A source topic has gone quiet while others still flow.",
            description="""No event of topic {{ $labels.topic }} has been processed for
                 {{ $value | humanizeDuration }}, while other topics are still flowing.""",
        ),
        _alert(
            config, "SuitcaseRejectRateHigh", severity="warning", team=TEAM_OPERATORS,
            for_=config.reject_for,
            why="""A producer started sending events that break the contract; they are lost
                 to the estimate until fixed and replayed from the dead-letter topic.""",
            expr=f"""
            {n.reject_ratio} > {config.reject_ratio}
            and on (topic)
            {n.rejected} > {config.reject_min_per_second}
            """,
            summary="Many events of a topic are rejected.",
            description="""{{ $value | humanizePercentage }} of the events read from topic
                 {{ $labels.topic }} over the last """ + config.rate_window + """ were
                 rejected to the dead-letter topic; the 'Rejects by reason' panel names the
                 broken field.""",
        ),
        _alert(
            config, "SuitcaseDeadLetterIncomplete", severity="warning", team=TEAM_OPERATORS,
            for_=config.deadletter_for,
            why="""Every rejected event must reach the dead-letter topic, or it can never be
                 replayed. Compared in total: the dead-letter counter's topic label need not
                 be the source topic.""",
            expr=f"""
            1 - (sum({n.deadletter}) or vector(0)) / (sum({n.rejected}) > 0)
            > {config.deadletter_missing_ratio}
            """,
            summary="Rejected events are not all reaching the dead-letter topic.",
            description="""{{ $value | humanizePercentage }} of rejected events over the last
                 """ + config.rate_window + """ were not written to the dead-letter topic.""",
        ),
        _alert(
            config, "SuitcaseConsumerLagGrowing", severity="warning", team=TEAM_OPERATORS,
            for_=config.consumer_lag_for,
            why="""Workers read a topic more slowly than it is produced: estimates fall ever
                 further behind until workers are added or a stuck partition is freed.""",
            expr=f"""
            {n.consumer_lag} > {config.consumer_lag_min_messages}
            and on (topic)
            deriv({n.consumer_lag}[{config.lag_growth_window}]) > 0
            """,
            summary="Kafka consumer lag keeps growing.",
            description="""Consumer lag on topic {{ $labels.topic }} is {{ $value | humanize }}
                 messages and has kept growing for """ + config.consumer_lag_for + ".",
        ),
        _alert(
            config, "SuitcaseEventLagHigh", severity="warning", team=TEAM_OPERATORS,
            for_=config.event_lag_for,
            why="""Events are processed long after Kafka received them: the live estimate is
                 stale by that much even though nothing is down.""",
            expr=f'{n.lag_quantile}{{quantile="0.99"}} > {config.event_lag_p99_seconds:g}',
            summary="Events are processed long after they were produced.",
            description="""99% of events of topic {{ $labels.topic }} were processed within
                 {{ $value | humanizeDuration }} of being produced, above the limit of """
                 + f"{config.event_lag_p99_seconds:g}s.",
        ),
        _alert(
            config, "SuitcaseEventsHeldForRate", severity="warning", team=TEAM_OPERATORS,
            for_=config.held_events_for,
            why="""Events wait for an exchange rate that has not arrived (fx.rates behind, or a
                 currency the rate feed does not cover); their value is missing from the
                 estimate meanwhile.""",
            expr=f"{n.held} > {config.held_events_max}",
            summary="Events are waiting for an exchange rate.",
            description="""{{ $value | humanize }} events of topic {{ $labels.topic }} are held
                 waiting for an exchange rate (limit """ + f"{config.held_events_max}).",
        ),
        _alert(
            config, "SuitcaseEstimatesNotPublished", severity="warning", team=TEAM_OPERATORS,
            for_=config.estimates_not_published_for,
            why="""Workers are up but no estimate was published for a while: the estimator is
                 stuck, and dashboards show old numbers as if current.""",
            expr=f"sum(increase(suitcase_estimates_published_total{{{sel}}}[{config.publish_window}])) == 0",
            summary="No estimate has been published recently.",
            description="""Workers published {{ $value }} estimates in the last """
                 + config.publish_window + ".",
        ),
        _alert(
            config, "SuitcaseWorkerVersionsMixed", severity="info", team=TEAM_OPERATORS,
            for_=config.versions_mixed_for,
            why="""Workers of different versions decode and estimate differently; normal during
                 a rollout, a problem when it lasts.""",
            expr=f"count(count by (version) (suitcase_build_info{{{sel}}})) > 1",
            summary="Workers run different versions.",
            description="""{{ $value }} different worker versions have been running side by side
                 for more than """ + config.versions_mixed_for + ".",
        ),
        _alert(
            config, "SuitcaseCrossingsUnjoined", severity="warning", team=TEAM_OPERATORS,
            for_=config.crossings_unjoined_for,
            why="""Declarations and inspections that never met their departure within the
                 horizon are missing from the estimate. Usually a producer that does not
                 partition by murmur2 of crossing_id (librdkafka's default is CRC32), so a
                 crossing's pieces land on different partitions.""",
            expr=f"""
            sum by (topic, border_post) (
              increase(suitcase_crossings_unjoined_total{{{sel}}}[{config.crossings_unjoined_window}])
            ) > {config.crossings_unjoined_min}
            """,
            summary="Declarations or inspections never met their departure.",
            description="""{{ $value | printf "%.0f" }} events of topic {{ $labels.topic }}
                 at {{ $labels.border_post }} expired without their departure in the last """
                 + config.crossings_unjoined_window + """; check that every producer
                 partitions by murmur2 of crossing_id.""",
        ),
    ]


def groups(config: Config) -> list[Group]:
    return [
        Group("suitcase-estimates.alerts", estimate_alerts(config), config.evaluation_interval),
        Group("suitcase-pipeline.alerts", pipeline_alerts(config), config.evaluation_interval),
    ]
