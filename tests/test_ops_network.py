"""The network surface of the Kafka clients: IPv6 broker addresses, and TLS end to end
(every client of the live path through a TLS terminator in front of Tansu, which serves
no TLS itself in 0.6: see README, Security)."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import threading
from pathlib import Path

import pytest

from streams.kafka import security as ks
from streams.kafka.broker import (
    BrokerError, EmbeddedBroker, create_topics, free_port, parse_broker_url, partition_counts, wait_reachable,
)
from streams.commands.cli import main
from tests.test_ops_security import make_ca

pytestmark = pytest.mark.broker


@pytest.mark.parametrize(
    "url, bootstrap",
    [
        ("kafka://[::1]:9092", "[::1]:9092"),
        ("[::1]:9092", "[::1]:9092"),
        ("kafka://[2001:db8::7]:19092;10.0.0.1:9092", "[2001:db8::7]:19092,10.0.0.1:9092"),
        ("broker-1:9092,broker-2:9093", "broker-1:9092,broker-2:9093"),
    ],
)
def test_broker_urls_with_ipv6_addresses(url, bootstrap):
    assert parse_broker_url(url) == bootstrap


@pytest.mark.parametrize("url", ["kafka://::1:9092", "kafka://[::1]", "kafka://[host]:9092", "kafka://[::1]:99999", "http://[::1]:1"])
def test_malformed_ipv6_urls_are_refused(url):
    with pytest.raises(BrokerError):
        parse_broker_url(url)


def test_a_bare_ipv6_address_is_one_line_on_the_command_line(capsys, monkeypatch):
    monkeypatch.setenv("SUITCASE_PSEUDONYM_KEY", "test-key")
    assert main(["worker", "--broker", "::1:9092"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "in brackets" in err


def test_clients_reach_a_broker_over_ipv6(tmp_path):
    """Tansu 0.6 advertises an IPv6 listener as the bracketed literal, which no client
    can resolve; so it listens on every address ([::]) and advertises IPv4 loopback.
    The bootstrap, our first contact, goes to [::1]."""
    from streams.kafka.feed import producer

    port = free_port("::1")
    with EmbeddedBroker(host="::", port=port, advertised=f"127.0.0.1:{port}"):
        bootstrap = parse_broker_url(f"kafka://[::1]:{port}")
        wait_reachable(bootstrap)
        create_topics(bootstrap, 2)
        assert set(partition_counts(bootstrap).values()) == {2}
        sent = producer(bootstrap)
        metadata = sent.send("suitcase.estimates", key=b"k", value=b"over ipv6").get(timeout=30)
        sent.close()

        async def read_back():
            from aiokafka import AIOKafkaConsumer, TopicPartition

            consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, **ks.aiokafka_kwargs())
            await consumer.start()
            try:
                tp = TopicPartition("suitcase.estimates", metadata.partition)
                consumer.assign([tp])
                consumer.seek(tp, metadata.offset)
                return (await consumer.getone()).value
            finally:
                await consumer.stop()

        assert asyncio.run(read_back()) == b"over ipv6"


def test_an_unreachable_ipv6_broker_is_one_line(capsys, monkeypatch):
    monkeypatch.setenv("SUITCASE_PSEUDONYM_KEY", "test-key")
    port = free_port("::1")
    assert main(["worker", "--broker", f"kafka://[::1]:{port}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"[::1]:{port}" in err


class TlsTerminator:
    """A TLS server on ``localhost:port`` forwarding bytes to a plaintext broker (what a
    TLS-terminating proxy does), requiring a client certificate when ``ca`` is given."""

    def __init__(self, certfile: Path, keyfile: Path, target: tuple[str, int], port: int, ca: Path | None = None):
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(certfile, keyfile)
        if ca is not None:
            self.context.load_verify_locations(ca)
            self.context.verify_mode = ssl.CERT_REQUIRED
        self.target, self.port = target, port
        self.connections = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._serve, "127.0.0.1", self.port, ssl=self.context))
        self._ready.set()
        self._loop.run_forever()
        self._server.close()
        self._loop.run_until_complete(self._server.wait_closed())
        self._loop.close()

    async def _serve(self, reader, writer) -> None:
        self.connections += 1
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return

        async def pump(source, sink):
            with contextlib.suppress(Exception):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            with contextlib.suppress(Exception):
                sink.close()

        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))

    def __enter__(self) -> "TlsTerminator":
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


@pytest.fixture
def tls_broker(tmp_path):
    """Tansu behind a TLS terminator that wants a client certificate; every address the
    clients are told is the TLS one (localhost:port)."""
    pki = make_ca(tmp_path / "pki", key_password="pw")
    tls_port = free_port()
    with EmbeddedBroker(advertised=f"localhost:{tls_port}") as broker, TlsTerminator(
        pki["server"], pki["server.key"], ("127.0.0.1", broker.port), tls_port, ca=pki["ca"],
    ) as terminator:
        yield f"localhost:{tls_port}", pki, terminator


def test_every_client_of_the_live_path_works_over_tls(tls_broker, tmp_path, app_id):
    """kafka-python (topics, the replay producer), aiokafka (the raw consumer, the
    broadcast readers) and faust (group, changelog, producer) all speak TLS with the CA,
    the client certificate and its encrypted key given in Kafka's words; the live
    estimate equals the batch one."""
    import polars as pl
    from polars.testing import assert_frame_equal

    from streams.kafka.feed import Written, replay
    from streams.kafka.worker import LiveWorker, WorkerSettings

    bootstrap, pki, terminator = tls_broker
    config = tmp_path / "client.properties"
    config.write_text(
        f"security.protocol=SSL\nssl.ca.location={pki['ca']}\nssl.certificate.location={pki['client']}\n"
        f"ssl.key.location={pki['client-enc.key']}\nssl.key.password=pw\n"
    )
    ks.configure(ks.from_sources(config, environ={}))
    wait_reachable(bootstrap)
    create_topics(bootstrap)
    events = tmp_path / "events"
    assert main(["simulate", "--out", str(events), "--scale", "0.005", "--weeks", "1", "--seed", "5"]) == 0
    written = Written()
    sent = replay(events, bootstrap, written=written)
    assert sent > 0

    async def run():
        worker = LiveWorker(WorkerSettings(bootstrap=bootstrap, app_id=app_id, data_dir=tmp_path / "data", consumer="raw"))
        await worker.start()
        try:
            await asyncio.wait_for(worker.wait_caught_up(written.last), 120)
            return worker.estimate_table()
        finally:
            await worker.stop()

    live = asyncio.run(run())
    out = tmp_path / "batch.parquet"
    assert main(["estimate", "--events", str(events), "--out", str(out)]) == 0
    batch = pl.read_parquet(out)
    assert len(live) == len(batch) > 0
    assert_frame_equal(live, batch, check_exact=False, rel_tol=1e-6, abs_tol=1e-6)
    assert terminator.connections > 0


@pytest.mark.parametrize("case", ["plaintext", "other CA", "no client certificate", "hostname"])
def test_tls_is_really_checked(tls_broker, tmp_path, case):
    bootstrap, pki, _ = tls_broker
    settings = {"security.protocol": "SSL", "ssl.cafile": str(pki["ca"]), "ssl.certfile": str(pki["client"]),
                "ssl.keyfile": str(pki["client.key"])}
    if case == "plaintext":
        settings = {}
    elif case == "other CA":
        settings["ssl.cafile"] = str(make_ca(tmp_path / "other")["ca"])
    elif case == "no client certificate":
        del settings["ssl.certfile"], settings["ssl.keyfile"]
    elif case == "hostname":  # the certificate names localhost, not 127.0.0.1
        bootstrap = bootstrap.replace("localhost", "127.0.0.1")
    ks.configure(ks.parse([(k, v, "test") for k, v in settings.items()]))
    with pytest.raises(BrokerError):
        wait_reachable(bootstrap, timeout=3)
    if case == "hostname":  # ... and with the check off, the same address works
        ks.configure(ks.parse([(k, v, "test") for k, v in {**settings, "ssl.check.hostname": "false"}.items()]))
        wait_reachable(bootstrap, timeout=10)
