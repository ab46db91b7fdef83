"""Kafka client security settings: one parser (environment, properties file, -X flags),
and the keyword arguments each client library gets for each combination."""

from __future__ import annotations

import ssl
import subprocess
from pathlib import Path

import pytest

from streams.kafka import security as ks
from streams.commands.cli import main


def make_ca(out: Path, key_password: str | None = None) -> dict[str, Path]:
    """A throwaway CA, a server certificate for localhost and a client certificate
    (its key encrypted with ``key_password`` if given), made with openssl."""
    out.mkdir(parents=True, exist_ok=True)

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=out)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
        "-days", "1", "-subj", "/CN=suitcase test CA")
    (out / "server.ext").write_text("subjectAltName=DNS:localhost\n")
    for name in ("server", "client"):
        run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
            "-subj", f"/CN={'localhost' if name == 'server' else 'suitcase-worker'}")
        extra = ["-extfile", "server.ext"] if name == "server" else []
        run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", f"{name}.pem", "-days", "1", *extra)
    if key_password is not None:
        run("pkey", "-in", "client.key", "-out", "client-enc.key", "-aes256", "-passout", f"pass:{key_password}")
    return {p.stem if p.suffix == ".pem" else p.name: p for p in out.iterdir()}


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_ca(tmp_path_factory.mktemp("pki"), key_password="k3y-pass")


def settings(**pairs) -> ks.KafkaSecurity:
    return ks.parse([(k.replace("_", "."), v, "test") for k, v in pairs.items()])


def test_no_settings_is_plaintext_for_every_client():
    security = ks.from_sources(environ={})
    assert security == ks.KafkaSecurity()
    assert ks.aiokafka_kwargs(security) == {"security_protocol": "PLAINTEXT"}
    assert ks.kafka_python_kwargs(security) == {"security_protocol": "PLAINTEXT"}
    assert ks.faust_kwargs(security) == {"broker_credentials": None}


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_sasl_plaintext_gives_every_client_the_mechanism_and_credentials(mechanism):
    import faust
    from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

    security = ks.parse([("security.protocol", "SASL_PLAINTEXT", "t"), ("sasl.mechanism", mechanism, "t"),
                         ("sasl.username", "worker", "t"), ("sasl.password", "pa=ss word", "t")])
    expected = {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": mechanism,
                "sasl_plain_username": "worker", "sasl_plain_password": "pa=ss word"}
    assert ks.aiokafka_kwargs(security) == expected
    assert ks.kafka_python_kwargs(security) == expected
    credentials = ks.faust_kwargs(security)["broker_credentials"]
    assert isinstance(credentials, faust.SASLCredentials)
    # what faust's own aiokafka driver makes of them: the same settings, no TLS
    assert credentials_to_aiokafka_auth(credentials) == {**expected, "ssl_context": None}


def test_ssl_with_a_client_certificate_and_an_encrypted_key(pki):
    import faust
    from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

    security = settings(security_protocol="SSL", ssl_cafile=str(pki["ca"]), ssl_certfile=str(pki["client"]),
                        ssl_keyfile=str(pki["client-enc.key"]), ssl_password="k3y-pass")
    aio = ks.aiokafka_kwargs(security)
    assert aio["security_protocol"] == "SSL" and set(aio) == {"security_protocol", "ssl_context"}
    context = aio["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert any("suitcase test CA" in str(ca.get("subject")) for ca in context.get_ca_certs())
    kp = ks.kafka_python_kwargs(security)
    assert kp["security_protocol"] == "SSL" and kp["ssl_check_hostname"] is True
    assert isinstance(kp["ssl_context"], ssl.SSLContext)
    credentials = ks.faust_kwargs(security)["broker_credentials"]
    assert isinstance(credentials, faust.SSLCredentials)
    assert credentials_to_aiokafka_auth(credentials)["security_protocol"] == "SSL"


def test_a_wrong_key_password_is_refused_at_once(pki):
    with pytest.raises(ks.KafkaConfigError, match="cannot load the Kafka TLS files"):
        settings(security_protocol="SSL", ssl_certfile=str(pki["client"]),
                 ssl_keyfile=str(pki["client-enc.key"]), ssl_password="wrong")


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_sasl_ssl_gives_credentials_and_a_tls_context_without_hostname_check(pki, mechanism):
    import faust
    from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

    security = ks.parse([
        ("security.protocol", "sasl_ssl", "t"), ("sasl.mechanisms", mechanism.lower(), "t"),
        ("ssl.ca.location", str(pki["ca"]), "t"), ("ssl.endpoint.identification.algorithm", "", "t"),
        ("sasl.username", "u", "t"), ("sasl.password", "p", "t"),
    ])
    aio = ks.aiokafka_kwargs(security)
    assert (aio["security_protocol"], aio["sasl_mechanism"], aio["sasl_plain_username"], aio["sasl_plain_password"]) == (
        "SASL_SSL", mechanism, "u", "p")
    assert aio["ssl_context"].check_hostname is False
    assert ks.kafka_python_kwargs(security)["ssl_check_hostname"] is False
    credentials = ks.faust_kwargs(security)["broker_credentials"]
    assert isinstance(credentials, faust.SASLCredentials)
    auth = credentials_to_aiokafka_auth(credentials)
    assert auth["security_protocol"] == "SASL_SSL" and auth["sasl_mechanism"] == mechanism
    assert auth["ssl_context"].check_hostname is False


def test_the_faust_app_carries_the_credentials(pki, tmp_path):
    from streams.kafka.app import create_app

    security = settings(security_protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-512", sasl_username="w",
                        sasl_password="p", ssl_cafile=str(pki["ca"]))
    ks.configure(security)
    app = create_app("ops-test", "[::1]:9093", 4, tmp_path)
    credentials = app.conf.broker_credentials
    assert credentials.username == "w" and credentials.mechanism.value == "SCRAM-SHA-512"
    assert credentials.protocol.value == "SASL_SSL"
    assert [str(url) for url in app.conf.broker] == ["kafka://[::1]:9093"]


def test_environment_then_file_then_flags(tmp_path, pki):
    config = tmp_path / "client.properties"
    config.write_text(
        "# a Java client properties file\n"
        "! another comment\n"
        "\n"
        "security.protocol = SASL_SSL\n"
        "sasl.mechanism: SCRAM-SHA-256\n"
        "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required \\\n"
        '    username="from-file" password="pa ss=w:rd";\n'
        f"ssl.cafile {pki['ca']}\n"
    )
    environ = {"SUITCASE_KAFKA_SECURITY_PROTOCOL": "PLAINTEXT", "SUITCASE_KAFKA_SASL_USERNAME": "from-env",
               "OTHER_VARIABLE": "ignored"}
    security = ks.from_sources(config, ["sasl.mechanism=SCRAM-SHA-512"], environ)
    assert security.protocol == "SASL_SSL"  # the file wins over the environment
    assert security.mechanism == "SCRAM-SHA-512"  # -X wins over the file
    assert (security.username, security.sasl_password) == ("from-file", "pa ss=w:rd")
    assert security.cafile == str(pki["ca"])
    only_env = ks.from_sources(environ={
        "SUITCASE_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "SUITCASE_KAFKA_SASL_MECHANISM": "PLAIN",
        "SUITCASE_KAFKA_SASL_USERNAME": "e", "SUITCASE_KAFKA_SASL_PASSWORD": "pw",
    })
    assert ks.aiokafka_kwargs(only_env)["sasl_plain_username"] == "e"
    assert "pw" not in ks.describe(only_env)


@pytest.mark.parametrize(
    "pairs, words",
    [
        ([("security.protocol", "TLS")], "security.protocol must be one of"),
        ([("security.protocol", "SASL_SSL"), ("sasl.mechanism", "GSSAPI"), ("sasl.username", "u"), ("sasl.password", "p")], "sasl.mechanism must be one of"),
        ([("security.protocol", "SASL_PLAINTEXT")], "needs sasl.username and sasl.password"),
        ([("ssl.cafile", "/etc/hostname")], "security.protocol is PLAINTEXT"),
        ([("sasl.username", "u")], "security.protocol is PLAINTEXT"),
        ([("security.protocol", "SSL"), ("ssl.cafile", "/nonexistent/ca.pem")], "is not a readable file"),
        ([("security.protocol", "SSL"), ("ssl.check.hostname", "maybe")], "ssl.check.hostname must be true or false"),
        ([("bootstrap.servers", "x:1")], "unknown Kafka setting 'bootstrap.servers'"),
        ([("security.protocol", "SASL_SSL"), ("sasl.jaas.config", "com.example.Kerberos required;")], "PlainLoginModule or ScramLoginModule"),
    ],
)
def test_bad_settings_are_refused(pairs, words):
    with pytest.raises(ks.KafkaConfigError, match=words.replace(".", r"\.").replace("'", "'")):
        ks.parse([(k, v, "test") for k, v in pairs])


@pytest.mark.parametrize(
    "argv, words",
    [
        (["worker", "--broker", "kafka://127.0.0.1:1", "-X", "security.protocol=TLS"], "security.protocol must be one of"),
        (["worker", "--broker", "kafka://127.0.0.1:1", "-X", "nonsense"], "must look like key=value"),
        (["worker", "--broker", "kafka://127.0.0.1:1", "--kafka-config", "/nonexistent.properties"], "cannot read --kafka-config"),
        (["replay", "--events", ".", "--broker", "kafka://127.0.0.1:1", "-X", "sasl.kerberos.service.name=kafka"], "unknown Kafka setting"),
        (["up", "-X", "security.protocol=SSL"], "needs --broker"),
    ],
)
def test_bad_settings_on_the_command_line_are_one_line_and_exit_2(argv, words, capsys, monkeypatch):
    monkeypatch.setenv("SUITCASE_PSEUDONYM_KEY", "test-key")
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert words in err and err.count("\n") == 1 and err.startswith("suitcase: error: ")


def test_an_unknown_environment_variable_is_refused_on_the_command_line(capsys, monkeypatch):
    monkeypatch.setenv("SUITCASE_PSEUDONYM_KEY", "test-key")
    monkeypatch.setenv("SUITCASE_KAFKA_SSL_TRUSTSTORE_LOCATION", "/x.jks")
    assert main(["worker", "--broker", "kafka://127.0.0.1:1"]) == 2
    err = capsys.readouterr().err
    assert "ssl.truststore.location" in err and "SUITCASE_KAFKA_SSL_TRUSTSTORE_LOCATION" in err
