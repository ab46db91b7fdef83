"""Live estimates become flash and revised vintages, and the week's files, by themselves."""

from __future__ import annotations

import datetime as dt
import json

import polars as pl
import pytest

from streams.commands.cli import main
from streams.publish.publishing import VintagePublisher
from streams.simulation.simulator import WorldConfig, simulate
from streams.publish.vintages import VintageStore, week_closes_at


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    from streams.pipeline.batch import estimate_archive

    archive = tmp_path_factory.mktemp("archive")
    simulate(archive, WorldConfig(seed=3, weeks=3, scale=0.01))
    return estimate_archive(archive)


def later(table, days):
    last = max(table["week"].to_list())
    return week_closes_at(last) + dt.timedelta(days=days)


def test_no_week_is_published_before_its_flash_delay(tmp_path, table):
    publisher = VintagePublisher(VintageStore(tmp_path / "v"))
    first = min(table["week"].to_list())
    assert publisher.consider(table, week_closes_at(first) + dt.timedelta(days=6)) == {}
    assert publisher.consider(table, week_closes_at(first) + dt.timedelta(days=7)) == {first: "flash"}


def test_flash_then_revised_when_late_events_move_a_week(tmp_path, table, capsys):
    store = VintageStore(tmp_path / "v")
    publisher = VintagePublisher(store, exports_dir=tmp_path / "exports")
    weeks = sorted(set(table["week"].to_list()))
    assert publisher.consider(table, later(table, 7)) == {w: "flash" for w in weeks}
    assert publisher.consider(table, later(table, 8)) == {}  # nothing new: nothing written
    week = weeks[0]
    files = sorted(p.suffix for p in (tmp_path / "exports").iterdir() if week in p.name)
    assert files, "the flash wrote the week's export files"

    # Late declarations arrive: the week's declared census and its estimate move.
    moved = table.with_columns(
        pl.when(pl.col("week") == week).then(pl.col("estimate_usd") * 1.1).otherwise(pl.col("estimate_usd")),
        pl.when(pl.col("week") == week).then(pl.col("n_declarations") + 25).otherwise(pl.col("n_declarations")),
    )
    assert publisher.consider(moved, later(table, 9)) == {week: "revised"}
    assert [v.status for v in store.history(week)] == ["flash", "revised"]

    assert main(["revisions", "--week", week, "--vintages", str(tmp_path / "v"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [v["status"] for v in report["vintages"]] == ["flash", "revised"]
    assert report["vintages"][1]["sources_changed"] == {"travellers.declarations": 25}
