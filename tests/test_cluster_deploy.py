"""The cluster deploy files, validated offline: the Dockerfile installs what bootstrap.sh
installs, both Compose variants pass Debian's `docker-compose config` (no daemon), the
Kubernetes kustomization renders and every manifest validates against its schema, and the
Grafana dashboards validate against Grafana's dashboard schema and a dashboard lint."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import tomllib
from pathlib import Path

import jsonschema
import pytest
import yaml

from streams.kafka.broker import DEADLETTER, ESTIMATES
from streams.pipeline.contract import DECLARATIONS, DEPARTURES, INSPECTIONS, TOPICS
from streams.kafka.tables import TABLE

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "deploy" / "compose"
KUBE = ROOT / "deploy" / "kubernetes"
CROSSING_TOPICS = (DEPARTURES, DECLARATIONS, INSPECTIONS)
APP_ID = "suitcase"
INTERNAL_TOPICS = (f"{APP_ID}-{TABLE}-changelog", f"{APP_ID}-__assignor-__leader")


def _tool(name: str) -> str:
    path = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else None)
    if path is None:
        pytest.fail(f"{name} is needed (./test installs docker-compose; kubectl at /usr/bin/kubectl)")
    return path


# --------------------------------------------------------------------------- Dockerfile


def _dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the root Dockerfile, continuation lines joined."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_dockerfile_installs_the_package_as_bootstrap_does_on_the_pinned_python():
    steps = _dockerfile()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    (base,) = [args for word, args in steps if word == "FROM"]
    m = re.fullmatch(r"python:(\d+)\.(\d+)\.(\d+)-slim(-\w+)?", base)
    assert m, f"base image {base!r} is not a version-pinned slim Python"
    bootstrap = (ROOT / "scripts" / "bootstrap.sh").read_text()
    wanted = re.search(r'PYTHON:-python(\d+\.\d+)', bootstrap).group(1)
    assert f"{m.group(1)}.{m.group(2)}" == wanted
    low, high = re.fullmatch(r">=(\d+\.\d+),<(\d+\.\d+)", project["requires-python"]).groups()
    version = tuple(int(x) for x in m.groups()[:2])
    assert tuple(map(int, low.split("."))) <= version < tuple(map(int, high.split(".")))

    # The same install as bootstrap.sh's run mode: `pip install <project root>`, no extras.
    assert re.search(r'pip install -q --disable-pip-version-check -e "\$root"\n', bootstrap)
    installs = [args for word, args in steps if word == "RUN" and "pip install ." in args]
    assert len(installs) == 1 and not re.search(r"pip install \.\[", installs[0])
    copied = " ".join(args for word, args in steps if word == "COPY")
    for needed in ("pyproject.toml", "README.md", *_packages(), ):
        assert needed in copied, f"{needed} is not copied into the image"


def _packages() -> list[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    return [p.rstrip("*") for p in config["packages"]["find"]["include"]]


def test_dockerfile_runs_suitcase_worker_as_a_non_root_user_with_a_healthcheck():
    from streams.commands.live import DEFAULT_METRICS_PORT

    steps = _dockerfile()
    users = [args for word, args in steps if word == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert [json.loads(args) for word, args in steps if word == "ENTRYPOINT"] == [["suitcase", "worker"]]
    (check,) = [args for word, args in steps if word == "HEALTHCHECK"]
    assert f"127.0.0.1:{DEFAULT_METRICS_PORT}/metrics" in check
    assert f"EXPOSE {DEFAULT_METRICS_PORT}" in (ROOT / "Dockerfile").read_text()
    ignored = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")]
    assert ignored[0] == "*" and {"!pyproject.toml", "!README.md"} <= set(ignored)
    assert {f"!{p}/" for p in _packages()} <= set(ignored)


# --------------------------------------------------------------------------- Compose


def _compose_config(*files: str, **env: str) -> dict:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SUITCASE_")}
    environ.update(env)
    args = [_tool("docker-compose")]
    for f in files:
        args += ["-f", str(COMPOSE / f)]
    done = subprocess.run([*args, "config"], capture_output=True, text=True, env=environ, cwd=COMPOSE)
    assert done.returncode == 0, done.stderr
    return yaml.safe_load(done.stdout)


def test_compose_refuses_to_render_without_the_pseudonym_key():
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SUITCASE_")}
    done = subprocess.run([_tool("docker-compose"), "-f", str(COMPOSE / "compose.yaml"), "config"],
                          capture_output=True, text=True, env=environ, cwd=COMPOSE)
    assert done.returncode != 0 and "SUITCASE_PSEUDONYM_KEY" in done.stderr


def test_compose_runs_three_kraft_brokers_the_topics_job_workers_and_monitoring():
    config = _compose_config("compose.yaml", SUITCASE_PSEUDONYM_KEY="k" * 64)
    services = config["services"]
    brokers = [s for name, s in services.items() if name.startswith("kafka-")]
    assert len(brokers) == 3
    voters = {b["environment"]["KAFKA_CONTROLLER_QUORUM_VOTERS"] for b in brokers}
    assert len(voters) == 1 and len(voters.pop().split(",")) == 3
    for b in brokers:
        env = b["environment"]
        assert re.fullmatch(r"apache/kafka:\d+\.\d+\.\d+", b["image"])
        assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
        assert str(env["KAFKA_DEFAULT_REPLICATION_FACTOR"]) == "3"
        assert str(env["KAFKA_MIN_INSYNC_REPLICAS"]) == "2"
        assert str(env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"]) == "3"
    assert len({b["environment"]["KAFKA_NODE_ID"] for b in brokers}) == 3

    worker = services["worker"]
    assert worker["build"]["dockerfile"] == "Dockerfile" and Path(worker["build"]["context"]) == ROOT
    assert worker["deploy"]["replicas"] >= 2
    assert worker["depends_on"]["topics"]["condition"] == "service_completed_successfully"
    args = worker["command"]
    assert "--no-create-topics" in args and "--metrics-host=0.0.0.0" in args
    assert worker["environment"]["SUITCASE_PSEUDONYM_KEY"] == "k" * 64
    partitions = {a.split("=")[1] for a in args if a.startswith("--partitions=")}
    assert partitions == {str(services["topics"]["environment"]["PARTITIONS"])}
    for image in ("prometheus", "alertmanager", "grafana"):
        assert re.search(r":v?\d+\.\d+\.\d+$", services[image]["image"]), services[image]["image"]
    mounts = " ".join(services["prometheus"]["volumes"])
    assert str(ROOT / "deploy" / "prometheus" / "rules") in mounts
    grafana = " ".join(services["grafana"]["volumes"])
    assert str(ROOT / "deploy" / "grafana" / "dashboards") in grafana

    prom = yaml.safe_load((COMPOSE / "prometheus.yml").read_text())
    (job,) = [j for j in prom["scrape_configs"] if j["job_name"] == "suitcase"]
    assert job["dns_sd_configs"][0]["names"] == ["worker"] and job["dns_sd_configs"][0]["port"] == 9108
    done = subprocess.run([_tool("promtool"), "check", "config", "--syntax-only", str(COMPOSE / "prometheus.yml")],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_compose_topics_job_creates_every_topic_with_its_policy():
    script = (COMPOSE / "create-topics.sh").read_text()
    assert subprocess.run(["bash", "-n", str(COMPOSE / "create-topics.sh")]).returncode == 0
    lines = [line for line in script.replace("\\\n", " ").splitlines() if not line.lstrip().startswith("#")]
    body = "\n".join(lines)
    loop = re.search(r"for topic in ([^;]+); do\s+create \"\$topic\" \"\$PARTITIONS\"", body)
    assert loop and tuple(loop.group(1).split()) == TOPICS  # crossing topics: one count, $PARTITIONS
    assert set(CROSSING_TOPICS) <= set(loop.group(1).split())
    assert re.search(rf"create {re.escape(DEADLETTER)} .*retention\.ms=", body)
    assert re.search(rf"create {re.escape(ESTIMATES)} .*cleanup\.policy=compact", body)
    for internal in INTERNAL_TOPICS:
        name = internal.replace(APP_ID, "$APP_ID", 1)
        assert re.search(rf'create "{re.escape(name)}" .*cleanup\.policy=compact', body), internal


def test_compose_tls_variant_renders_with_sasl_ssl_everywhere():
    config = _compose_config("compose.yaml", "compose.tls.yaml",
                             SUITCASE_PSEUDONYM_KEY="k" * 64, SUITCASE_KAFKA_SASL_PASSWORD="p")
    services = config["services"]
    for name in ("kafka-1", "kafka-2", "kafka-3"):
        env = services[name]["environment"]
        protocols = dict(p.split(":") for p in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
        listeners = {item.split("://")[0] for item in env["KAFKA_ADVERTISED_LISTENERS"].split(",")}
        assert {protocols[listener] for listener in listeners} <= {"SSL", "SASL_SSL"}
        assert env["KAFKA_SASL_ENABLED_MECHANISMS"] == "SCRAM-SHA-512"
        assert env["KAFKA_SSL_KEYSTORE_FILENAME"] == f"{name}.keystore.p12"
        assert any(v.endswith(":/etc/kafka/secrets:ro") for v in services[name]["volumes"])
    env = services["worker"]["environment"]
    assert env["SUITCASE_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert env["SUITCASE_KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
    assert env["SUITCASE_KAFKA_SASL_PASSWORD"] == "p"
    assert env["SUITCASE_KAFKA_SSL_CAFILE"].startswith("/run/secrets/")
    assert all(":9094" in a for a in services["worker"]["command"] if a.startswith("--broker="))
    assert "create-users.sh" in " ".join(services["topics"]["entrypoint"])
    for script in ("create-users.sh", "make-certs.sh"):
        assert subprocess.run(["bash", "-n", str(COMPOSE / script)]).returncode == 0


def test_make_certs_makes_a_ca_that_signs_every_broker_keystore(tmp_path):
    for tool in ("openssl", "keytool"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not installed (make-certs.sh needs openssl and a JDK's keytool)")
    done = subprocess.run(["bash", str(COMPOSE / "make-certs.sh"), str(tmp_path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    password = (tmp_path / "keystore.password").read_text()
    for name in ("kafka-1", "kafka-2", "kafka-3", "admin"):
        verified = subprocess.run(["openssl", "verify", "-CAfile", str(tmp_path / "ca.crt"), str(tmp_path / f"{name}.crt")],
                                  capture_output=True, text=True)
        assert verified.returncode == 0, verified.stdout + verified.stderr
        listed = subprocess.run(["keytool", "-list", "-storetype", "PKCS12", "-keystore",
                                 str(tmp_path / f"{name}.keystore.p12"), "-storepass", password],
                                capture_output=True, text=True)
        assert listed.returncode == 0 and "PrivateKeyEntry" in listed.stdout
    san = subprocess.run(["openssl", "x509", "-noout", "-ext", "subjectAltName", "-in", str(tmp_path / "kafka-2.crt")],
                         capture_output=True, text=True).stdout
    assert "DNS:kafka-2" in san
    env = (tmp_path / "env").read_text()
    assert re.fullmatch(r"export SUITCASE_KAFKA_SASL_PASSWORD=[0-9a-f]{48}\n", env)
    assert shlex.split((tmp_path / "admin.properties").read_text())[0] == "security.protocol=SSL"


# --------------------------------------------------------------------------- Kubernetes


@pytest.fixture(scope="module")
def manifests() -> list[dict]:
    done = subprocess.run([_tool("kubectl"), "kustomize", str(KUBE)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return [d for d in yaml.safe_load_all(done.stdout) if d]


def _crd_schema(doc: dict) -> dict | None:
    group, _, version = doc["apiVersion"].rpartition("/")
    path = KUBE / "schemas" / f"{group}_{version}_{doc['kind'].lower()}.json"
    return json.loads(path.read_text()) if group and path.exists() else None


def test_every_rendered_manifest_validates_against_its_schema(manifests):
    import kubernetes_validate

    kinds = set()
    for doc in manifests:
        kinds.add(doc["kind"])
        if "." in doc["apiVersion"].split("/")[0] and doc["apiVersion"].split("/")[0] not in ("apps", "policy"):
            schema = _crd_schema(doc)
            assert schema is not None, f"no vendored schema for {doc['apiVersion']} {doc['kind']}"
            jsonschema.Draft7Validator(schema).validate(doc)
        else:
            kubernetes_validate.validate(doc, "1.32.0", strict=True)
    assert kinds == {"Namespace", "Secret", "Deployment", "PodDisruptionBudget", "Kafka", "KafkaNodePool",
                     "KafkaTopic", "KafkaUser", "PodMonitor", "PrometheusRule"}


def test_a_broken_manifest_fails_validation(manifests):
    import kubernetes_validate

    (kafka,) = [d for d in manifests if d["kind"] == "Kafka"]
    broken = json.loads(json.dumps(kafka))
    broken["spec"]["kafka"]["listeners"][0]["type"] = "sideways"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft7Validator(_crd_schema(broken)).validate(broken)
    (deployment,) = [d for d in manifests if d["kind"] == "Deployment"]
    broken = json.loads(json.dumps(deployment))
    broken["spec"]["replicas"] = "three"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, "1.32.0", strict=True)


def test_kubernetes_kafka_topics_user_and_workers_fit_together(manifests):
    by_kind: dict[str, list[dict]] = {}
    for doc in manifests:
        by_kind.setdefault(doc["kind"], []).append(doc)
        assert doc["kind"] == "Namespace" or doc["metadata"]["namespace"] == "suitcase"
    (kafka,) = by_kind["Kafka"]
    cluster = kafka["metadata"]["name"]
    assert kafka["metadata"]["annotations"]["strimzi.io/kraft"] == "enabled"
    config = kafka["spec"]["kafka"]["config"]
    assert (config["default.replication.factor"], config["min.insync.replicas"]) == (3, 2)
    roles = {tuple(p["spec"]["roles"]): p["spec"]["replicas"] for p in by_kind["KafkaNodePool"]}
    assert roles == {("controller",): 3, ("broker",): 3}
    topics = {t["spec"]["topicName"]: t["spec"] for t in by_kind["KafkaTopic"]}
    assert set(topics) == {*TOPICS, DEADLETTER, ESTIMATES, *INTERNAL_TOPICS}
    assert len({topics[t]["partitions"] for t in CROSSING_TOPICS}) == 1
    assert topics[INTERNAL_TOPICS[0]]["partitions"] == topics[DEPARTURES]["partitions"]
    assert "retention.ms" in topics[DEADLETTER]["config"]
    for name in (ESTIMATES, *INTERNAL_TOPICS):
        assert topics[name]["config"]["cleanup.policy"] == "compact"
    assert all(t["metadata"]["labels"]["strimzi.io/cluster"] == cluster for t in by_kind["KafkaTopic"])

    (user,) = by_kind["KafkaUser"]
    assert user["spec"]["authentication"]["type"] == "scram-sha-512"
    listener = kafka["spec"]["kafka"]["listeners"][0]
    assert listener["tls"] and listener["authentication"]["type"] == "scram-sha-512"
    readable = {a["resource"].get("name") for a in user["spec"]["authorization"]["acls"] if "Read" in a["operations"]}
    assert set(TOPICS) <= readable

    (deployment,) = by_kind["Deployment"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    args = container["args"]
    assert f"--broker=kafka://{cluster}-kafka-bootstrap:{listener['port']}" in args
    assert f"--partitions={topics[DEPARTURES]['partitions']}" in args and "--no-create-topics" in args
    env = {e["name"]: e for e in container["env"]}
    assert env["SUITCASE_KAFKA_SASL_USERNAME"]["value"] == user["metadata"]["name"]
    assert env["SUITCASE_KAFKA_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == user["metadata"]["name"]
    (secret,) = by_kind["Secret"]
    assert env["SUITCASE_PSEUDONYM_KEY"]["valueFrom"]["secretKeyRef"]["name"] == secret["metadata"]["name"]
    assert "SUITCASE_PSEUDONYM_KEY" in secret["data"]
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert container[probe]["httpGet"] == {"path": "/metrics", "port": "metrics"}
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {"metrics": 9108}
    assert container["resources"]["limits"]["memory"] and container["resources"]["requests"]["cpu"]
    assert deployment["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
    (pdb,) = by_kind["PodDisruptionBudget"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    (monitor,) = by_kind["PodMonitor"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= labels.items()
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    assert endpoint["port"] == "metrics"
    assert {"targetLabel": "job", "replacement": "suitcase", "action": "replace"} in endpoint["relabelings"]


def test_prometheus_rule_holds_exactly_the_generated_rule_files(manifests):
    from deploy.mixin import ALERTS_FILE, RULES_FILE, render

    (rule,) = [d for d in manifests if d["kind"] == "PrometheusRule"]
    files = render()
    expected = [g for rel in (RULES_FILE, ALERTS_FILE) for g in yaml.safe_load(files[rel])["groups"]]
    assert rule["spec"]["groups"] == expected
    names = {r.get("alert") for g in expected for r in g["rules"]}
    assert "SuitcaseCrossingsUnjoined" in names


# --------------------------------------------------------------------------- Grafana


def _dashboard_schema() -> dict:
    schema = json.loads((ROOT / "deploy" / "grafana" / "schema" / "dashboard.jsonschema.json").read_text())
    # Grafana's CUE says `value?: _` and `options?: _` (any value: a unit string, a field
    # name); the generated JSON schema says object. Read them as any value.
    schema["definitions"]["DynamicConfigValue"]["properties"]["value"] = {}
    schema["definitions"]["MatcherConfig"]["properties"]["options"] = {}
    return schema


def _dashboards() -> dict[str, dict]:
    return {p.name: json.loads(p.read_text()) for p in sorted((ROOT / "deploy" / "grafana" / "dashboards").glob("*.json"))}


def test_dashboards_validate_against_grafanas_dashboard_schema():
    validator = jsonschema.Draft7Validator(_dashboard_schema())
    dashboards = _dashboards()
    assert len(dashboards) == 2
    for name, model in dashboards.items():
        errors = [f"{list(e.absolute_path)}: {e.message[:200]}" for e in validator.iter_errors(model)]
        assert errors == [], name
    broken = json.loads(json.dumps(next(iter(dashboards.values()))))
    broken["panels"][0]["gridPos"] = {"h": "tall"}
    assert list(validator.iter_errors(broken))


def _lint(model: dict) -> list[str]:
    """Rules in the spirit of grafana/dashboard-linter."""
    problems = []
    variables = {v["name"]: v for v in model["templating"]["list"]}
    ds = variables.get("datasource")
    if not ds or ds["type"] != "datasource" or ds.get("query") != "prometheus":
        problems.append("template-datasource-rule: no Prometheus data source variable")
    if "job" not in variables:
        problems.append("template-job-rule: no job variable")
    if not re.fullmatch(r"[a-z0-9-]{8,40}", model.get("uid") or ""):
        problems.append(f"uid-rule: {model.get('uid')!r} is not a stable slug")
    for panel in model["panels"]:
        if panel["type"] == "row":
            continue
        title = panel["title"]
        if (panel.get("datasource") or {}).get("uid") != "${datasource}":
            problems.append(f"panel-datasource-rule: {title}")
        if not panel.get("fieldConfig", {}).get("defaults", {}).get("unit"):
            problems.append(f"panel-units-rule: {title}")
        if not panel.get("description"):
            problems.append(f"panel-description-rule: {title}")
        for target in panel.get("targets", []):
            if (target.get("datasource") or {}).get("uid") not in (None, "${datasource}"):
                problems.append(f"target-datasource-rule: {title}")
            if re.search(r'\b(job|instance)\s*(=|=~|!=|!~)\s*"(?!\$)', target["expr"]):
                problems.append(f"target-job-instance-rule: {title}: {target['expr'][:60]}")
    for var in model["templating"]["list"]:
        query = var.get("query") if isinstance(var.get("query"), str) else ""
        if re.search(r'\b(job|instance)\s*(=|=~|!=|!~)\s*"(?!\$)', query):
            problems.append(f"template-query-rule: {var['name']}")
    return problems


def test_dashboards_pass_the_lint():
    uids = set()
    for name, model in _dashboards().items():
        assert _lint(model) == [], name
        uids.add(model["uid"])
        assert name == f"{model['uid']}.json"  # the uid is the file's name: stable across regenerations
    assert uids == {"suitcase-estimates", "suitcase-operations"}


def test_the_lint_catches_what_it_claims():
    model = json.loads(json.dumps(_dashboards()["suitcase-operations.json"]))
    panel = next(p for p in model["panels"] if p["type"] != "row" and p.get("targets"))
    panel["fieldConfig"]["defaults"].pop("unit", None)
    panel["targets"][0]["expr"] = 'up{job="suitcase",instance="w1:9108"}'
    panel["datasource"] = {"type": "prometheus", "uid": "prod-prometheus"}
    model["templating"]["list"] = [v for v in model["templating"]["list"] if v["name"] != "datasource"]
    rules = {p.split(":")[0] for p in _lint(model)}
    assert {"template-datasource-rule", "panel-units-rule", "panel-datasource-rule",
            "target-job-instance-rule"} <= rules
