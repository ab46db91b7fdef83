"""Shared fixtures: a real embedded Tansu broker per test (it starts in ~0.2 s), and the
session's clean-up check: no broker (or other process) the tests started survives them,
and no temporary or ``.suitcase/`` directory is left behind."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import uuid
from pathlib import Path

import pytest

#: Every process the test run starts inherits this variable (the embedded broker too),
#: so that one that outlived its parent is still found (see ``survivors``).
RUN_MARKER = "SUITCASE_TEST_RUN"
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def broker():
    """A fresh Tansu broker on a free loopback port with the project's topics."""
    from streams.kafka.broker import EmbeddedBroker, create_topics

    with EmbeddedBroker() as running:
        create_topics(running.bootstrap)
        yield running


@pytest.fixture
def app_id() -> str:
    """A fresh consumer-group / app id."""
    return f"test-{uuid.uuid4().hex[:10]}"


@pytest.fixture(autouse=True)
def process_settings_restored():
    """A command run in-process (``main([...])``) sets the process's Kafka client settings
    and may set the pseudonym key; each test starts from the environment's."""
    saved = os.environ.get("SUITCASE_PSEUDONYM_KEY")
    yield
    from streams.kafka import security as kafka_security
    from streams.pipeline import pseudonym

    kafka_security.configure(None)
    if saved is None:
        os.environ.pop("SUITCASE_PSEUDONYM_KEY", None)
    else:
        os.environ["SUITCASE_PSEUDONYM_KEY"] = saved
    pseudonym._key = None


def survivors(marker: str) -> list[tuple[int, str]]:
    """(pid, command line) of live processes, other than this one, carrying ``marker``."""
    found = []
    needle = f"{RUN_MARKER}={marker}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            if state == "Z":  # exited, not yet reaped by its parent: gone
                continue
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except OSError:
            continue
        if parent == os.getpid() and "multiprocessing.resource_tracker" in command:
            continue  # this process's own tracker (of the archive readers): it ends with us
        found.append((int(entry.name), command.strip()))
    return found


@pytest.fixture(scope="session", autouse=True)
def nothing_left_behind(tmp_path_factory):
    """Fail the session's last teardown if a process the tests started survives (it is
    killed), if a temporary directory is left in the session's TMPDIR, or if a
    ``.suitcase/`` directory appeared in the checkout."""
    tmp_path_factory.getbasetemp()  # pytest's own (kept per its retention policy) stays where it is
    marker = uuid.uuid4().hex
    tmp = Path(tempfile.mkdtemp(prefix="suitcase-tests-"))
    saved = {k: os.environ.get(k) for k in (RUN_MARKER, "TMPDIR")}
    os.environ[RUN_MARKER] = marker
    os.environ["TMPDIR"] = str(tmp)
    tempfile.tempdir = str(tmp)
    had_state = (ROOT / ".suitcase").exists()
    yield
    tempfile.tempdir = None
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    problems = []
    alive = survivors(marker)
    for pid, command in alive:
        problems.append(f"process {pid} survived the tests: {command[:160]}")
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    left = sorted(p.name for p in tmp.iterdir()) if tmp.exists() else []
    if left:
        problems.append(f"temporary files left behind: {', '.join(left[:10])}")
    shutil.rmtree(tmp, ignore_errors=True)
    if not had_state and (ROOT / ".suitcase").exists():
        problems.append(f"{ROOT / '.suitcase'} was created by the tests")
    assert not problems, "; ".join(problems)
