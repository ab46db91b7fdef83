"""Kafka client security (TLS and SASL): one parser, one translation per client library.

Settings use the names of the Java client and librdkafka (``security.protocol``,
``ssl.cafile``, ``sasl.mechanism``, ...). They come, later ones winning, from

1. the environment: ``SUITCASE_KAFKA_<KEY>``, the key upper-cased with ``.`` as ``_``
   (``SUITCASE_KAFKA_SECURITY_PROTOCOL=SASL_SSL``, ``SUITCASE_KAFKA_SASL_PASSWORD=...``);
2. a properties file (``--kafka-config FILE``, Java client ``.properties`` format);
3. repeated ``-X key=value`` flags.

:func:`configure` makes one :class:`KafkaSecurity` the process's settings; every place
that builds a Kafka client (the faust app, the aiokafka consumers, the kafka-python
producer and admin) asks :func:`aiokafka_kwargs`, :func:`kafka_python_kwargs` or
:func:`faust_kwargs` for its keyword arguments, so no client is left plaintext by
accident. An unknown key or a bad value raises :class:`KafkaConfigError` (one line).
"""

from __future__ import annotations

import os
import re
import ssl
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

ENV_PREFIX: Final = "SUITCASE_KAFKA_"
PROTOCOLS: Final = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS: Final = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
#: Accepted keys -> the canonical key they set (librdkafka's ``ssl.ca.location`` and
#: friends are aliases of the short names).
KEYS: Final = {
    "security.protocol": "security.protocol",
    "ssl.cafile": "ssl.cafile",
    "ssl.ca.location": "ssl.cafile",
    "ssl.certfile": "ssl.certfile",
    "ssl.certificate.location": "ssl.certfile",
    "ssl.keyfile": "ssl.keyfile",
    "ssl.key.location": "ssl.keyfile",
    "ssl.password": "ssl.password",
    "ssl.key.password": "ssl.password",
    "ssl.check.hostname": "ssl.check.hostname",
    "ssl.endpoint.identification.algorithm": "ssl.check.hostname",  # Java: https or empty
    "sasl.mechanism": "sasl.mechanism",
    "sasl.mechanisms": "sasl.mechanism",  # librdkafka's spelling
    "sasl.username": "sasl.username",
    "sasl.password": "sasl.password",
    "sasl.jaas.config": "sasl.jaas.config",
}
_TRUE, _FALSE = ("true", "yes", "1", "https"), ("false", "no", "0", "none", "")


class KafkaConfigError(ValueError):
    """A Kafka client setting that cannot be used (one line, for the CLI)."""


@dataclass(frozen=True)
class KafkaSecurity:
    """The security settings of every Kafka client of this process."""

    protocol: str = "PLAINTEXT"
    cafile: str | None = None
    certfile: str | None = None
    keyfile: str | None = None
    password: str | None = None
    check_hostname: bool = True
    mechanism: str | None = None
    username: str | None = None
    sasl_password: str | None = None

    @property
    def tls(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    @property
    def sasl(self) -> bool:
        return self.protocol in ("SASL_PLAINTEXT", "SASL_SSL")

    def ssl_context(self) -> ssl.SSLContext | None:
        """The client TLS context (CA, client certificate, hostname check), or None."""
        if not self.tls:
            return None
        try:
            context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=self.cafile)
            if self.certfile:
                context.load_cert_chain(self.certfile, self.keyfile, self.password)
        except (OSError, ssl.SSLError) as err:
            raise KafkaConfigError(f"cannot load the Kafka TLS files: {_reason(err)}") from None
        context.check_hostname = self.check_hostname
        return context


def parse(
    settings: Iterable[tuple[str, str, str]],
) -> KafkaSecurity:
    """Settings as (key, value, where it came from) -> :class:`KafkaSecurity`; later win."""
    values: dict[str, str] = {}
    for key, value, origin in settings:
        canonical = KEYS.get(key.strip().lower())
        if canonical is None:
            raise KafkaConfigError(
                f"unknown Kafka setting {key!r} ({origin}); known: {', '.join(sorted(set(KEYS.values())))}"
            )
        value = value.strip()
        if canonical == "sasl.jaas.config":
            user, password = _jaas(value, origin)
            values["sasl.username"], values["sasl.password"] = user, password
            continue
        values[canonical] = value
    protocol = values.get("security.protocol", "PLAINTEXT").upper()
    if protocol not in PROTOCOLS:
        raise KafkaConfigError(f"security.protocol must be one of {', '.join(PROTOCOLS)}, not {protocol!r}")
    check = values.get("ssl.check.hostname", "true").lower()
    if check not in _TRUE + _FALSE:
        raise KafkaConfigError(f"ssl.check.hostname must be true or false, not {check!r}")
    mechanism = values.get("sasl.mechanism")
    sasl = protocol.startswith("SASL_")
    if mechanism is not None:
        mechanism = mechanism.upper()
        if mechanism not in MECHANISMS:
            raise KafkaConfigError(f"sasl.mechanism must be one of {', '.join(MECHANISMS)}, not {mechanism!r}")
    if sasl:
        mechanism = mechanism or "PLAIN"
        if not values.get("sasl.username") or values.get("sasl.password") is None:
            raise KafkaConfigError(f"security.protocol {protocol} needs sasl.username and sasl.password")
    else:
        stray = sorted(k for k in values if k.startswith("sasl."))
        if stray:
            raise KafkaConfigError(f"{stray[0]} is set but security.protocol is {protocol} (use SASL_PLAINTEXT or SASL_SSL)")
    tls = protocol in ("SSL", "SASL_SSL")
    if not tls:
        stray = sorted(k for k in values if k.startswith("ssl."))
        if stray:
            raise KafkaConfigError(f"{stray[0]} is set but security.protocol is {protocol} (use SSL or SASL_SSL)")
    for key in ("ssl.cafile", "ssl.certfile", "ssl.keyfile"):
        path = values.get(key)
        if path is not None and not Path(path).is_file():
            raise KafkaConfigError(f"{key} {path!r} is not a readable file")
    if values.get("ssl.keyfile") and not values.get("ssl.certfile"):
        raise KafkaConfigError("ssl.keyfile needs ssl.certfile (the client certificate)")
    security = KafkaSecurity(
        protocol=protocol,
        cafile=values.get("ssl.cafile"),
        certfile=values.get("ssl.certfile"),
        keyfile=values.get("ssl.keyfile"),
        password=values.get("ssl.password"),
        check_hostname=check in _TRUE,
        mechanism=mechanism if sasl else None,
        username=values.get("sasl.username") if sasl else None,
        sasl_password=values.get("sasl.password") if sasl else None,
    )
    security.ssl_context()  # fail now, in one line, on a bad certificate or key
    return security


def from_sources(
    config_file: Path | None = None,
    overrides: Iterable[str] = (),
    environ: Mapping[str, str] | None = None,
) -> KafkaSecurity:
    """Environment, then ``config_file``, then ``-X key=value`` overrides."""
    settings = list(env_settings(os.environ if environ is None else environ))
    if config_file is not None:
        settings += read_properties(config_file)
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise KafkaConfigError(f"-X {item!r} must look like key=value")
        settings.append((key, value, "-X"))
    return parse(settings)


def env_settings(environ: Mapping[str, str]) -> list[tuple[str, str, str]]:
    """``SUITCASE_KAFKA_SSL_CA_LOCATION=...`` -> ``("ssl.ca.location", ..., origin)``."""
    return [
        (name[len(ENV_PREFIX):].lower().replace("_", "."), value, f"environment {name}")
        for name, value in sorted(environ.items())
        if name.startswith(ENV_PREFIX)
    ]


def read_properties(path: Path) -> list[tuple[str, str, str]]:
    """A Java ``.properties`` file: ``key=value``, ``key: value`` or ``key value`` lines,
    ``#``/``!`` comments, a trailing backslash continues the line."""
    try:
        text = Path(path).read_text("utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise KafkaConfigError(f"cannot read --kafka-config {str(path)!r}: {_reason(err)}") from None
    settings: list[tuple[str, str, str]] = []
    logical, start = "", 0
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.lstrip()
        if not logical and (not stripped or stripped[0] in "#!"):
            continue
        if not logical:
            start = number
        if _continues(stripped):
            logical += stripped[:-1]
            continue
        logical += stripped
        match = re.match(r"((?:\\.|[^=:\s\\])+)\s*[=:\s]\s*(.*)$", logical, re.S) or re.match(r"((?:\\.|[^=:\s\\])+)()$", logical)
        if match is None:
            raise KafkaConfigError(f"{path}:{start}: cannot read this line as key=value")
        key, value = (_unescape(g) for g in match.groups())
        settings.append((key, value, f"{path}:{start}"))
        logical = ""
    return settings


def _continues(line: str) -> bool:
    backslashes = len(line) - len(line.rstrip("\\"))
    return backslashes % 2 == 1


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", lambda m: {"t": "\t", "n": "\n", "r": "\r", "f": "\f"}.get(m.group(1), m.group(1)), text)


def _jaas(value: str, origin: str) -> tuple[str, str]:
    """username and password of a PlainLoginModule or ScramLoginModule JAAS line."""
    if not re.search(r"\b(PlainLoginModule|ScramLoginModule)\b", value):
        raise KafkaConfigError(f"sasl.jaas.config ({origin}) must use PlainLoginModule or ScramLoginModule")
    found = dict(re.findall(r'\b(username|password)\s*=\s*"((?:[^"\\]|\\.)*)"', value))
    if "username" not in found or "password" not in found:
        raise KafkaConfigError(f'sasl.jaas.config ({origin}) needs username="..." and password="..."')
    return _unescape(found["username"]), _unescape(found["password"])


def _reason(err: Exception) -> str:
    return getattr(err, "strerror", None) or getattr(err, "reason", None) or str(err) or type(err).__name__


# ---------------------------------------------------------------- the process's settings

_active: KafkaSecurity | None = None


def configure(security: KafkaSecurity | None) -> None:
    """Make ``security`` the settings of every client built from now on (None: environment)."""
    global _active
    _active = security


def active() -> KafkaSecurity:
    """The configured settings, else those of the environment."""
    return _active if _active is not None else from_sources()


def aiokafka_kwargs(security: KafkaSecurity | None = None) -> dict:
    """Keyword arguments of ``AIOKafkaConsumer`` / ``AIOKafkaProducer`` / admin."""
    s = security or active()
    kwargs: dict = {"security_protocol": s.protocol}
    if s.tls:
        kwargs["ssl_context"] = s.ssl_context()
    if s.sasl:
        kwargs.update(sasl_mechanism=s.mechanism, sasl_plain_username=s.username, sasl_plain_password=s.sasl_password)
    return kwargs


def kafka_python_kwargs(security: KafkaSecurity | None = None) -> dict:
    """Keyword arguments of kafka-python's ``KafkaProducer``, ``KafkaConsumer``, admin."""
    s = security or active()
    kwargs = aiokafka_kwargs(s)
    if s.tls:
        kwargs["ssl_check_hostname"] = s.check_hostname
    return kwargs


def faust_kwargs(security: KafkaSecurity | None = None) -> dict:
    """Keyword arguments of ``faust.App``: ``broker_credentials`` (None for PLAINTEXT)."""
    import faust

    s = security or active()
    if s.sasl:
        credentials = faust.SASLCredentials(
            username=s.username, password=s.sasl_password, mechanism=s.mechanism, ssl_context=s.ssl_context(),
        )
    elif s.tls:
        credentials = faust.SSLCredentials(s.ssl_context())
    else:
        credentials = None
    return {"broker_credentials": credentials}


def describe(security: KafkaSecurity | None = None) -> str:
    """One line for the start-up banner (never a password)."""
    s = security or active()
    parts = [s.protocol]
    if s.sasl:
        parts.append(f"{s.mechanism} as {s.username}")
    if s.tls:
        parts.append(f"CA {s.cafile or 'system'}" + ("" if s.check_hostname else ", no hostname check"))
        if s.certfile:
            parts.append("client certificate")
    return ", ".join(parts)
