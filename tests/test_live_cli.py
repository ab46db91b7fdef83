"""The live commands refuse bad input in one line with exit status 2."""

from __future__ import annotations

import pytest

from streams.kafka.broker import free_port
from streams.commands.cli import main


@pytest.mark.parametrize(
    "argv, words",
    [
        (["up", "--until-caught-up"], "--until-caught-up needs --replay"),
        (["up", "--replay", "/nonexistent"], "is not a directory"),
        (["up", "--consumer", "fast"], "--consumer must be"),
        (["up", "--speed", "0"], "--speed"),
        (["up", "--start", "March"], "--start"),
        (["worker", "--broker", "http://x"], "kafka://host:port"),
        (["replay", "--events", "/nonexistent", "--broker", "kafka://127.0.0.1:1"], "is not a directory"),
    ],
)
def test_bad_flags_are_one_line_and_exit_2(argv, words, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert words in err and err.count("\n") == 1


def test_an_unreachable_broker_is_one_line_and_exit_2(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("SUITCASE_PSEUDONYM_KEY", "test-key")
    port = free_port()
    assert main(["worker", "--broker", f"kafka://127.0.0.1:{port}", "--metrics-port", "0"]) == 2
    err = capsys.readouterr().err
    assert f"127.0.0.1:{port}" in err and err.count("\n") == 1
