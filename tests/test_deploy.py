"""deploy/: the generated monitoring mixin is up to date, valid, tested and routed.

Needs Debian's ``prometheus`` and ``prometheus-alertmanager`` packages (promtool, amtool);
``./test`` installs them. Without them these tests fail and say so, rather than skip.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from deploy.mixin import DEFAULT, FAST, render  # noqa: E402
from deploy.mixin import panel_queries  # noqa: E402
from deploy.mixin.config import TEAM_ECONOMISTS, TEAM_OPERATORS  # noqa: E402
from deploy.mixin.dashboards import dashboards  # noqa: E402

RULES = DEPLOY / "prometheus/rules/suitcase-rules.yml"
ALERTS = DEPLOY / "prometheus/rules/suitcase-alerts.yml"
UNIT_TESTS = sorted((DEPLOY / "prometheus/tests").glob("*.yml"))
ALERTMANAGER = DEPLOY / "alertmanager/alertmanager.yml"
RECEIVER_OF_TEAM = {TEAM_ECONOMISTS: "economists", TEAM_OPERATORS: "operators"}

#: The metric contract agreed with the worker (deploy/README.md, "Metrics").
CONTRACT_METRICS = {
    "up",
    "suitcase_build_info",
    "suitcase_estimate_usd",
    "suitcase_estimate_ci_low_usd",
    "suitcase_estimate_ci_high_usd",
    "suitcase_estimate_std_error_usd",
    "suitcase_formal_exports_usd",
    "suitcase_estimate_recent_range_usd",
    "suitcase_estimate_revision_usd",
    "suitcase_events_accepted_total",
    "suitcase_events_duplicate_total",
    "suitcase_events_rejected_total",
    "suitcase_deadletter_total",
    "suitcase_events_late_total",
    "suitcase_events_held",
    "suitcase_newest_event_timestamp_seconds",
    "suitcase_last_event_processed_timestamp_seconds",
    "suitcase_event_lag_seconds_bucket",
    "suitcase_random_inspections",
    "suitcase_departures",
    "suitcase_consumer_lag_messages",
    "suitcase_estimates_published_total",
    "suitcase_worker_healthy",
    "suitcase_internal_records_invalid_total",
    "suitcase_changelog_tombstones_total",
}
#: Label names that would identify a person, a card or a crossing: never in monitoring.
IDENTIFYING = re.compile(r"travel|card|crossing|passport|person", re.IGNORECASE)


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: run ./test, or apt-get install prometheus "
                    "prometheus-alertmanager (CI installs them)", pytrace=False)
    return path


def run(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=False)


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, f"{result.args}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text("utf-8"))


def rules_of(path: Path) -> list[dict]:
    return [rule for group in load(path)["groups"] for rule in group["rules"]]


def alerts() -> list[dict]:
    return rules_of(ALERTS)


def recorded_names() -> set[str]:
    return {rule["record"] for rule in rules_of(RULES)}


def configured_holds(config) -> set[str]:
    """The ``for`` durations a mixin profile configures (its ``*_for`` fields)."""
    return {getattr(config, f.name) for f in dataclasses.fields(config) if f.name.endswith("_for")}


def duration_seconds(text: str) -> int:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    return sum(int(n) * units[u] for n, u in re.findall(r"(\d+)([smhd])", text))


def label_names(expr: str) -> set[str]:
    """Label names a PromQL expression or legend mentions."""
    names = set(re.findall(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)\s*\"", expr))
    for group in re.findall(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)",
                            expr):
        names |= {n.strip() for n in group.split(",") if n.strip()}
    names |= set(re.findall(r"label_replace\([^,]+,\s*\"([^\"]+)\"", expr))
    names |= set(re.findall(r"\{\{\s*\.?\$?(?:labels\.)?([A-Za-z_][A-Za-z0-9_]*)\s*\}\}", expr))
    return names


# --- generation ------------------------------------------------------------------------


def test_generated_files_are_up_to_date():
    result = run(sys.executable, "-m", "deploy.mixin", "--check")
    assert result.returncode == 0, (
        "generated files differ from deploy/mixin; run `python -m deploy.mixin` and commit:\n"
        + result.stderr)


def test_fast_profile_generates_valid_rules_with_short_durations(tmp_path):
    files = render(FAST, "fast")
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    ok(run(tool("promtool"), "check", "rules", *(str(tmp_path / r) for r in files
                                                 if r.endswith(".yml"))))
    for group in yaml.safe_load(files["prometheus/rules/suitcase-alerts.yml"])["groups"]:
        for rule in group["rules"]:
            assert rule["for"] in configured_holds(FAST), rule["alert"]  # the profile's, none left at default
    assert ":rate30s" in files["prometheus/rules/suitcase-rules.yml"]


# --- Prometheus --------------------------------------------------------------------------


def test_promtool_check_rules():
    ok(run(tool("promtool"), "check", "rules", str(RULES), str(ALERTS)))


def test_promtool_unit_tests_pass():
    assert UNIT_TESTS, "no promtool tests in deploy/prometheus/tests"
    ok(run(tool("promtool"), "test", "rules", *map(str, UNIT_TESTS)))


def test_promtool_check_config():
    ok(run(tool("promtool"), "check", "config", str(DEPLOY / "prometheus/prometheus.yml")))


def test_prometheus_config_loads_every_generated_rule_file_and_scrapes_job_suitcase():
    config = load(DEPLOY / "prometheus/prometheus.yml")
    assert set(config["rule_files"]) == {"rules/suitcase-rules.yml", "rules/suitcase-alerts.yml"}
    assert DEFAULT.job in {job["job_name"] for job in config["scrape_configs"]}
    assert config["alerting"]["alertmanagers"]


def test_every_alert_has_a_firing_and_a_just_silent_unit_test():
    """Each alert: silent one evaluation before its `for` ends, firing when it ends."""
    evals: dict[str, list[tuple[str, int, bool]]] = {}
    for path in UNIT_TESTS:
        spec = load(path)
        step = duration_seconds(spec.get("evaluation_interval", "1m"))
        for test in spec["tests"]:
            for case in test.get("alert_rule_test", []):
                evals.setdefault(case["alertname"], []).append(
                    (test["name"], duration_seconds(case["eval_time"]), bool(case["exp_alerts"])))
        for test in spec["tests"]:
            for case in test.get("alert_rule_test", []):
                for alert in case["exp_alerts"]:
                    assert alert.get("exp_annotations"), f"{test['name']}: annotations not asserted"
                    assert alert.get("exp_labels"), f"{test['name']}: labels not asserted"
    for rule in alerts():
        name = rule["alert"]
        cases = evals.get(name, [])
        firing = {(test, t) for test, t, fires in cases if fires}
        silent = {(test, t) for test, t, fires in cases if not fires}
        assert firing, f"{name}: no promtool test where it fires"
        assert any((test, t - step) in silent for test, t in firing), (
            f"{name}: no test showing it silent one evaluation before it fires")


def test_every_recording_rule_has_a_unit_test():
    tested = set()
    for path in UNIT_TESTS:
        for test in load(path)["tests"]:
            for case in test.get("promql_expr_test", []):
                tested |= set(re.findall(r"[a-z_]+:[a-z0-9_]+:[a-z0-9_]+", case["expr"]))
    # The bucket rate is checked through the quantiles computed from it.
    untested = recorded_names() - tested - {"topic_le:suitcase_event_lag_seconds_bucket:rate5m"}
    assert not untested, f"recording rules without a promtool test: {sorted(untested)}"


def test_recording_rules_are_named_level_metric_operations_and_say_why():
    text = RULES.read_text()
    for name in recorded_names():
        assert re.fullmatch(r"[a-z_]+:[a-z0-9_]+:[a-z0-9_]+", name), name
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.strip().startswith("- record:"):
            assert lines[i - 1].strip().startswith("#"), f"no comment saying why: {line}"


def test_alerts_follow_the_conventions():
    names = set()
    for rule in alerts():
        name = rule["alert"]
        names.add(name)
        assert re.fullmatch(r"Suitcase([A-Z][a-z0-9]+)+", name), name
        assert rule["for"] in configured_holds(DEFAULT), name  # every hold comes from Config
        labels, notes = rule["labels"], rule["annotations"]
        assert labels["severity"] in {"critical", "warning", "info"}, name
        assert labels["team"] in RECEIVER_OF_TEAM, name
        assert "{{" not in notes["summary"] and len(notes["summary"]) <= 80, name
        assert "$value" in notes["description"], name
        assert notes["runbook_url"] == DEFAULT.runbook_url(name), name
    assert {"SuitcaseEstimateJump", "SuitcaseFeedQuiet", "SuitcaseRejectRateHigh",
            "SuitcaseConsumerLagGrowing", "SuitcaseWorkerDown",
            "SuitcaseInspectionsTooFew", "SuitcaseEventsHeldForRate"} <= names


def test_every_alert_has_a_runbook_section_in_the_readme():
    readme = (DEPLOY / "README.md").read_text()
    headings = {h.strip().lower() for h in re.findall(r"^#+\s+(.+)$", readme, re.MULTILINE)}
    for rule in alerts():
        anchor = rule["annotations"]["runbook_url"].rsplit("#", 1)[1]
        assert anchor in headings, f"deploy/README.md has no heading {rule['alert']}"


def test_estimate_alerts_go_to_economists_pipeline_alerts_to_operators():
    economists = {r["alert"] for r in alerts() if r["labels"]["team"] == TEAM_ECONOMISTS}
    assert {"SuitcaseEstimateJump", "SuitcaseInspectionsTooFew"} <= economists
    assert not economists & {"SuitcaseWorkerDown", "SuitcaseFeedQuiet", "SuitcaseRejectRateHigh",
                             "SuitcaseConsumerLagGrowing", "SuitcaseEventsHeldForRate"}


# --- Alertmanager ------------------------------------------------------------------------


def test_amtool_check_config():
    ok(run(tool("amtool"), "check-config", str(ALERTMANAGER)))


@pytest.mark.parametrize("rule", alerts(), ids=lambda r: r["alert"])
def test_amtool_routes_each_alert_to_its_team(rule):
    expected = RECEIVER_OF_TEAM[rule["labels"]["team"]]
    labels = [f"alertname={rule['alert']}"] + [f"{k}={v}" for k, v in rule["labels"].items()]
    out = ok(run(tool("amtool"), "config", "routes", "test", f"--config.file={ALERTMANAGER}",
                 f"--verify.receivers={expected}", *labels))
    assert out.split() == [expected]


def test_amtool_routes_an_unknown_alert_to_operators_and_not_to_economists():
    out = ok(run(tool("amtool"), "config", "routes", "test", f"--config.file={ALERTMANAGER}",
                 "alertname=SomethingNew", "severity=warning"))
    assert out.split() == ["operators"]
    wrong = run(tool("amtool"), "config", "routes", "test", f"--config.file={ALERTMANAGER}",
                "--verify.receivers=economists", "alertname=SuitcaseWorkerDown", "team=operators")
    assert wrong.returncode != 0


def test_worker_down_inhibits_feed_and_lag_alerts():
    config = load(ALERTMANAGER)
    names = {r["alert"] for r in alerts()}
    inhibited = set()
    for rule in config["inhibit_rules"]:
        if 'alertname="SuitcaseWorkerDown"' in rule["source_matchers"]:
            for matcher in rule["target_matchers"]:
                pattern = re.fullmatch(r'alertname=~"(.+)"', matcher).group(1)
                inhibited |= {n for n in names if re.fullmatch(pattern, n)}
    assert {"SuitcaseFeedQuiet", "SuitcaseConsumerLagGrowing", "SuitcaseEventLagHigh"} <= inhibited
    assert "SuitcaseWorkerDown" not in inhibited


# --- Grafana -----------------------------------------------------------------------------


def test_dashboards_have_stable_uids_and_every_panel_a_promql_target():
    models = dashboards(DEFAULT)
    assert {m["uid"] for m in models.values()} == {"suitcase-estimates", "suitcase-operations"}
    for model in models.values():
        ids = []
        for panel in model["panels"]:
            ids.append(panel["id"])
            if panel["type"] == "row":
                continue
            targets = panel.get("targets") or []
            assert targets, f"{model['uid']}: panel {panel['title']!r} has no target"
            assert all(t.get("expr", "").strip() for t in targets), panel["title"]
            assert len({t["refId"] for t in targets}) == len(targets), panel["title"]
        assert len(ids) == len(set(ids)), f"{model['uid']}: duplicate panel ids"


def test_economists_dashboard_has_the_band_and_a_geomap_of_posts():
    model = dashboards(DEFAULT)["suitcase-estimates.json"]
    panels = {p["title"]: p for p in model["panels"]}
    band = panels["Informal estimate, 95% band, and formal exports"]
    overrides = json.dumps(band["fieldConfig"]["overrides"])
    assert "custom.fillBelowTo" in overrides
    geo = [p for p in model["panels"] if p["type"] == "geomap"]
    assert len(geo) == 1
    layer = geo[0]["options"]["layers"][0]
    assert layer["location"] == {"mode": "coords", "latitude": "latitude",
                                 "longitude": "longitude"}
    assert "border_post:suitcase_location:info" in geo[0]["targets"][0]["expr"]
    assert {v["name"] for v in model["templating"]["list"]} >= {"period", "domain", "key"}


def test_informal_per_formal_dollar_is_a_ratio_not_a_percentage():
    """3.38 informal dollars per formal dollar shows as 3.38, not 338%; shares stay in %."""
    model = dashboards(DEFAULT)["suitcase-estimates.json"]
    panels = {p["title"]: p for p in model["panels"]}
    for title in ("Informal per formal dollar", "Informal per formal dollar by $domain"):
        assert panels[title]["fieldConfig"]["defaults"]["unit"] == "none", title
    assert "percentunit" not in json.dumps([p for t, p in panels.items() if "per formal dollar" in t])
    assert panels["Precision (±)"]["fieldConfig"]["defaults"]["unit"] == "percentunit"


def test_dashboards_default_to_the_provisioned_datasource():
    provisioned = load(DEPLOY / "grafana/provisioning/datasources/prometheus.yml")
    assert provisioned["datasources"][0]["uid"] == DEFAULT.datasource_uid
    for model in dashboards(DEFAULT).values():
        ds = next(v for v in model["templating"]["list"] if v["name"] == "datasource")
        assert ds["current"]["value"] == DEFAULT.datasource_uid
    provider = load(DEPLOY / "grafana/provisioning/dashboards/suitcase.yml")
    assert provider["providers"][0]["type"] == "file"


def test_every_panel_expression_parses(tmp_path):
    queries = panel_queries()
    assert queries and not any("$" in q["expr"] for q in queries)
    rules = {"groups": [{"name": "panels", "rules": [
        {"record": f"panel:check_{i}:expr", "expr": q["expr"]} for i, q in enumerate(queries)
    ]}]}
    path = tmp_path / "panels.yml"
    path.write_text(yaml.safe_dump(rules))
    ok(run(tool("promtool"), "check", "rules", str(path)))


def test_panels_use_only_contract_metrics_and_generated_recording_rules():
    known = CONTRACT_METRICS | recorded_names()
    for q in panel_queries():
        names = set(re.findall(r"[a-z_]*suitcase[a-z0-9_:]*|[a-z_]+:[a-z0-9_]+:[a-z0-9_]+",
                               q["expr"]))
        names |= set(re.findall(r"\bup\b", q["expr"]))
        unknown = {n for n in names if n not in known and n != "suitcase"}
        assert not unknown, f"{q['panel']}: unknown metric {unknown} in {q['expr']}"


def test_no_label_identifies_a_traveller_card_or_crossing():
    texts = [rule["expr"] for rule in rules_of(RULES) + alerts()]
    texts += [key for rule in rules_of(RULES) + alerts() for key in rule.get("labels", {})]
    texts += [q["expr"] for q in panel_queries(resolved=False)]
    for model in dashboards(DEFAULT).values():
        for panel in model["panels"]:
            texts += [t.get("legendFormat", "") for t in panel.get("targets") or []]
    for rule in alerts():
        texts += list(rule["annotations"].values())
    for text in texts:
        bad = {n for n in label_names(text) if IDENTIFYING.search(n)}
        assert not bad, f"identifying label {bad} in {text}"
