"""Done-when of the vintage churn (issue 13): after ``suitcase up --replay DIR
--until-caught-up``, no week has more vintages than the late events that moved it
explain, and every revised vintage names its sources."""

from __future__ import annotations

import shutil
from pathlib import Path

import polars as pl
import pytest

from streams.commands.cli import main
from streams.pipeline.contract import DECLARATIONS, DEPARTURES, INSPECTIONS, TOPICS
from streams.publish.vintages import VintageStore

pytestmark = pytest.mark.broker


def part(archive: Path, into: Path, topics) -> Path:
    into.mkdir()
    for topic in topics:
        shutil.copy(archive / f"{topic}.ndjson", into)
    return into


def test_up_replay_writes_a_vintage_only_for_late_events_of_the_week(broker, app_id, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("SUITCASE_VINTAGES", raising=False)
    world = tmp_path / "world"
    assert main(["simulate", "--out", str(world), "--scale", "0.01", "--weeks", "4", "--seed", "5"]) == 0
    on_time = part(world, tmp_path / "on-time", [t for t in TOPICS if t != DECLARATIONS])
    late = part(world, tmp_path / "late", [DECLARATIONS])
    data = tmp_path / "data"
    # The border's events, then (a restart later) the declarations that arrive late.
    for events in (on_time, late):
        assert main(["up", "--broker", broker.url, "--app-id", app_id, "--metrics-port", "0",
                     "--data-dir", str(data), "--replay", str(events), "--until-caught-up"]) == 0
        assert "live page on http://127.0.0.1:" in capsys.readouterr().out  # up prints the page's address

    store = VintageStore(data / "vintages")
    assert store.weeks() == ["2026-W10", "2026-W11"]  # closed for 7 days on the event clock
    late_declarations = sum(1 for line in (late / f"{DECLARATIONS}.ndjson").open() if line.strip())
    revised_declarations = 0
    for week in store.weeks():
        history = store.history(week)
        flash, revised = history[0], history[1:]
        assert flash.status == "flash" and all(v.status == "revised" for v in revised)
        # every revised vintage names the events of the week that arrived since the last one
        for v in revised:
            assert v.sources_changed and all(n > 0 for n in v.sources_changed.values()), v
        assert len(revised) <= sum(sum(v.sources_changed.values()) for v in revised)
        # and the counts are exact: over the vintages they add up to the week's census
        last = store.latest(week).filter((pl.col("domain") == "total") & (pl.col("key") == "all")).row(0, named=True)
        for topic, columns in ((DEPARTURES, ("n_departures",)), (DECLARATIONS, ("n_declarations",)),
                               (INSPECTIONS, ("n_inspected", "n_targeted"))):
            assert sum(v.sources_changed.get(topic, 0) for v in history) == sum(last[c] for c in columns), (week, topic)
        revised_declarations += sum(v.sources_changed.get(DECLARATIONS, 0) for v in revised)
    # the late declarations (the second run) revised the flashes, and explain no more than they are
    assert 0 < revised_declarations <= late_declarations
