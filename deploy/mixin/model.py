"""Rule and group records shared by rules.py and alerts.py, and their YAML rendering.

PyYAML writes no comments, so the renderer emits each rule's ``why`` as a comment line
above it: recording rules have no annotations, and the reason a rule exists belongs beside
it in the file an operator reads.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field

import yaml


@dataclass(frozen=True)
class Rule:
    """One recording rule (``record``) or alerting rule (``alert``)."""

    expr: str
    why: str
    record: str | None = None
    alert: str | None = None
    for_: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.record or self.alert or ""

    def as_dict(self) -> dict:
        out: dict = {"record": self.record} if self.record else {"alert": self.alert}
        out["expr"] = _clean(self.expr)
        if self.for_:
            out["for"] = self.for_
        if self.labels:
            out["labels"] = dict(self.labels)
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        return out


@dataclass(frozen=True)
class Group:
    name: str
    rules: list[Rule]
    interval: str | None = None


def _clean(expr: str) -> str:
    text = textwrap.dedent(expr).strip("\n").rstrip()
    return text + "\n" if "\n" in text else text


class _Dumper(yaml.SafeDumper):
    pass


def _str_representer(dumper: yaml.SafeDumper, data: str):
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _str_representer)


def _dump(obj) -> str:
    return yaml.dump(obj, Dumper=_Dumper, sort_keys=False, default_flow_style=False,
                     width=100, allow_unicode=True)


def render_groups(groups: list[Group], header: str) -> str:
    """Prometheus rule-file YAML of ``groups``, each rule preceded by its ``why`` comment."""
    lines = [f"# {line}".rstrip() for line in header.strip().splitlines()]
    lines.append("groups:")
    for group in groups:
        head = {"name": group.name}
        if group.interval:
            head["interval"] = group.interval
        lines.append(textwrap.indent(_dump([head]).rstrip(), "  "))
        lines.append("    rules:")
        for rule in group.rules:
            for comment in textwrap.wrap(" ".join(rule.why.split()), 88):
                lines.append(f"      # {comment}")
            lines.append(textwrap.indent(_dump([rule.as_dict()]).rstrip(), "      "))
    return "\n".join(lines) + "\n"
