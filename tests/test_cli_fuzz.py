"""Every bad path, file or value given to a command prints exactly one line
``suitcase: error: ...`` and exits 2, never a traceback. Each case runs the real command in
its own process (tests run as root, so "unreadable" means things that fail for root too:
a directory or a FIFO where a topic file should be, a file whose reads fail with EIO,
``/proc`` and ``/dev/full`` as outputs, names too long for the file system). The commands
that start brokers (``up``, ``worker``, ``replay``) appear only with flags that fail before
any broker starts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from streams.pipeline import contract as c
from streams.commands.cli import main
from tests.events import line

LONG = "n" * 300  # one path component longer than any file system allows


@pytest.fixture(scope="module")
def places(tmp_path_factory) -> dict[str, str]:
    """Good and bad files and directories, by name."""
    root = tmp_path_factory.mktemp("fuzz")
    archive = root / "archive"
    assert main(["simulate", "--out", str(archive), "--weeks", "1", "--scale", "0.005", "--seed", "2"]) == 0
    (root / "a_file").write_text("not a directory\n")
    (root / "empty").mkdir()
    (root / "dir_topic" / f"{c.DEPARTURES}.ndjson").mkdir(parents=True)
    (root / "fifo_topic").mkdir()
    os.mkfifo(root / "fifo_topic" / f"{c.DEPARTURES}.ndjson")
    (root / "eio_topic").mkdir()
    (root / "eio_topic" / f"{c.DEPARTURES}.ndjson").symlink_to("/proc/self/mem")  # reads fail: EIO
    (root / "loop_topic").mkdir()
    (root / "loop_topic" / f"{c.DEPARTURES}.ndjson").symlink_to(root / "loop_topic" / f"{c.DEPARTURES}.ndjson")
    (root / "nothing_valid").mkdir()
    (root / "nothing_valid" / f"{c.DEPARTURES}.ndjson").write_bytes(b"{oops\n" + line(c.DEPARTURES, border_post="X") + b"\n")
    (root / "rates_only").mkdir()
    (root / "rates_only" / f"{c.RATES}.ndjson").write_bytes(line(c.RATES) + b"\n")
    week = root / "vintages" / "week=2026-W10"
    week.mkdir(parents=True)
    (week / "vintage-20260316T000000.000000Z.parquet").write_bytes(b"PAR1 this is not parquet")
    (root / "truncated" / "week=2026-W10").mkdir(parents=True)
    good = root / "good.parquet"
    import polars as pl

    pl.DataFrame({"week": ["2026-W10"]}).write_parquet(good)
    (root / "truncated" / "week=2026-W10" / "vintage-20260316T000000.000000Z.parquet").write_bytes(
        good.read_bytes()[:-9]
    )
    return {
        "root": str(root), "archive": str(archive), "file": str(root / "a_file"), "empty": str(root / "empty"),
        "dir_topic": str(root / "dir_topic"), "fifo_topic": str(root / "fifo_topic"),
        "eio_topic": str(root / "eio_topic"), "loop_topic": str(root / "loop_topic"),
        "nothing_valid": str(root / "nothing_valid"), "rates_only": str(root / "rates_only"),
        "corrupt_vintages": str(root / "vintages"), "truncated_vintages": str(root / "truncated"),
        "long": str(root / LONG), "out": str(root / "out"),
    }


CASES = [
    # validate
    ("validate", "--events", "{root}/missing"),
    ("validate", "--events", "{file}"),
    ("validate", "--events", "{long}"),
    ("validate", "--events", "{empty}"),
    ("validate", "--events", "{dir_topic}"),
    ("validate", "--events", "{fifo_topic}"),
    ("validate", "--events", "{eio_topic}"),
    ("validate", "--events", "{loop_topic}"),
    ("validate", "--events", "/proc/self/mem"),
    ("validate",),
    ("validate", "--events", "{archive}", "--bogus"),
    ("validate", "--events", "{archive}", "--bound", "max_future_days=-1"),
    ("validate", "--events", "{archive}", "--bound", "no_such_bound=1"),
    ("validate", "--events", "{archive}", "--bound", "min_selection_probability=nan"),
    # estimate
    ("estimate", "--events", "{archive}", "--out", "{out}/x.txt"),
    ("estimate", "--events", "{archive}", "--out", "/proc/x/estimate.csv"),
    ("estimate", "--events", "{archive}", "--out", "/proc/estimate.parquet"),
    ("estimate", "--events", "{archive}", "--out", "{file}/estimate.csv"),
    ("estimate", "--events", "{archive}", "--out", "{long}.csv"),
    ("estimate", "--events", "{archive}", "--out", "{empty}"),
    ("estimate", "--events", "{nothing_valid}", "--out", "{out}/e.csv"),
    ("estimate", "--events", "{rates_only}", "--out", "{out}/e.csv"),
    ("estimate", "--events", "{eio_topic}", "--out", "{out}/e.csv"),
    ("estimate", "--events", "{fifo_topic}", "--out", "{out}/e.csv"),
    ("estimate", "--events", "{root}/missing", "--out", "{out}/e.csv"),
    ("estimate", "--events", "{archive}", "--out", "{out}/e.csv", "--traveller-window", "future"),
    ("estimate", "--events", "{archive}", "--out", "{out}/e.csv", "--traveller-window", "centred"),
    # simulate
    ("simulate", "--out", "{out}/s", "--start", "9999-12-01"),
    ("simulate", "--out", "{out}/s", "--start", "9999-12-30", "--weeks", "1"),
    ("simulate", "--out", "{out}/s", "--start", "2026-02-30"),
    ("simulate", "--out", "{out}/s", "--start", "1990-01-01", "--weeks", "1"),
    ("simulate", "--out", "{out}/s", "--start", "2090-01-01", "--weeks", "1"),
    ("simulate", "--out", "{out}/s", "--weeks", "0"),
    ("simulate", "--out", "{out}/s", "--weeks", "-3"),
    ("simulate", "--out", "{out}/s", "--scale", "nan"),
    ("simulate", "--out", "{out}/s", "--scale", "-1"),
    ("simulate", "--out", "{out}/s", "--scale", "inf"),
    ("simulate", "--out", "{out}/s", "--seed", "-1"),
    ("simulate", "--out", "{out}/s", "--seed", str(2**70)),
    ("simulate", "--out", "/proc/x", "--weeks", "1", "--scale", "0.001"),
    ("simulate", "--out", "/dev/full", "--weeks", "1", "--scale", "0.001"),
    ("simulate", "--out", "{file}/x", "--weeks", "1", "--scale", "0.001"),
    ("simulate", "--out", "{long}", "--weeks", "1", "--scale", "0.001"),
    # export
    ("export", "--week", "2026-W99", "--out", "{out}/e.csv"),
    ("export", "--week", "2026-w10x", "--out", "{out}/e.csv"),
    ("export", "--week", "2026-W10", "--vintages", "{corrupt_vintages}", "--out", "{out}/e.csv"),
    ("export", "--week", "2026-W10", "--vintages", "{truncated_vintages}", "--out", "{out}/e.xlsx"),
    ("export", "--week", "2026-W10", "--events", "{archive}", "--out", "/dev/full", "--format", "csv"),
    ("export", "--week", "2026-W10", "--events", "{archive}", "--out", "/dev/full", "--format", "xlsx"),
    ("export", "--week", "2026-W10", "--events", "{archive}", "--out", "/proc/x/e.csv"),
    ("export", "--week", "2026-W10", "--events", "{archive}", "--out", "{long}.csv"),
    ("export", "--week", "2026-W10", "--events", "{archive}", "--out", "{out}/e.bogus"),
    ("export", "--week", "2026-W10", "--events", "{archive}", "--out", "{out}/e.csv", "--format", "pdf"),
    ("export", "--week", "2026-W10", "--events", "{archive}", "--out", "{out}/e.csv", "--k", "-1"),
    ("export", "--week", "2026-W10", "--events", "{archive}", "--out", "{out}/e.csv", "--min-inspected", "x"),
    ("export", "--week", "2026-W10", "--events", "{archive}", "--out", "{out}/e.csv", "--vintage-time", "soon"),
    ("export", "--week", "2026-W10", "--events", "{eio_topic}", "--out", "{out}/e.csv"),
    ("export", "--week", "2026-W10", "--vintages", "{file}", "--out", "{out}/e.csv"),
    ("export", "--week", "2026-W10", "--vintages", "{long}", "--out", "{out}/e.csv"),
    ("export", "--week", "2026-W30", "--vintages", "{empty}", "--out", "{out}/e.csv"),
    # revisions
    ("revisions", "--week", "2026-W10", "--vintages", "{corrupt_vintages}"),
    ("revisions", "--week", "2026-W10", "--vintages", "{truncated_vintages}", "--json"),
    ("revisions", "--week", "W10"),
    ("revisions", "--week", "2026-W10", "--vintages", "{file}"),
    ("revisions", "--week", "2026-W10", "--vintages", "{long}"),
    ("revisions", "--week", "2026-W10", "--vintages", "{empty}"),
    # flag errors of the commands that start brokers, before any broker starts
    ("up", "--consumer", "bogus"),
    ("up", "--until-caught-up"),
    ("up", "--replay", "{root}/missing"),
    ("up", "--replay", "{fifo_topic}"),
    ("up", "--metrics-port", "70000"),
    ("up", "--start", "2026-13-01"),
    ("up", "--weeks", "0"),
    ("worker",),
    ("worker", "--broker", "kafka://127.0.0.1:1", "--partitions", "0"),
    ("replay", "--events", "{root}/missing", "--broker", "kafka://127.0.0.1:1"),
    ("replay", "--events", "{dir_topic}", "--broker", "kafka://127.0.0.1:1"),
    ("no-such-command",),
]


def run(args: list[str], cwd: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "SUITCASE_VINTAGES": str(Path(cwd) / "no-vintages")}
    env.pop("SUITCASE_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", "streams.commands.cli", *args], capture_output=True, text=True, timeout=300,
        cwd=cwd, env=env,
    )


def test_every_bad_path_file_or_value_is_one_line_and_exit_2(places):
    cases = [[a.format(**places) for a in case] for case in CASES]
    with ThreadPoolExecutor(3) as pool:
        done = list(pool.map(lambda args: run(args, places["root"]), cases))
    failures = []
    for args, result in zip(cases, done):
        err = result.stderr.splitlines()
        if not (result.returncode == 2 and len(err) == 1 and err[0].startswith("suitcase: error: ")
                and "Traceback" not in result.stderr):
            failures.append(f"{' '.join(args)[:120]} -> {result.returncode}: {result.stderr[-300:]!r}")
    assert not failures, "\n".join(failures)
    assert len(cases) >= 40


def test_the_errors_say_what_is_wrong(places):
    said = {
        ("validate", "--events", "{fifo_topic}"): "is not a regular file",
        ("validate", "--events", "{eio_topic}"): "Input/output error",
        ("validate", "--events", "{long}"): "File name too long",
        ("estimate", "--events", "{archive}", "--out", "/proc/x/estimate.csv"): "cannot write --out",
        ("estimate", "--events", "{nothing_valid}", "--out", "{out}/e.csv"): "no valid event",
        ("estimate", "--events", "{rates_only}", "--out", "{out}/e.csv"): "no valid departure",
        ("simulate", "--out", "{out}/s", "--start", "9999-12-01"): "past the year 9999",
        ("simulate", "--out", "{out}/s", "--start", "1990-01-01", "--weeks", "1"): "implausible",
        ("export", "--week", "2026-W10", "--events", "{archive}", "--out", "/dev/full", "--format", "csv"):
            "No space left on device",
        ("export", "--week", "2026-W10", "--vintages", "{corrupt_vintages}", "--out", "{out}/e.csv"):
            "cannot read the vintage store",
    }
    for case, words in said.items():
        result = run([a.format(**places) for a in case], places["root"])
        assert result.returncode == 2 and words in result.stderr, (case, result.stderr)


def test_estimate_with_no_valid_event_writes_nothing(places):
    out = Path(places["root"]) / "none" / "e.csv"
    result = run(["estimate", "--events", places["nothing_valid"], "--out", str(out)], places["root"])
    assert result.returncode == 2 and not out.exists()
    assert "0 accepted" in result.stderr and "not_json 1" in result.stderr


def test_simulate_says_what_it_wrote_in_a_sentence(places, tmp_path):
    result = run(["simulate", "--out", str(tmp_path / "w"), "--weeks", "1", "--scale", "0.005", "--faults"],
                 places["root"])
    assert result.returncode == 0, result.stderr
    text = result.stdout.strip()
    assert len(text.splitlines()) == 1 and "SimulationSummary" not in text and "{" not in text
    assert text.startswith("Wrote 7 simulated days from 2026-03-02 to ") and str(tmp_path / "w") in text
    lines = sum(p.read_bytes().count(b"\n") for p in (tmp_path / "w").glob("*.ndjson"))
    assert f"{lines:,} lines over 6 topic files" in text
    assert "True informal handicraft exports: $" in text and text.endswith(").")


def test_validate_and_estimate_end_with_a_one_line_account(places, tmp_path):
    result = run(["validate", "--events", places["archive"], "--json"], places["root"])
    assert result.returncode == 0
    report = json.loads(result.stdout)  # one JSON object, nothing else on stdout
    accepted = sum(t["accepted"] for t in report.values())
    assert result.stderr.splitlines() == [f"suitcase validate: {accepted:,} accepted, 0 duplicates, 0 rejected"]
    result = run(["validate", "--events", places["archive"]], places["root"])
    assert result.returncode == 0 and c.DEPARTURES in result.stdout
    assert result.stderr.splitlines() == [f"suitcase validate: {accepted:,} accepted, 0 duplicates, 0 rejected"]
    result = run(["estimate", "--events", places["archive"], "--out", str(tmp_path / "e.parquet")], places["root"])
    assert result.returncode == 0 and (tmp_path / "e.parquet").exists()
    assert result.stderr.splitlines() == [f"suitcase estimate: {accepted:,} accepted, 0 duplicates, 0 rejected"]


def test_an_unexpected_exception_is_one_line_and_exit_1(tmp_path):
    """A bug in a command (forced here: the archive reader is replaced by one that raises)
    is one line and exit 1; SUITCASE_DEBUG=1 shows its traceback."""
    code = (
        "import sys\n"
        "from streams.commands.cli import main\n"
        "def broken(*args, **kwargs): raise ZeroDivisionError('boom')\n"
        "import streams.pipeline.archive\n"
        "streams.pipeline.archive.validate = broken\n"
        "sys.exit(main(['validate', '--events', '.']))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [
        "suitcase: internal error: ZeroDivisionError: boom (SUITCASE_DEBUG=1 shows the traceback)"
    ]
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=120,
                            env={**os.environ, "SUITCASE_DEBUG": "1"})
    assert result.returncode == 1 and "Traceback" in result.stderr and "ZeroDivisionError" in result.stderr
