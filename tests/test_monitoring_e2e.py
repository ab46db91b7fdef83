"""The monitoring mixin end to end, on the real servers.

`suitcase up` (embedded broker, worker, simulated border) is scraped by Debian's
Prometheus loaded with the mixin's rules; alerts go through Debian's Alertmanager, loaded
with the shipped alertmanager.yml, to a webhook receiver. Every dashboard query must
return data; pausing one simulated feed must fire SuitcaseFeedQuiet for that topic at the
operators' webhook, and resuming it must resolve the alert. Rules come from the mixin's
``fast`` profile (windows of tens of seconds) so that this happens within minutes.
"""

from __future__ import annotations

import os
import sys
import urllib.request

import pytest
import yaml

from deploy.mixin import render
from deploy.mixin.config import FAST
from deploy.mixin.dashboards import panel_queries
from tests.servers import WebhookReceiver, alertmanager, eventually, free_port, prometheus, running

pytestmark = [pytest.mark.broker, pytest.mark.servers]

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAUSED_TOPIC = "travellers.declarations"


def shipped(path: str) -> dict:
    with open(os.path.join(ROOT, "deploy", path)) as f:
        return yaml.safe_load(f)


def alertmanager_config(webhook: str) -> str:
    """The shipped routing and inhibition, with the webhooks on the test's receiver and
    the waits shortened; email receivers are dropped (no mail relay here)."""
    config = shipped("alertmanager/alertmanager.yml")
    for receiver in config["receivers"]:
        receiver.pop("email_configs", None)
        for hook in receiver.get("webhook_configs", []):
            hook["url"] = webhook + "/" + hook["url"].rsplit("/", 1)[1]

    def shorten(route: dict) -> None:
        route.update(group_wait="1s", group_interval="2s", repeat_interval="1h")
        for child in route.get("routes", []):
            shorten(child)

    shorten(config["route"])
    return yaml.safe_dump(config)


def prometheus_config(metrics: str, alertmanager_url: str, rule_files: list[str]) -> str:
    """The shipped scrape and alerting settings, pointed at the test's worker and Alertmanager."""
    config = shipped("prometheus/prometheus.yml")
    config["global"].update(scrape_interval="2s", scrape_timeout="2s", evaluation_interval="1s")
    config["rule_files"] = rule_files
    config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] = [alertmanager_url]
    config["scrape_configs"] = [
        dict(job, static_configs=[{"targets": [metrics]}])
        for job in config["scrape_configs"]
        if job["job_name"] == "suitcase"
    ]
    return yaml.safe_dump(config)


@pytest.fixture
def suitcase_up(tmp_path):
    """`suitcase up` on its own embedded broker, a simulated day per second (a year of
    days, so the feed outlasts the test: when it ends, `up` stops and the worker is down)."""
    port = free_port()
    paused = tmp_path / "paused-feeds"
    paused.write_text("")
    argv = [
        sys.executable, "-m", "streams.commands.cli", "up", "--metrics-port", str(port), "--speed", "1",
        "--scale", "0.05", "--weeks", "52", "--data-dir", str(tmp_path / "data"),
        "--paused-feeds-file", str(paused),
    ]
    url = f"http://127.0.0.1:{port}/metrics"

    def metrics() -> str:
        with urllib.request.urlopen(url, timeout=2) as answer:
            return answer.read().decode()

    with running(argv, url, tmp_path):
        eventually(lambda: "suitcase_events_accepted_total{" in metrics())
        yield f"127.0.0.1:{port}", paused


def test_dashboards_have_data_and_a_quiet_feed_notifies_the_operators(tmp_path, suitcase_up):
    metrics, paused = suitcase_up
    generated = render(FAST, profile="fast")
    rules = {name.rsplit("/", 1)[1]: text for name, text in generated.items() if name.endswith(".yml")}
    with WebhookReceiver() as hook, alertmanager(tmp_path / "am", alertmanager_config(hook.url)) as am:
        config = prometheus_config(metrics, am.removeprefix("http://"), sorted(rules))
        with prometheus(tmp_path / "prom", config, rules) as prom:
            eventually(lambda: prom.query('up{job="suitcase"} == 1'))

            # Every panel of every dashboard shows data.
            def empty_panels():
                return [(q["dashboard"], q["panel"], q["expr"]) for q in panel_queries(FAST)
                        if not prom.query(q["expr"])]

            try:
                eventually(lambda: not empty_panels() or None, attempts=480)
            except AssertionError:
                empty = empty_panels()
                print("\n".join(f"EMPTY {d} | {p} | {e}" for d, p, e in empty))
                assert empty == []  # names the panels that never had data
                raise
            assert not [a for a in prom.alerts() if a["labels"]["alertname"] == "SuitcaseFeedQuiet"]

            # One feed goes quiet while the others flow: the operators hear of it.
            paused.write_text(PAUSED_TOPIC + "\n")

            def quiet_notifications(status):
                return [a for s, a in hook.alerts("/operators")
                        if s == status and a["labels"]["alertname"] == "SuitcaseFeedQuiet"]

            try:
                firing = eventually(lambda: quiet_notifications("firing"), attempts=720)
            except AssertionError:  # say which alerts Prometheus had instead
                raise AssertionError(f"no SuitcaseFeedQuiet notification; alerts: {prom.alerts()}") from None
            labels = firing[0]["labels"]
            assert labels["topic"] == PAUSED_TOPIC
            assert labels["team"] == "operators" and labels["severity"] == "warning"
            assert "runbook_url" in firing[0]["annotations"]
            assert not [a for _, a in hook.alerts("/economists")
                        if a["labels"]["alertname"] == "SuitcaseFeedQuiet"]
            assert {a["labels"]["topic"] for a in quiet_notifications("firing")} == {PAUSED_TOPIC}

            # The feed comes back: the alert resolves.
            paused.write_text("")
            try:
                resolved = eventually(lambda: quiet_notifications("resolved"), attempts=720)
            except AssertionError:
                raise AssertionError(f"SuitcaseFeedQuiet never resolved; alerts: {prom.alerts()}") from None
            assert resolved[0]["labels"]["topic"] == PAUSED_TOPIC
