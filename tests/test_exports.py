"""Weekly exports: every format read back with a real reader and compared with the estimate."""

from __future__ import annotations

import csv
import datetime as dt
import random
import zipfile

import openpyxl
import polars as pl
import pytest

from streams.publish import exports
from streams.commands.cli import main
from streams.publish.exports import ADDED_COLUMNS, COLUMN_HELP, ESTIMATE_COLUMNS, export_table, write_export
from estimators.reference import BORDER_POSTS, CATEGORIES, DESTINATION_REGIONS
from streams.publish.vintages import VintageStore

WEEKS = ("2026-W04", "2026-W05", "2026-W06", "2026-W07")
WEEK = "2026-W07"
FLASH_TIME = dt.datetime(2026, 2, 23, 0, 5, 12, tzinfo=dt.UTC)
SMALL_POST, THIN_CATEGORY = "NOR", "basketry"


def estimate_table(seed: int = 7, weeks=WEEKS) -> pl.DataFrame:
    """A stand-in for ``suitcase estimate``: its columns, plausible numbers, and small cells.

    In every week Norduz has 4 departures (too few travellers) and basketry 2 random
    inspections (too few inspected); one extra column stands for the estimator's extras.
    """
    rnd = random.Random(seed)
    rows = []
    for w, week in enumerate(weeks):
        cells = [("category", c) for c in CATEGORIES] + [("border_post", p) for p in BORDER_POSTS] + [
            ("destination_region", r) for r in DESTINATION_REGIONS]
        parts = []
        for domain, key in cells:
            est = rnd.uniform(2e4, 9e5)
            se = est * rnd.uniform(0.05, 0.3)
            parts.append({
                "week": week, "domain": domain, "key": key,
                "estimate_usd": est, "ci_low_usd": est - 1.96 * se, "ci_high_usd": est + 1.96 * se,
                "std_error_usd": se,
                "formal_exports_usd": 0.0 if key == "kilim" else rnd.uniform(1e4, 8e5),
                "n_departures": 4 if key == SMALL_POST else rnd.randint(200, 90_000),
                "n_inspected": 2 if key == THIN_CATEGORY else (0 if key == SMALL_POST else rnd.randint(5, 900)),
                "method": "pooled" if key == SMALL_POST else "design",
            })
        total = 3e6 + 1e5 * w + 0.37
        se = 2.1e5
        rows.append({
            "week": week, "domain": "total", "key": "all", "estimate_usd": total,
            "ci_low_usd": total - 1.96 * se, "ci_high_usd": total + 1.96 * se, "std_error_usd": se,
            "formal_exports_usd": 2.5e6, "n_departures": 240_000, "n_inspected": 4_800, "method": "design",
        })
        rows.extend(parts)
    return pl.DataFrame(rows)


def publish_weeks(root, table=None) -> VintageStore:
    table = estimate_table() if table is None else table
    store = VintageStore(root)
    for i, week in enumerate(WEEKS):
        store.publish(week, table.filter(pl.col("week") == week),
                      FLASH_TIME - dt.timedelta(days=7 * (len(WEEKS) - 1 - i)), {"border.departures": 1000})
    return store


@pytest.fixture
def table():
    return estimate_table()


@pytest.fixture
def exported(table):
    return export_table(table, WEEK, "flash", FLASH_TIME)


def check_against_estimate(got: pl.DataFrame, estimate: pl.DataFrame, status="flash", vintage_time=FLASH_TIME,
                           cents: bool = False):
    """Every row of the week is there with the estimate's numbers, small cells blank and explained."""
    want = estimate.filter(pl.col("week") == WEEK)
    assert got.height == want.height
    assert got.columns[: len(want.columns)] == want.columns
    assert got.columns[len(want.columns):] == list(ADDED_COLUMNS)
    by_key = {(r["domain"], r["key"]): r for r in got.to_dicts()}
    complementary = 0
    for w in want.to_dicts():
        g = by_key[(w["domain"], w["key"])]
        for column in ("n_departures", "n_inspected", "method"):
            assert g[column] == w[column]
        money = {"abs": 0.005} if cents else {"rel": 1e-12}  # CSV: rounded to the cent
        assert g["formal_exports_usd"] == pytest.approx(w["formal_exports_usd"], **money)
        if w["key"] == SMALL_POST:
            assert g["suppressed"] == "few_travellers;few_inspected"
        elif w["key"] == THIN_CATEGORY:
            assert g["suppressed"] == "few_inspected"
        elif g["suppressed"] is not None:
            assert g["suppressed"] == "complementary"
            complementary += 1
        if g["suppressed"] is None:
            for column in ("estimate_usd", "ci_low_usd", "ci_high_usd", "std_error_usd"):
                assert g[column] == pytest.approx(w[column], **money), column
            if w["formal_exports_usd"] == 0:
                assert g["informal_to_formal_ratio"] is None
            else:
                ratio = w["estimate_usd"] / w["formal_exports_usd"]
                assert g["informal_to_formal_ratio"] == pytest.approx(ratio, rel=1e-12)
        else:
            assert all(g[c] is None for c in ("estimate_usd", "ci_low_usd", "ci_high_usd", "std_error_usd",
                                              "informal_to_formal_ratio"))
        assert g["status"] == status
        assert str(g["vintage_time"]).startswith(vintage_time.strftime("%Y-%m-%d"))
        assert g["solar_hijri_week_start"] == "1404-11-20"
        assert g["solar_hijri_week_end"] == "1404-11-26"
        assert (g["iranian_year"], g["iranian_month"]) == (1404, 11)
    # one blanked cell in category and one in border_post: one complement each
    assert complementary == 2
    total = by_key[("total", "all")]
    assert total["estimate_usd"] == pytest.approx(want.filter(pl.col("domain") == "total")["estimate_usd"][0])


def test_export_table_matches_the_estimate(table, exported):
    check_against_estimate(exported, table)
    assert exported.schema["vintage_time"] == pl.Datetime("us", "UTC")


def test_csv(tmp_path, table, exported):
    path = write_export(exported, tmp_path / "w07.csv")
    got = pl.read_csv(path)
    check_against_estimate(got, table, cents=True)
    assert got["vintage_time"][0] == "2026-02-23T00:05:12.000000Z"


def test_parquet(tmp_path, table, exported):
    got = pl.read_parquet(write_export(exported, tmp_path / "w07.parquet"))
    check_against_estimate(got, table)
    assert got.equals(exported)


def test_xlsx_data_sheet_with_polars_and_openpyxl(tmp_path, table, exported):
    path = write_export(exported, tmp_path / "w07.xlsx", history=exports._history_totals(table, 10, 3))
    got = pl.read_excel(path, sheet_name="estimates", engine="openpyxl",
                        schema_overrides={"informal_to_formal_ratio": pl.Float64})
    check_against_estimate(got, table)

    book = openpyxl.load_workbook(path)
    assert book.sheetnames == ["estimates", "about", "trend"]
    sheet = book["estimates"]
    assert sheet.freeze_panes == "D2"
    assert sheet.auto_filter.ref == f"A1:{openpyxl.utils.get_column_letter(len(exported.columns))}{exported.height + 1}"
    header = [c.value for c in sheet[1]]
    assert header == exported.columns
    money = header.index("estimate_usd") + 1
    assert sheet.cell(row=2, column=money).number_format == "#,##0"
    assert sheet.column_dimensions[openpyxl.utils.get_column_letter(money)].width >= 14


def test_xlsx_explains_every_column_and_the_method(tmp_path, table, exported):
    path = write_export(exported, tmp_path / "w07.xlsx", history=exports._history_totals(table, 10, 3))
    about = openpyxl.load_workbook(path)["about"]
    text = {row[0]: row[1] for row in about.iter_rows(values_only=True) if row and row[0]}
    for column in exported.columns:
        assert column in text and len(text[column]) > 20, column
    everything = " ".join(str(v) for row in about.iter_rows(values_only=True) for v in row if v)
    for words in ("random", "bootstrap", "95%", "flash", "revised", "declared", "Confidentiality"):
        assert words in everything


def test_xlsx_trend_chart_with_its_band(tmp_path, table, exported):
    history = exports._history_totals(table, 10, 3)
    path = write_export(exported, tmp_path / "w07.xlsx", history=history)
    trend = openpyxl.load_workbook(path)["trend"]
    rows = list(trend.iter_rows(min_row=2, max_col=5, values_only=True))
    assert [r[0] for r in rows] == list(WEEKS)
    totals = table.filter(pl.col("domain") == "total").sort("week")
    for r, t in zip(rows, totals.to_dicts(), strict=True):
        assert r[1] == pytest.approx(t["estimate_usd"])
        assert r[4] == pytest.approx(t["ci_high_usd"] - t["ci_low_usd"])
    with zipfile.ZipFile(path) as z:
        charts = [n for n in z.namelist() if n.startswith("xl/charts/chart")]
        assert len(charts) == 1
        xml = z.read(charts[0]).decode()
    assert "<c:areaChart>" in xml and "<c:lineChart>" in xml
    assert "trend!$B$2:$B$5" in xml and "trend!$E$2:$E$5" in xml


def test_sdmx_csv_read_back_with_sdmx1(tmp_path, table, exported):
    sdmx = pytest.importorskip("sdmx")
    path = write_export(exported, tmp_path / "w07.sdmx.csv")
    message = sdmx.read_sdmx(path, structure=exports.sdmx_structure())
    assert len(message.data) == 1
    observations = message.data[0].obs
    want = {(r["domain"], r["key"]): r for r in exported.to_dicts()}
    seen = set()
    for obs in observations:
        key = {k: v.value for k, v in obs.dimension.values.items()}
        attrs = {k: v.value for k, v in obs.attached_attribute.items()}
        assert key["FREQ"] == "W" and key["TIME_PERIOD"] == WEEK
        row = want[(key["DOMAIN"], key["BREAKDOWN"])]
        column, unit = exports.SDMX_MEASURES[key["MEASURE"]]
        assert attrs["UNIT_MEASURE"] == unit
        assert attrs["VINTAGE_STATUS"] == "flash"
        seen.add((key["DOMAIN"], key["BREAKDOWN"], key["MEASURE"]))
        if row[column] is None:
            assert obs.value in ("", None)
            if row["suppressed"]:
                assert attrs["OBS_STATUS"] == "Q"
                assert attrs["CONF_STATUS"] == ("D" if row["suppressed"] == "complementary" else "C")
                assert attrs["SUPPRESSION_REASON"] == row["suppressed"]
        else:
            assert float(obs.value) == pytest.approx(row[column], rel=1e-15)
            assert attrs["CONF_STATUS"] == "F"
        if key["MEASURE"] == "INFORMAL_EXPORTS" and row["estimate_usd"] is not None:
            assert float(attrs["CI_LOWER_95"]) == pytest.approx(row["ci_low_usd"], rel=1e-15)
            assert float(attrs["CI_UPPER_95"]) == pytest.approx(row["ci_high_usd"], rel=1e-15)
            assert float(attrs["STD_ERROR"]) == pytest.approx(row["std_error_usd"], rel=1e-15)
    measures = [m for m, (c, _) in exports.SDMX_MEASURES.items() if c in exported.columns]
    assert seen == {(d, k, m) for (d, k) in want for m in measures}
    with path.open() as f:
        assert f.readline().startswith("STRUCTURE,STRUCTURE_ID,ACTION,")


# -- the command ---------------------------------------------------------------------------
@pytest.mark.parametrize(("name", "reader"), [
    ("w07.csv", pl.read_csv),
    ("w07.parquet", pl.read_parquet),
    ("w07.xlsx", lambda p: pl.read_excel(p, sheet_name="estimates", engine="openpyxl",
                                         schema_overrides={"informal_to_formal_ratio": pl.Float64})),
])
def test_export_command_from_the_vintage_store(tmp_path, table, name, reader, capsys):
    publish_weeks(tmp_path / "vintages", table)
    out = tmp_path / name
    assert main(["export", "--week", WEEK, "--vintages", str(tmp_path / "vintages"), "--out", str(out)]) == 0
    assert "flash" in capsys.readouterr().out
    check_against_estimate(reader(out), table, cents=name.endswith(".csv"))


def test_export_command_default_store_from_environment(tmp_path, table, monkeypatch):
    publish_weeks(tmp_path / "elsewhere", table)
    monkeypatch.setenv("SUITCASE_VINTAGES", str(tmp_path / "elsewhere"))
    out = tmp_path / "w07.data"
    assert main(["export", "--week", WEEK, "--format", "sdmx-csv", "--out", str(out)]) == 0
    assert out.read_text().startswith("STRUCTURE,")


def test_export_command_from_an_archive(tmp_path, table, monkeypatch):
    seen = []
    monkeypatch.setattr(exports, "_estimate_archive", lambda d: seen.append(d) or table)
    out = tmp_path / "w07.csv"
    assert main(["export", "--week", WEEK, "--events", str(tmp_path), "--out", str(out),
                 "--vintage-time", "2026-03-01T12:00:00+00:00"]) == 0
    assert seen == [tmp_path]
    check_against_estimate(pl.read_csv(out), table, status="revised",
                           vintage_time=dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC), cents=True)


def test_thresholds_are_configurable(tmp_path, table):
    publish_weeks(tmp_path / "v", table)
    out = tmp_path / "w07.csv"
    assert main(["export", "--week", WEEK, "--vintages", str(tmp_path / "v"), "--out", str(out),
                 "--k", "1", "--min-inspected", "0"]) == 0
    assert pl.read_csv(out)["suppressed"].null_count() == table.filter(pl.col("week") == WEEK).height


@pytest.mark.parametrize(("args", "message"), [
    (["--week", "2026-W7"], "not an ISO week"),
    (["--week", "2025-W53"], "no ISO week 53"),
    (["--week", "2026-W09"], "no published vintage for week 2026-W09"),
    (["--week", WEEK, "--format", "json"], "unknown --format"),
    (["--week", WEEK, "--out-name", "w07.txt"], "cannot tell the format"),
    (["--week", WEEK, "--events", "EVENTS"], "not both"),
])
def test_export_errors_are_one_line_exit_2(tmp_path, table, capsys, args, message):
    publish_weeks(tmp_path / "v", table)
    out = str(tmp_path / "w07.csv")
    if "--out-name" in args:
        i = args.index("--out-name")
        out = str(tmp_path / args[i + 1])
        args = args[:i] + args[i + 2:]
    args = [a.replace("EVENTS", str(tmp_path)) for a in args]
    assert main(["export", *args, "--vintages", str(tmp_path / "v"), "--out", out]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("suitcase: error:") and message in err


def test_archive_without_the_week_is_one_line_exit_2(tmp_path, table, monkeypatch, capsys):
    monkeypatch.setattr(exports, "_estimate_archive", lambda d: table)
    assert main(["export", "--week", "2026-W20", "--events", str(tmp_path), "--out",
                 str(tmp_path / "x.csv")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no estimate for week 2026-W20" in err


def test_nan_is_a_blank_cell_in_excel_and_sdmx(tmp_path, table):
    nan = table.with_columns(pl.lit(float("nan")).alias("ci_low_usd"))
    exported = export_table(nan, WEEK, "flash", FLASH_TIME)
    path = write_export(exported, tmp_path / "w07.xlsx", history=exports._history_totals(nan, 10, 3))
    sheet = openpyxl.load_workbook(path)["estimates"]
    column = exported.columns.index("ci_low_usd") + 1
    assert all(sheet.cell(row=r, column=column).value is None for r in range(2, exported.height + 2))
    rows = exports.sdmx_rows(exported)
    assert {r["CI_LOWER_95"] for r in rows} == {""}


def test_column_help_covers_every_column():
    for column in (*ESTIMATE_COLUMNS, *ADDED_COLUMNS, "n_travellers"):
        assert column in COLUMN_HELP


# -- against the real batch estimate, once it exists ---------------------------------------
def test_export_from_an_archive_matches_suitcase_estimate(tmp_path, capsys):
    pytest.importorskip("streams.pipeline.batch")
    from streams.simulation.simulator import WorldConfig, simulate

    events = tmp_path / "events"
    simulate(events, WorldConfig(seed=3, start=dt.date(2026, 2, 2), weeks=2, scale=0.002))
    assert main(["estimate", "--events", str(events), "--out", str(tmp_path / "estimate.parquet")]) == 0
    estimate = pl.read_parquet(tmp_path / "estimate.parquet")
    week = sorted(estimate["week"].unique().to_list())[0]
    out = tmp_path / "export.parquet"
    assert main(["export", "--events", str(events), "--week", week, "--out", str(out)]) == 0
    got = pl.read_parquet(out)
    want = estimate.filter(pl.col("week") == week)
    assert got.height == want.height
    # every published row is the estimate's row, column for column; blanked rows keep their counts
    published = got.filter(pl.col("suppressed").is_null()).select(want.columns).sort("domain", "key")
    assert published.equals(want.join(published.select("domain", "key"), on=["domain", "key"])
                            .select(want.columns).sort("domain", "key"))
    blanked = got.filter(pl.col("suppressed").is_not_null())
    assert blanked["estimate_usd"].is_null().all()
    # a total is never blanked to protect another cell; it is blanked only when it rests on
    # fewer than k distinct travellers itself (a tiny world: few declarers, few inspected)
    totals = got.filter(pl.col("domain") == "total")
    assert (totals["suppressed"].fill_null("") != "complementary").all()
    from estimators.disclosure import DEFAULT_K, DEFAULT_MIN_INSPECTED
    own = (totals["n_travellers"] < DEFAULT_K) | (totals["n_inspected"] < DEFAULT_MIN_INSPECTED)
    assert totals["suppressed"].is_null().equals(~own)


def test_csv_money_is_rounded_to_cents(tmp_path, exported):
    noisy = exported.with_columns(pl.col("estimate_usd") + 0.049999999999, pl.col("formal_exports_usd") + 1e-9)
    path = write_export(noisy, tmp_path / "w07.csv")
    header, *lines = path.read_text().splitlines()
    columns = header.split(",")
    for line in lines:
        for name, value in zip(columns, next(csv.reader([line]))):
            if name.endswith("_usd") and value:
                assert len(value.partition(".")[2]) <= 2, (name, value)
    got = pl.read_csv(path)
    assert got["estimate_usd"].to_list() == pytest.approx(noisy["estimate_usd"].round(2).to_list(), nan_ok=True)


def test_xlsx_reads_and_prints_well(tmp_path, table, exported):
    """Wrapped text of the about sheet gets row heights (LibreOffice does not grow rows),
    the Iranian year prints as 1405, and every sheet prints one page wide, landscape for
    the data (its header on every page) and the chart on one page."""
    path = write_export(exported, tmp_path / "w07.xlsx", history=exports._history_totals(table, 10, 3))
    book = openpyxl.load_workbook(path)
    about = book["about"]
    for row in about.iter_rows(min_row=3):
        text = row[1].value
        if text and len(str(text)) > 110:
            height = about.row_dimensions[row[1].row].height
            assert height is not None and height >= 15 * (len(str(text)) // 110 + 1), (text[:40], height)
    sheet = book["estimates"]
    year = [c.value for c in sheet[1]].index("iranian_year") + 1
    assert sheet.cell(row=2, column=year).value == exported["iranian_year"][0]
    assert sheet.cell(row=2, column=year).number_format == "0"
    assert sheet.page_setup.orientation == "landscape"
    assert sheet.sheet_properties.pageSetUpPr.fitToPage
    # (OOXML's default of fitToWidth and fitToHeight is 1, so a writer may leave a 1 out)
    assert (sheet.page_setup.fitToWidth or 1, sheet.page_setup.fitToHeight) == (1, 0)
    assert sheet.print_title_rows.replace("$", "") == "1:1"
    trend = book["trend"]
    assert trend.page_setup.orientation == "landscape"
    assert trend.sheet_properties.pageSetUpPr.fitToPage
    assert (trend.page_setup.fitToWidth or 1, trend.page_setup.fitToHeight or 1) == (1, 1)
    assert str(trend.print_area).endswith("$A$1:$T$24")  # the table and all of the chart
