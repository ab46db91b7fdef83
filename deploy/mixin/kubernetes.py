"""The mixin's rules and alerts as one prometheus-operator ``PrometheusRule``
(deploy/kubernetes/prometheusrule.yaml), so the cluster runs exactly the generated rules."""

from __future__ import annotations

from . import alerts, rules
from .config import Config
from .model import Group, _dump

NAME = "suitcase"
#: Labels a Prometheus' ``ruleSelector`` can match (kube-prometheus-stack: add ``release``).
LABELS = {"app.kubernetes.io/name": "suitcase", "app.kubernetes.io/component": "monitoring",
          "prometheus": "suitcase"}


def _group(group: Group) -> dict:
    out: dict = {"name": group.name}
    if group.interval:
        out["interval"] = group.interval
    out["rules"] = [rule.as_dict() for rule in group.rules]
    return out


def prometheus_rule(config: Config, header: str) -> str:
    """YAML text of the PrometheusRule holding every recording rule and alert."""
    doc = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": NAME, "labels": dict(LABELS)},
        "spec": {"groups": [_group(g) for g in rules.groups(config) + alerts.groups(config)]},
    }
    comments = "".join(f"# {line}".rstrip() + "\n" for line in header.strip().splitlines())
    return comments + _dump(doc)
