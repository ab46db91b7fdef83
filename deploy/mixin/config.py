"""The one place for selectors, thresholds, windows and durations of the monitoring mixin.

Everything the generated alerts, recording rules and dashboards depend on is a field of
:class:`Config`. ``DEFAULT`` is what production runs and what the committed files are
generated from; ``FAST`` shrinks every window and ``for`` so that end-to-end tests can watch
an alert fire within tens of seconds. ``Config.replace(...)`` derives any other profile.

The metrics themselves are the contract agreed with the worker (see deploy/README.md,
"Metrics"): the names below are that contract and are not configurable.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Final

#: Source topics of the border data contract, version 1 (shared/contract.md, "Topics").
CONTRACT_TOPICS: Final[tuple[str, ...]] = (
    "border.departures",
    "travellers.declarations",
    "customs.inspections",
    "customs.exports",
    "payments.transactions",
    "fx.rates",
)

#: The periods and domains an estimate is published for (the worker's metric contract).
PERIODS: Final[tuple[str, ...]] = ("week_to_date", "last_week")
#: Traveller groups of a sampling stratum (``group`` label of the inspection gauges).
GROUPS: Final[tuple[str, ...]] = ("resident", "visitor")

#: Teams alerts are routed to by Alertmanager (label ``team``).
TEAM_ECONOMISTS: Final[str] = "economists"
TEAM_OPERATORS: Final[str] = "operators"


@dataclass(frozen=True)
class Config:
    """Selectors, thresholds and durations of the suitcase monitoring mixin.

    Durations are Prometheus duration strings (``"5m"``, ``"30s"``); thresholds are in base
    units (USD, seconds, messages, ratios in [0, 1]).
    """

    # --- selectors -------------------------------------------------------------------------
    #: Scrape job of the stream workers; every raw metric selector carries it.
    job: str = "suitcase"

    # --- windows ---------------------------------------------------------------------------
    #: Window of the rate() recording rules; it is part of their names (``:rate5m``).
    rate_window: str = "5m"
    #: Window over which consumer lag must keep growing (deriv) for SuitcaseConsumerLagGrowing.
    lag_growth_window: str = "10m"
    #: Window in which at least one estimate must be published.
    publish_window: str = "30m"
    #: Evaluation interval of the rule groups; None keeps Prometheus' global setting.
    evaluation_interval: str | None = None

    # --- estimate alerts (team economists) ---------------------------------------------
    #: Week-to-date estimate this far beyond the nearest bound of the last 4 closed weeks'
    #: prorated range, as a fraction of that bound, is a jump.
    estimate_jump_ratio: float = 0.5
    #: ... and at least this many US dollars beyond it (keeps small cells and Monday
    #: mornings, when prorated ranges are tiny, from paging economists).
    estimate_jump_min_usd: float = 10_000.0
    estimate_jump_for: str = "30m"
    #: Random inspections in a stratum this week below this ...
    inspections_min: int = 30
    #: ... while its departures this week are at least this many.
    inspections_departures_min: int = 2_000
    inspections_for: str = "1h"
    #: Last week's total revised by more than this fraction of its flash estimate.
    revision_ratio: float = 0.2
    revision_for: str = "1h"

    # --- pipeline alerts (team operators) ------------------------------------------------
    worker_down_for: str = "5m"
    #: A worker reporting suitcase_worker_healthy 0 (a task failed; it exits) this long.
    worker_unhealthy_for: str = "1m"
    #: Seconds without a processed event after which a topic counts as quiet.
    feed_quiet_seconds: int = 900
    #: Topics that are naturally sparse get their own quiet threshold (seconds).
    feed_quiet_seconds_by_topic: tuple[tuple[str, int], ...] = (
        ("fx.rates", 6 * 3600),
        ("customs.exports", 2 * 3600),
    )
    feed_quiet_for: str = "5m"
    #: Fraction of received events rejected on a topic ...
    reject_ratio: float = 0.05
    #: ... with at least this many rejections per second (one stray bad event is no alert).
    reject_min_per_second: float = 0.02
    reject_for: str = "15m"
    #: Fraction of rejected events that did not reach the dead-letter topic.
    deadletter_missing_ratio: float = 0.1
    deadletter_for: str = "15m"
    #: Consumer lag (messages, summed over partitions of a topic) above this and growing.
    consumer_lag_min_messages: int = 1_000
    consumer_lag_for: str = "15m"
    #: 99th percentile of production-to-processing lag above this many seconds.
    event_lag_p99_seconds: float = 300.0
    event_lag_for: str = "15m"
    #: Events waiting for an exchange rate, summed over workers, above this many.
    held_events_max: int = 100
    held_events_for: str = "30m"
    estimates_not_published_for: str = "5m"
    versions_mixed_for: str = "1h"
    #: Declarations or inspections of one topic and post dropped at the horizon without
    #: their departure, more than this many within the window (open crossings expire in a
    #: sweep once per event day, so the window spans a day).
    crossings_unjoined_min: int = 5
    crossings_unjoined_window: str = "1d"
    crossings_unjoined_for: str = "15m"

    # --- links and dashboards ----------------------------------------------------------
    #: Runbooks are the "Runbook" sections of deploy/README.md; alerts link to
    #: ``{runbook_base_url}#{alertname lowercased}``.
    runbook_base_url: str = (
        "https://github.com/suitcase-exports/suitcase-exports/blob/main/deploy/README.md"
    )
    dashboard_uid_prefix: str = "suitcase"
    dashboard_timezone: str = "Asia/Tehran"
    dashboard_refresh: str = "1m"
    dashboard_time_from: str = "now-30d"
    #: Uid of the Prometheus data source provisioned in
    #: deploy/grafana/provisioning/datasources/prometheus.yml (the dashboards' default).
    datasource_uid: str = "suitcase-prometheus"
    topics: tuple[str, ...] = field(default=CONTRACT_TOPICS)

    # --- derived helpers -----------------------------------------------------------------
    def sel(self, **matchers: str) -> str:
        """A label selector body: the job matcher, then ``matchers`` (``name="value"``).

        A value starting with ``~`` becomes a regex matcher: ``sel(topic="~$topic")``.
        """
        parts = [f'job="{self.job}"']
        for name, value in matchers.items():
            if value.startswith("~"):
                parts.append(f'{name}=~"{value[1:]}"')
            else:
                parts.append(f'{name}="{value}"')
        return ",".join(parts)

    def rate_suffix(self) -> str:
        """Operation suffix of rate() recording rules, e.g. ``rate5m``."""
        return f"rate{self.rate_window}"

    def feed_quiet_thresholds(self) -> dict[str, int]:
        """Quiet threshold in seconds of each contract topic."""
        overrides = dict(self.feed_quiet_seconds_by_topic)
        return {t: overrides.get(t, self.feed_quiet_seconds) for t in self.topics}

    def runbook_url(self, alertname: str) -> str:
        """Runbook link of an alert: the README section named after it."""
        return f"{self.runbook_base_url}#{alertname.lower()}"

    def replace(self, **changes) -> "Config":
        """A copy with some fields changed (profiles, tests)."""
        return dataclasses.replace(self, **changes)


DEFAULT: Final[Config] = Config()

#: Every window and ``for`` in tens of seconds, for end-to-end tests against live servers
#: that scrape every few seconds. Not for production: it alerts on noise.
FAST: Final[Config] = DEFAULT.replace(
    rate_window="30s",
    lag_growth_window="1m",
    publish_window="1m",
    evaluation_interval="5s",
    estimate_jump_for="20s",
    inspections_for="20s",
    revision_for="20s",
    worker_down_for="20s",
    worker_unhealthy_for="10s",
    feed_quiet_seconds=30,
    feed_quiet_seconds_by_topic=(),
    feed_quiet_for="10s",
    reject_for="20s",
    deadletter_for="20s",
    consumer_lag_for="20s",
    event_lag_for="20s",
    held_events_for="20s",
    estimates_not_published_for="10s",
    versions_mixed_for="20s",
    crossings_unjoined_window="2m",
    crossings_unjoined_for="10s",
)

PROFILES: Final[dict[str, Config]] = {"default": DEFAULT, "fast": FAST}
