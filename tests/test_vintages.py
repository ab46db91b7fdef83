"""The vintage store: flash then revised, never overwritten; revisions say which sources moved them."""

from __future__ import annotations

import datetime as dt
import json
import os

import polars as pl
import pytest

from streams.commands.cli import main
from streams.publish.exports import write_weekly_exports
from streams.publish.vintages import (
    TEHRAN,
    VintageStore,
    due_for_flash,
    numbers_changed,
    revision_rows,
    week_closes_at,
)
from tests.test_exports import WEEK, estimate_table

T0 = dt.datetime(2026, 2, 23, 0, 5, tzinfo=dt.UTC)


@pytest.fixture
def rows():
    return estimate_table().filter(pl.col("week") == WEEK)


def bump_total(rows, by):
    return rows.with_columns(
        pl.when(pl.col("domain") == "total").then(pl.col(c) + by).otherwise(pl.col(c)).alias(c)
        for c in ("estimate_usd", "ci_low_usd", "ci_high_usd")
    )


def snapshot(root):
    return {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(root.rglob("*.parquet"))}


def test_flash_then_revised_and_nothing_rewritten(tmp_path, rows):
    store = VintageStore(tmp_path)
    assert store.latest(WEEK) is None and store.history(WEEK) == [] and not store.has(WEEK)
    assert store.publish(WEEK, rows, T0, {"border.departures": 240_000, "customs.inspections": 4_800}) == "flash"
    first = snapshot(tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in first] == [
        "week=2026-W07/vintage-20260223T000500.000000Z.parquet"]

    # same numbers, or moves within rounding: no new vintage
    assert store.publish(WEEK, rows, T0 + dt.timedelta(hours=1), {"customs.inspections": 1}) is None
    assert store.publish(WEEK, bump_total(rows, 0.49), T0 + dt.timedelta(hours=2), {}) is None
    assert snapshot(tmp_path) == first

    moved = bump_total(rows, 12_345.0)
    assert store.publish(WEEK, moved, T0 + dt.timedelta(days=1), {"customs.inspections": 7, "border.departures": 0}) == "revised"
    # a count changing is a revision too
    counted = moved.with_columns(pl.when(pl.col("key") == "IKA").then(pl.col("n_departures") + 1)
                                 .otherwise(pl.col("n_departures")).alias("n_departures"))
    assert store.publish(WEEK, counted, T0 + dt.timedelta(days=2), {"border.departures": 1}) == "revised"

    after = snapshot(tmp_path)
    assert len(after) == 3
    for path, state in first.items():
        assert after[path] == state  # the flash file is untouched

    history = store.history(WEEK)
    assert [v.status for v in history] == ["flash", "revised", "revised"]
    assert [v.vintage_time for v in history] == [T0, T0 + dt.timedelta(days=1), T0 + dt.timedelta(days=2)]
    assert history[1].sources_changed == {"border.departures": 0, "customs.inspections": 7}
    latest = store.latest(WEEK)
    assert latest.columns == [*rows.columns, "status", "vintage_time"]
    assert latest.drop("status", "vintage_time").equals(counted)
    assert latest["status"].unique().to_list() == ["revised"]
    assert history[0].rows().drop("status", "vintage_time").equals(rows)
    assert store.weeks() == [WEEK]


def test_no_revision_without_late_events_of_the_week(tmp_path, rows):
    """Numbers that moved with no event of the week (borrowed strength from the
    neighbouring weeks) write no vintage; the next late event of the week does."""
    store = VintageStore(tmp_path)
    assert store.publish(WEEK, rows, T0, {"border.departures": 10}) == "flash"
    moved = bump_total(rows, 5_000.0)
    assert store.publish(WEEK, moved, T0 + dt.timedelta(hours=1), {}) is None
    assert store.publish(WEEK, moved, T0 + dt.timedelta(hours=2), {"border.departures": 0}) is None
    assert store.publish(WEEK, moved, T0 + dt.timedelta(hours=3), {"customs.declarations": 3}) == "revised"
    assert [v.sources_changed for v in store.history(WEEK)] == [{"border.departures": 10}, {"customs.declarations": 3}]


def test_vintage_times_only_move_forward(tmp_path, rows):
    store = VintageStore(tmp_path)
    store.publish(WEEK, rows, T0)
    assert store.publish(WEEK, rows, T0 - dt.timedelta(days=1)) is None  # a replay: nothing new
    with pytest.raises(ValueError, match="not after"):
        store.publish(WEEK, bump_total(rows, 1e6), T0, {"customs.declarations": 1})
    with pytest.raises(ValueError, match="not after"):
        store.publish(WEEK, bump_total(rows, 1e6), T0 - dt.timedelta(seconds=1), {"customs.declarations": 1})
    with pytest.raises(ValueError, match="timezone"):
        store.publish(WEEK, rows, dt.datetime(2026, 3, 1))
    assert len(store.history(WEEK)) == 1


def test_an_existing_vintage_file_is_never_replaced(tmp_path, rows):
    store = VintageStore(tmp_path)
    store.publish(WEEK, rows, T0)
    [path] = store.root.rglob("*.parquet")
    before = path.read_bytes()
    with pytest.raises(FileExistsError):
        store._write(WEEK, rows, T0, "revised", {})
    assert path.read_bytes() == before
    assert not list(store.root.rglob(".tmp-*"))


def test_rows_must_be_of_the_week(tmp_path, rows):
    store = VintageStore(tmp_path)
    with pytest.raises(ValueError, match="not 2026-W08"):
        store.publish("2026-W08", rows, T0)
    with pytest.raises(ValueError):
        store.publish("2026-W8", rows, T0)
    with pytest.raises(ValueError):
        store.publish(WEEK, rows.clear(), T0)
    # rows without a week column get it
    assert store.publish(WEEK, rows.drop("week"), T0) == "flash"
    assert store.latest(WEEK)["week"].unique().to_list() == [WEEK]


def test_numbers_changed_tolerance_and_cells(rows):
    assert not numbers_changed(rows, rows)
    assert not numbers_changed(rows, bump_total(rows, 0.5))
    assert numbers_changed(rows, bump_total(rows, 0.51))
    assert numbers_changed(rows, bump_total(rows, 0.3), tolerance_usd=0.1)
    assert numbers_changed(rows, rows.filter(pl.col("key") != "IKA"))
    nulled = rows.with_columns(pl.when(pl.col("key") == "IKA").then(None).otherwise(pl.col("estimate_usd"))
                               .alias("estimate_usd"))
    assert numbers_changed(rows, nulled) and not numbers_changed(nulled, nulled)
    assert not numbers_changed(rows, rows.reverse())  # order does not matter
    no_interval = rows.with_columns(pl.lit(float("nan")).alias("ci_low_usd"))
    assert not numbers_changed(no_interval, no_interval)  # NaN is not a change
    assert numbers_changed(rows, no_interval)


def test_due_for_flash():
    closes = week_closes_at(WEEK)
    assert closes == dt.datetime(2026, 2, 16, 0, 0, tzinfo=TEHRAN)
    assert closes.utcoffset() == dt.timedelta(hours=3, minutes=30)
    week = dt.timedelta(days=7)
    assert not due_for_flash(WEEK, closes + week - dt.timedelta(microseconds=1))
    assert due_for_flash(WEEK, closes + week)
    assert due_for_flash(WEEK, (closes + week).astimezone(dt.UTC))  # any zone
    assert not due_for_flash(WEEK, closes - dt.timedelta(seconds=1), delay=dt.timedelta(0))
    assert due_for_flash(WEEK, closes + dt.timedelta(days=2), delay=dt.timedelta(days=2))
    with pytest.raises(ValueError):
        due_for_flash(WEEK, dt.datetime(2026, 3, 1))


def publish_three(root, rows):
    store = VintageStore(root)
    store.publish(WEEK, rows, T0, {"border.departures": 240_000, "customs.inspections": 4_800,
                                   "travellers.declarations": 30_000})
    store.publish(WEEK, bump_total(rows, 150_000.0), T0 + dt.timedelta(days=2),
                  {"customs.inspections": 42, "travellers.declarations": 3})
    store.publish(WEEK, bump_total(rows, 100_000.0), T0 + dt.timedelta(days=5),
                  {"border.departures": 1_234})
    return store


def test_revisions_command_explains_what_moved_the_total(tmp_path, rows, capsys):
    publish_three(tmp_path, rows)
    total = rows.filter(pl.col("domain") == "total")["estimate_usd"][0]
    assert main(["revisions", "--week", WEEK, "--vintages", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if "2026-02-" in line]
    assert len(lines) == 3
    assert "flash" in lines[0] and f"{total:,.0f}" in lines[0] and "border.departures +240,000" in lines[0]
    assert "revised" in lines[1] and "+150,000" in lines[1] and "customs.inspections +42" in lines[1]
    assert "travellers.declarations +3" in lines[1]
    assert "-50,000" in lines[2] and "border.departures +1,234" in lines[2]
    assert "customs.inspections" not in lines[2]

    assert main(["revisions", "--week", WEEK, "--vintages", str(tmp_path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [v["status"] for v in report["vintages"]] == ["flash", "revised", "revised"]
    assert [v["change_usd"] for v in report["vintages"]] == [None, pytest.approx(150_000.0), pytest.approx(-50_000.0)]
    assert report["vintages"][1]["sources_changed"] == {"customs.inspections": 42, "travellers.declarations": 3}


def test_revisions_without_vintages_is_one_line_exit_2(tmp_path, capsys):
    assert main(["revisions", "--week", WEEK, "--vintages", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no published vintage for week 2026-W07" in err
    assert main(["revisions", "--week", "2026W07", "--vintages", str(tmp_path)]) == 2
    assert "not an ISO week" in capsys.readouterr().err


def test_revision_rows_suppress_a_small_total(tmp_path, rows):
    store = VintageStore(tmp_path)
    tiny = rows.with_columns(pl.when(pl.col("domain") == "total").then(5).otherwise(pl.col("n_departures"))
                             .alias("n_departures"))
    store.publish(WEEK, tiny, T0)
    [row] = revision_rows(store, WEEK)
    assert row["estimate_usd"] is None and row["suppressed"] == "few_travellers"


def test_weekly_exports_keep_every_vintage(tmp_path, rows):
    store = publish_three(tmp_path / "vintages", rows)
    out = tmp_path / "exports"
    paths = write_weekly_exports(store, WEEK, out, formats=("xlsx", "csv", "sdmx-csv", "parquet"))
    assert [p.name for p in paths] == [
        f"suitcase-{WEEK}-revised-20260228T000500Z{ext}" for ext in (".xlsx", ".csv", ".sdmx.csv", ".parquet")]
    for p in paths:
        assert p.stat().st_size > 0
    stamps = {p: p.stat().st_mtime_ns for p in paths}
    assert write_weekly_exports(store, WEEK, out, formats=("xlsx", "csv", "sdmx-csv", "parquet")) == paths
    assert {p: p.stat().st_mtime_ns for p in paths} == stamps  # a retry rewrites nothing
    got = pl.read_csv(paths[1])
    assert got["status"].unique().to_list() == ["revised"]
    total = got.filter(pl.col("domain") == "total")["estimate_usd"][0]
    assert total == pytest.approx(rows.filter(pl.col("domain") == "total")["estimate_usd"][0] + 100_000.0)
    assert not [n for n in os.listdir(out) if n.startswith(".tmp")]


def test_weekly_exports_after_the_flash(tmp_path, rows):
    store = VintageStore(tmp_path / "vintages")
    store.publish(WEEK, rows, T0)
    [path] = write_weekly_exports(store, WEEK, tmp_path / "exports", formats=["xlsx"])
    assert path.name == f"suitcase-{WEEK}-flash-20260223T000500Z.xlsx"
    store.publish(WEEK, bump_total(rows, 10.0), T0 + dt.timedelta(days=1), {"customs.declarations": 2})
    [later] = write_weekly_exports(store, WEEK, tmp_path / "exports", formats=["xlsx"])
    assert later.name.startswith(f"suitcase-{WEEK}-revised-") and path.exists()


def test_doctests():
    import doctest

    import streams.publish.exports
    import streams.publish.vintages

    assert doctest.testmod(streams.publish.vintages).failed == 0
    assert doctest.testmod(streams.publish.exports).failed == 0
