"""The layout's rules, checked on the source: estimators/ is the ground floor, and only
streams/kafka/ talks to Kafka (so the pipeline runs, and is tested, without a broker)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
KAFKA_CLIENTS = {"aiokafka", "faust", "kafka", "confluent_kafka", "mode"}


def imports(path: Path) -> set[str]:
    """Top-level package names a module imports (anywhere in it, lazily too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
    return found


def modules(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


@pytest.mark.parametrize("path", modules("estimators"), ids=lambda p: str(p.relative_to(ROOT)))
def test_estimators_import_nothing_from_the_rest(path):
    above = {name for name in imports(path) if name.split(".")[0] in {"streams", "deploy", "tests", "bench"}}
    assert not above, f"{path.relative_to(ROOT)} imports {sorted(above)}"


@pytest.mark.parametrize("path", [p for p in modules("streams") + modules("estimators") + modules("deploy")
                                  if "streams/kafka" not in p.as_posix()], ids=lambda p: str(p.relative_to(ROOT)))
def test_only_streams_kafka_imports_a_kafka_client(path):
    clients = {name for name in imports(path) if name.split(".")[0] in KAFKA_CLIENTS}
    assert not clients, f"{path.relative_to(ROOT)} imports {sorted(clients)}"


def test_the_kafka_package_is_where_the_clients_are():
    users = {p.name for p in modules("streams/kafka") if {n.split(".")[0] for n in imports(p)} & KAFKA_CLIENTS}
    assert {"app.py", "worker.py", "broker.py", "feed.py"} <= users
