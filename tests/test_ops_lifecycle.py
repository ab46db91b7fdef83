"""How ``suitcase up`` and ``suitcase worker`` start and stop: stop signals end everything
they started (the embedded broker included), a lost broker stops them loudly, and they
refuse to start without a pseudonym key or on badly partitioned topics."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from streams.kafka.broker import (
    DEADLETTER, DECLARATIONS, DEPARTURES, INSPECTIONS, EmbeddedBroker, create_topics, free_port,
)
from streams.commands.cli import main

pytestmark = pytest.mark.broker

#: How long a test waits for a process to get somewhere before it gives up (a bound
#: against hanging, not a speed figure).
WAIT_S = 120


def children(pid: int) -> dict[int, int]:
    """pid -> parent pid of every process descended from ``pid`` (walking /proc)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    found, frontier = {}, [pid]
    while frontier:
        parent = frontier.pop()
        for child, ppid in parents.items():
            if ppid == parent and child not in found:
                found[child] = ppid
                frontier.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def command_of(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def until(condition, what: str, process: subprocess.Popen | None = None):
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the process exited ({process.returncode}) before {what}")
        time.sleep(0.2)
    raise AssertionError(f"gave up waiting for {what}")


def metrics(port: int, host: str = "127.0.0.1") -> str:
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=2) as answer:
            return answer.read().decode()
    except OSError:
        return ""


class Started:
    """A ``suitcase`` subprocess with its output in files."""

    def __init__(self, argv: list[str], tmp: Path, env: dict | None = None) -> None:
        self.out, self.err = tmp / "stdout.txt", tmp / "stderr.txt"
        with open(self.out, "wb") as out, open(self.err, "wb") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "streams.commands.cli", *argv], stdout=out, stderr=err,
                stdin=subprocess.DEVNULL, env={**os.environ, **(env or {})}, cwd=tmp,
            )

    def wait(self) -> int:
        try:
            return self.process.wait(timeout=WAIT_S)
        except subprocess.TimeoutExpired:
            self.kill_all()
            raise AssertionError(f"did not exit; stderr: {self.stderr()[-2000:]}") from None

    def kill_all(self) -> None:
        for pid in children(self.process.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        self.process.kill()
        self.process.wait()

    def stderr(self) -> str:
        return self.err.read_text(errors="replace")

    def stdout(self) -> str:
        return self.out.read_text(errors="replace")

    def __enter__(self) -> "Started":
        return self

    def __exit__(self, *exc) -> None:
        if self.process.poll() is None:
            self.kill_all()


def listening_address(port: int) -> set[str]:
    """Local addresses (hex, as /proc/net/tcp* write them) listening on ``port``."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, _, hexport = local.rpartition(":")
            if state == "0A" and int(hexport, 16) == port:
                found.add(address)
    return found


def error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("suitcase: error:")]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_a_stop_signal_ends_up_and_everything_it_started(tmp_path, signum):
    port = free_port()
    env = {"SUITCASE_PSEUDONYM_KEY": ""}  # not set: up makes one in its data directory
    argv = ["up", "--metrics-port", str(port), "--speed", "1", "--scale", "0.02", "--data-dir", str(tmp_path / "data")]
    with Started(argv, tmp_path, env) as up:
        until(lambda: "suitcase_build_info" in metrics(port), "metrics are served", up.process)
        started = children(up.process.pid)
        brokers = [pid for pid in started if "tansu" in command_of(pid)]
        assert len(brokers) == 1, started
        # metrics on loopback only (the default --metrics-host)
        assert listening_address(port) == {"0100007F"}
        up.process.send_signal(signum)
        code = up.wait()
    assert code == 0, up.stderr()[-2000:]
    assert f"stopped ({signal.Signals(signum).name})" in up.stdout()
    survivors = [pid for pid in started if alive(pid)]
    assert survivors == [], [command_of(pid) for pid in survivors]
    assert not error_lines(up.stderr())
    # the key made for the embedded default: kept under the data directory, mode 0600
    key = tmp_path / "data" / "pseudonym.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and len(key.read_text().strip()) == 64
    assert "SUITCASE_PSEUDONYM_KEY is not set" in up.stderr()


def test_up_stops_loudly_when_its_broker_dies(tmp_path):
    port = free_port()
    argv = ["up", "--metrics-port", str(port), "--speed", "1", "--scale", "0.02", "--data-dir", str(tmp_path / "data")]
    with Started(argv, tmp_path) as up:
        until(lambda: "suitcase_build_info" in metrics(port), "metrics are served", up.process)
        started = children(up.process.pid)
        (broker,) = [pid for pid in started if "tansu" in command_of(pid)]
        os.kill(broker, signal.SIGKILL)
        code = up.wait()
    assert code == 1
    lines = error_lines(up.stderr())
    assert lines == [
        "suitcase: error: the embedded broker exited (killed by SIGKILL); its memory storage is gone, "
        "so no estimates are published from partial data"
    ]
    assert [pid for pid in started if alive(pid)] == []


def test_a_worker_stops_loudly_when_the_cluster_restarted_empty(tmp_path):
    from kafka import KafkaProducer

    from streams.kafka.feed import key_of
    from tests.events import line

    first = EmbeddedBroker().start()
    port, metrics_port = first.port, free_port()
    try:
        create_topics(first.bootstrap)
        argv = ["worker", "--broker", first.url, "--metrics-port", str(metrics_port), "--app-id", "restart-test",
                "--data-dir", str(tmp_path / "data")]
        with Started(argv, tmp_path, {"SUITCASE_PSEUDONYM_KEY": "test-key"}) as worker:
            until(lambda: "suitcase_build_info" in metrics(metrics_port), "metrics are served", worker.process)
            producer = KafkaProducer(bootstrap_servers=first.bootstrap)
            for i in range(20):
                raw = line(DEPARTURES, event_id=f"dep-{i}", crossing_id=f"x-{i}")
                producer.send(DEPARTURES, key=key_of(DEPARTURES, raw), value=raw)
            producer.flush()
            producer.close()
            until(lambda: 'suitcase_events_accepted_total{topic="border.departures"} 20.0' in metrics(metrics_port),
                  "the worker processed the departures", worker.process)
            time.sleep(3)  # a pass of the worker's data-loss watch (every 2 s) sees the offsets
            first.stop()
            first = EmbeddedBroker(port=port).start()  # the same address, empty
            code = worker.wait()
    finally:
        first.stop()
    assert code == 1
    lines = error_lines(worker.stderr())
    assert len(lines) == 1 and "the broker lost its data" in lines[0], worker.stderr()[-2000:]


def test_a_worker_refuses_to_start_without_a_pseudonym_key(capsys, monkeypatch):
    monkeypatch.delenv("SUITCASE_PSEUDONYM_KEY", raising=False)
    assert main(["worker", "--broker", "kafka://127.0.0.1:1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "SUITCASE_PSEUDONYM_KEY is not set" in err


def test_the_embedded_default_keeps_one_key(tmp_path, monkeypatch):
    from streams.pipeline import pseudonym

    monkeypatch.delenv("SUITCASE_PSEUDONYM_KEY", raising=False)
    first = pseudonym.ensure(tmp_path)
    key = (tmp_path / "pseudonym.key").read_text().strip()
    assert "made a new one" in first and pseudonym.key() == key.encode()
    monkeypatch.delenv("SUITCASE_PSEUDONYM_KEY")
    pseudonym._key = None
    second = pseudonym.ensure(tmp_path)
    assert "using the one" in second and pseudonym.key() == key.encode()
    assert stat.S_IMODE((tmp_path / "pseudonym.key").stat().st_mode) == 0o600
    monkeypatch.setenv("SUITCASE_PSEUDONYM_KEY", "from-the-environment")
    assert pseudonym.ensure(tmp_path / "elsewhere") is None and not (tmp_path / "elsewhere").exists()


def test_a_worker_refuses_co_partitioned_topics_with_different_partition_counts(capsys, monkeypatch):
    monkeypatch.setenv("SUITCASE_PSEUDONYM_KEY", "test-key")
    with EmbeddedBroker() as broker:
        create_topics(broker.bootstrap, 4, names=(DEPARTURES, DECLARATIONS))
        create_topics(broker.bootstrap, 3, names=(INSPECTIONS,))
        assert main(["worker", "--broker", broker.url, "--metrics-port", "0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "different partition counts" in err and f"{INSPECTIONS} 3" in err and f"{DEPARTURES} 4" in err


def test_the_deadletter_topic_is_created_with_its_retention():
    from kafka import KafkaAdminClient
    from kafka.admin import ConfigResource, ConfigResourceType

    with EmbeddedBroker() as broker:
        create_topics(broker.bootstrap, 2, deadletter_retention_days=3)
        admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
        try:
            described = admin.describe_configs(
                [ConfigResource(ConfigResourceType.TOPIC, DEADLETTER)], config_filter="all")
        finally:
            admin.close()
    assert described["topic"][DEADLETTER]["retention.ms"]["value"] == str(3 * 86_400_000)


def test_metrics_host_is_where_the_endpoint_listens():
    from streams.commands.live import _metrics_server

    for host, expected in (("127.0.0.1", "0100007F"), ("::1", "00000000000000000000000001000000")):
        _, port, server = _metrics_server(host, 0)
        try:
            assert listening_address(port) == {expected}
        finally:
            server.shutdown()


def test_sigterm_stops_a_worker_in_order(tmp_path):
    metrics_port = free_port()
    with EmbeddedBroker() as broker:
        argv = ["worker", "--broker", broker.url, "--metrics-port", str(metrics_port), "--data-dir", str(tmp_path / "data")]
        with Started(argv, tmp_path, {"SUITCASE_PSEUDONYM_KEY": "test-key"}) as worker:
            until(lambda: "suitcase_build_info" in metrics(metrics_port), "metrics are served", worker.process)
            started = children(worker.process.pid)
            worker.process.send_signal(signal.SIGTERM)
            code = worker.wait()
    assert code == 0, worker.stderr()[-2000:]
    assert "stopped (SIGTERM)" in worker.stdout()
    assert [pid for pid in started if alive(pid)] == []
    assert not error_lines(worker.stderr())
