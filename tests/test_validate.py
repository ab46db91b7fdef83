"""`suitcase validate` counts every line of an archive as accepted, duplicate or rejected."""

from __future__ import annotations

import json
import subprocess
import sys

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.pipeline import contract as c
from streams.commands.cli import main
from tests.events import line


def write(tmp_path, topic, lines, end=b"\n"):
    (tmp_path / f"{topic}.ndjson").write_bytes(b"\n".join(lines) + end)


def test_counts_accepted_duplicates_and_rejections(tmp_path, capsys):
    dep = line(c.DEPARTURES)
    write(tmp_path, c.DEPARTURES, [
        dep,
        dep,  # a producer retry
        line(c.DEPARTURES, event_id="dep-2", border_post="XXX"),
        b"{oops",
        line(c.DEPARTURES, event_id="dep-3"),
        line(c.DEPARTURES, event_id="dep-1", border_post="XXX"),  # bad line reusing an id
        b"",
    ])
    write(tmp_path, c.RATES, [line(c.RATES)], end=b"")  # no final newline
    assert main(["validate", "--events", str(tmp_path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report == {
        c.DEPARTURES: {
            "accepted": 2, "duplicates": 1,
            "rejected": {"not_json": 2, "unknown_code:border_post": 2},
        },
        c.RATES: {"accepted": 1, "duplicates": 0, "rejected": {}},
    }


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(chunks=st.lists(st.one_of(st.binary(max_size=40), st.sampled_from([line(c.DEPARTURES)])), max_size=30))
def test_every_line_is_counted_once_whatever_the_bytes(tmp_path, chunks):
    data = b"\n".join(chunks) + b"\n"
    (tmp_path / f"{c.DEPARTURES}.ndjson").write_bytes(data)
    from streams.pipeline.archive import validate

    tally = validate(tmp_path)[c.DEPARTURES]
    assert tally.accepted + tally.duplicates + sum(tally.rejected.values()) == data.count(b"\n")


def test_table_output_lists_topics(tmp_path, capsys):
    write(tmp_path, c.DEPARTURES, [line(c.DEPARTURES)])
    assert main(["validate", "--events", str(tmp_path)]) == 0
    assert c.DEPARTURES in capsys.readouterr().out


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "streams.commands.cli", *args], capture_output=True, text=True)


def test_missing_directory_is_one_line_and_exit_2(tmp_path):
    done = run_cli("validate", "--events", str(tmp_path / "nope"))
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "is not a directory" in done.stderr


def test_directory_without_topic_files_is_one_line_and_exit_2(tmp_path):
    done = run_cli("validate", "--events", str(tmp_path))
    assert done.returncode == 2 and done.stderr.count("\n") == 1


def test_bad_flag_value_is_one_line_and_exit_2(tmp_path):
    done = run_cli("simulate", "--out", str(tmp_path), "--weeks", "many")
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "--weeks" in done.stderr
    done = run_cli("simulate", "--out", str(tmp_path), "--start", "2026-13-40")
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "YYYY-MM-DD" in done.stderr
    done = run_cli("validate", "--bogus")
    assert done.returncode == 2 and done.stderr.count("\n") == 1
