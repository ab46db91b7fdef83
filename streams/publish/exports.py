"""Weekly estimate exports: the files economists open (CSV, Parquet, Excel, SDMX-CSV).

An export holds one week's rows of ``suitcase estimate`` (same columns, same numbers),
taken from the newest vintage in the vintage store (or from the batch estimate of an
archive, for backfills), with these columns added (see :data:`COLUMN_HELP`):

``informal_to_formal_ratio``, ``suppressed``, ``status``, ``vintage_time``,
``solar_hijri_week_start``, ``solar_hijri_week_end``, ``iranian_year``, ``iranian_month``.

Small cells are suppressed by :func:`estimators.disclosure.suppress` before anything is
written; totals are computed upstream from all travellers, so they stay correct.

Examples
--------
>>> infer_format(Path("w07.sdmx.csv")), infer_format(Path("w07.xlsx"))
('sdmx-csv', 'xlsx')
"""

from __future__ import annotations

import csv
import datetime
import math
import os
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path

import polars as pl

from estimators.disclosure import DEFAULT_K, DEFAULT_MIN_INSPECTED, suppress
from estimators.calendar import MONTH_NAMES, iso_week_solar_hijri, parse_iso_week
from streams.publish.vintages import VintageStore

__all__ = [
    "FORMATS",
    "SUFFIXES",
    "ESTIMATE_COLUMNS",
    "ADDED_COLUMNS",
    "COLUMN_HELP",
    "METHOD_TEXT",
    "ExportError",
    "infer_format",
    "export_table",
    "from_store",
    "from_archive",
    "write_export",
    "write_weekly_exports",
    "sdmx_rows",
    "sdmx_structure",
    "SDMX_STRUCTURE_ID",
]

#: Export formats, as ``--format`` spells them.
FORMATS: tuple[str, ...] = ("csv", "parquet", "xlsx", "sdmx-csv")
#: File name endings -> format (``.sdmx.csv`` is checked before ``.csv``).
SUFFIXES: dict[str, str] = {
    ".sdmx.csv": "sdmx-csv", ".csv": "csv", ".parquet": "parquet", ".pq": "parquet",
    ".xlsx": "xlsx",
}
_EXTENSION = {"csv": ".csv", "parquet": ".parquet", "xlsx": ".xlsx", "sdmx-csv": ".sdmx.csv"}

#: Columns of ``suitcase estimate`` (the estimator may add more after these; kept as is).
ESTIMATE_COLUMNS: tuple[str, ...] = (
    "week", "domain", "key", "estimate_usd", "ci_low_usd", "ci_high_usd", "std_error_usd",
    "formal_exports_usd", "n_departures", "n_inspected",
)
#: Columns an export adds after the estimate's own.
ADDED_COLUMNS: tuple[str, ...] = (
    "informal_to_formal_ratio", "suppressed", "status", "vintage_time",
    "solar_hijri_week_start", "solar_hijri_week_end", "iranian_year", "iranian_month",
)

#: Every column explained in plain words (the Excel "about" sheet and the README).
COLUMN_HELP: dict[str, str] = {
    "week": "ISO week of the travellers' departure, Monday to Sunday in Tehran time (2026-W07 = 9 to 15 February 2026).",
    "domain": "How the row cuts the total: total (everything), category (kind of handicraft), border_post (where travellers left), destination_region (where they went).",
    "key": "The category, border post code or destination region of the row; 'all' for the total.",
    "estimate_usd": "Estimated value, in US dollars, of handicrafts carried out by travellers who left that week and not covered by a formal export declaration (informal, 'suitcase' exports).",
    "ci_low_usd": "Lower end of the 95% confidence interval of the estimate, US dollars.",
    "ci_high_usd": "Upper end of the 95% confidence interval: the true value lies between ci_low_usd and ci_high_usd with 95% confidence.",
    "std_error_usd": "Standard error of the estimate, US dollars (about a quarter of the interval's width).",
    "formal_exports_usd": "Recorded (formal) handicraft exports of the same week and cell from customs export declarations, US dollars. Shown beside the estimate, never added to it.",
    "n_departures": "Number of departures counted at the borders (a complete count; a frequent traveller counts once per trip).",
    "n_inspected": "Number of travellers whose baggage customs inspected at random, from which the values are learnt.",
    "n_travellers": "Number of distinct travellers (a frequent traveller counts once); equal to the threshold k means 'k or more'.",
    # extras of the estimator (estimators/estimate.py COLUMNS)
    "n_declarations": "Number of declarations filed by departing travellers (all of them, not a sample).",
    "declared_usd": "Total value travellers declared, US dollars (all declarations; declared values tend to be below the true value).",
    "n_targeted": "Inspections chosen on suspicion (targeted). Reported apart; never used for the estimate, because they are not representative.",
    "targeted_assessed_usd": "Value customs assessed in the targeted inspections, US dollars (reported apart, not in the estimate).",
    "n_inspected_pooled": "Random inspections in the wider pool (neighbouring weeks, posts of the same kind) the row's value per traveller was learnt from, when the row alone had too few.",
    "pooling": "How widely inspections were pooled to learn the row's values, e.g. post±2w (same post, two weeks either side) or mode±2w (posts of the same kind).",
    "prediction_se_usd": "Part of the standard error that comes from travellers not inspected (the rest comes from the sample), US dollars.",
    "method": "Estimation method of the row: pooled-ratio (the project's estimator) or textbook (the classic survey formula, for comparison).",
    "tourist_handicraft_card_usd": "Net spending on tourist cards at handicraft merchants that week, US dollars (total row): a timely trend signal, not part of the estimate.",
    "informal_to_formal_ratio": "estimate_usd divided by formal_exports_usd: dollars carried informally for each dollar exported formally. Empty when there were no formal exports.",
    "suppressed": "Empty when the row is published. Otherwise why its values are blank: few_travellers (fewer than k distinct travellers), few_inspected (fewer than the minimum of inspected travellers), complementary (blanked so that a suppressed cell cannot be worked out from the total).",
    "status": "flash: the first estimate of the week, published once the week has closed plus a delay; revised: a later estimate that late-arriving records of the week changed.",
    "vintage_time": "When this vintage of the estimate was published (UTC). Every vintage is kept.",
    "solar_hijri_week_start": "First day (Monday) of the week in the Iranian (Solar Hijri) calendar, YYYY-MM-DD.",
    "solar_hijri_week_end": "Last day (Sunday) of the week in the Iranian (Solar Hijri) calendar, YYYY-MM-DD.",
    "iranian_year": "Iranian (Solar Hijri) year the week belongs to: the year of its Thursday, which holds most of its days.",
    "iranian_month": "Iranian month (1 = Farvardin ... 12 = Esfand) the week belongs to, by its Thursday.",
}

#: The method in plain words, one paragraph per line (Excel "about" sheet).
METHOD_TEXT: tuple[str, ...] = (
    "What is estimated: the US-dollar value of handicrafts (carpets, kilims, textiles, ceramics, metalwork, jewelry, woodwork, basketry) carried out of Iran in the luggage of travellers who left in the week, excluding goods that a formal export declaration covers.",
    "Departures: every traveller leaving is counted at the border, so the number of travellers is known exactly, by border post, by resident or visitor, and by week.",
    "Values: customs inspects a random sample of departing travellers and assesses the true value of the handicrafts they carry. The average value per traveller learnt from these random inspections is multiplied by the number of departures. Inspections chosen on suspicion (targeted) are not used for the level, because they are not representative.",
    "Declarations: for travellers who declared their goods, the declared values are scaled up by the ratio of assessed to declared value found among the inspected declarers (declared values tend to be too low); travellers who declared nothing are estimated from the inspected non-declarers.",
    "95% intervals: the estimate is recomputed on many bootstrap replicates (each inspected traveller given a random weight); the spread of these replicates gives the standard error and the 95% confidence interval.",
    "Formal exports are shown beside the estimate and never added to it; the ratio column compares the two.",
    "Vintages: a flash estimate is published for each week once it has closed plus a delay (7 days by default). Records that arrive later revise it: a new 'revised' vintage is published when late records of the week arrived and the figures changed by more than rounding. Every vintage is kept; vintage_time says which one this file holds.",
    "Confidentiality: a figure resting on fewer than k distinct travellers or fewer than a minimum number of inspected travellers is not published (blank, with the reason in 'suppressed'). Where one cell of a breakdown is blanked, a second is blanked too, so that it cannot be worked out from the total. Totals are always computed from all travellers.",
)

#: SDMX structure (dataflow) the SDMX-CSV files refer to.
SDMX_AGENCY = "SUITCASE"
SDMX_DATAFLOW = "DF_SUITCASE_EXPORTS"
SDMX_VERSION = "1.0"
SDMX_STRUCTURE_ID = f"{SDMX_AGENCY}:{SDMX_DATAFLOW}({SDMX_VERSION})"
SDMX_DIMENSIONS: tuple[str, ...] = ("FREQ", "DOMAIN", "BREAKDOWN", "MEASURE", "TIME_PERIOD")
SDMX_ATTRIBUTES: tuple[str, ...] = (
    "UNIT_MEASURE", "OBS_STATUS", "CONF_STATUS", "CI_LOWER_95", "CI_UPPER_95", "STD_ERROR",
    "VINTAGE_STATUS", "VINTAGE_TIME", "SUPPRESSION_REASON", "SOLAR_HIJRI_WEEK_START",
)
#: MEASURE code -> (source column, unit).
SDMX_MEASURES: dict[str, tuple[str, str]] = {
    "INFORMAL_EXPORTS": ("estimate_usd", "USD"),
    "FORMAL_EXPORTS": ("formal_exports_usd", "USD"),
    "INFORMAL_FORMAL_RATIO": ("informal_to_formal_ratio", "PURE_NUMB"),
    "DEPARTURES": ("n_departures", "PS"),
    "INSPECTED": ("n_inspected", "PS"),
    "TRAVELLERS": ("n_travellers", "PS"),
}



class ExportError(ValueError):
    """The export cannot be made as asked (one line, for the CLI)."""


def infer_format(path: Path) -> str:
    """The export format from a file name's ending; ExportError when none fits."""
    name = path.name.lower()
    for suffix, fmt in SUFFIXES.items():
        if name.endswith(suffix):
            return fmt
    raise ExportError(
        f"cannot tell the format of {path.name!r}; use --format {'|'.join(FORMATS)} "
        f"or a name ending in {', '.join(SUFFIXES)}"
    )


def _utc(moment: datetime.datetime) -> datetime.datetime:
    if moment.tzinfo is None:
        raise ExportError("vintage time must be timezone-aware")
    return moment.astimezone(datetime.timezone.utc)


def export_table(
    rows: pl.DataFrame,
    week: str,
    status: str,
    vintage_time: datetime.datetime,
    *,
    k: int = DEFAULT_K,
    min_inspected: int = DEFAULT_MIN_INSPECTED,
) -> pl.DataFrame:
    """One week's estimate rows, with the export's columns added and small cells suppressed.

    ``rows`` may hold other weeks (they are dropped); ``status`` and ``vintage_time``
    columns already in ``rows`` are replaced by the arguments.
    """
    parse_iso_week(week)
    if "week" in rows.columns:
        rows = rows.filter(pl.col("week") == week)
    if rows.height == 0:
        raise ExportError(f"no estimate for week {week}")
    rows = rows.drop([c for c in ADDED_COLUMNS if c in rows.columns])
    own = [c for c in ESTIMATE_COLUMNS if c in rows.columns]
    rows = rows.select(own + [c for c in rows.columns if c not in own])
    formal = pl.col("formal_exports_usd")
    rows = rows.with_columns(
        pl.when(formal.is_not_null() & (formal != 0))
        .then(pl.col("estimate_usd") / formal)
        .otherwise(None)
        .cast(pl.Float64)
        .alias("informal_to_formal_ratio")
    )
    rows = suppress(rows, k=k, min_inspected=min_inspected)
    shamsi = iso_week_solar_hijri(week)
    return rows.with_columns(
        pl.lit(status).alias("status"),
        pl.lit(_utc(vintage_time)).cast(pl.Datetime("us", "UTC")).alias("vintage_time"),
        pl.lit(str(shamsi.week_start)).alias("solar_hijri_week_start"),
        pl.lit(str(shamsi.week_end)).alias("solar_hijri_week_end"),
        pl.lit(shamsi.year, dtype=pl.Int32).alias("iranian_year"),
        pl.lit(shamsi.month, dtype=pl.Int32).alias("iranian_month"),
    ).select([c for c in rows.columns if c not in ADDED_COLUMNS] + list(ADDED_COLUMNS))


def _history_totals(totals: pl.DataFrame, k: int, min_inspected: int) -> pl.DataFrame:
    """Week, estimate and 95% band of the ``total`` rows, suppressed like the exports."""
    if totals.height == 0:
        return pl.DataFrame(schema={"week": pl.String, "estimate_usd": pl.Float64,
                                    "ci_low_usd": pl.Float64, "ci_high_usd": pl.Float64})
    totals = suppress(totals.filter(pl.col("domain") == "total"), k=k, min_inspected=min_inspected,
                      complementary=False)
    return totals.select("week", "estimate_usd", "ci_low_usd", "ci_high_usd").sort("week")


def from_store(
    store: VintageStore,
    week: str,
    *,
    k: int = DEFAULT_K,
    min_inspected: int = DEFAULT_MIN_INSPECTED,
    history_weeks: int = 12,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(export table, totals of the last ``history_weeks`` weeks) from the newest vintage."""
    vintage = store.latest_vintage(week)
    if vintage is None:
        raise ExportError(f"no published vintage for week {week} in {store.root}")
    table = export_table(vintage.rows(), week, vintage.status, vintage.vintage_time,
                         k=k, min_inspected=min_inspected)
    history = _history_totals(store.latest_totals(week, history_weeks), k, min_inspected)
    return table, history


def _estimate_archive(events_dir: Path) -> pl.DataFrame:
    from streams.pipeline.batch import estimate_archive

    return estimate_archive(events_dir)


def from_archive(
    events_dir: Path,
    week: str,
    *,
    vintage_time: datetime.datetime | None = None,
    k: int = DEFAULT_K,
    min_inspected: int = DEFAULT_MIN_INSPECTED,
    history_weeks: int = 12,
    estimate: Callable[[Path], pl.DataFrame] | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(export table, totals) from the batch estimate of an archive (a backfill).

    The batch estimate uses every event in the archive, late ones included, so it is
    labelled ``revised``; ``vintage_time`` defaults to now (UTC).
    """
    parse_iso_week(week)
    table = (estimate or _estimate_archive)(events_dir)
    moment = vintage_time or datetime.datetime.now(datetime.timezone.utc)
    rows = export_table(table, week, "revised", moment, k=k, min_inspected=min_inspected)
    weeks = sorted(w for w in table["week"].unique().to_list() if w <= week)[-history_weeks:]
    history = _history_totals(table.filter(pl.col("week").is_in(weeks)), k, min_inspected)
    return rows, history


# -- writers -------------------------------------------------------------------------------
def _text_times(table: pl.DataFrame) -> pl.DataFrame:
    """vintage_time as ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` text (CSV, Excel, SDMX)."""
    return table.with_columns(
        pl.col("vintage_time").dt.convert_time_zone("UTC").dt.strftime("%Y-%m-%dT%H:%M:%S.%6fZ")
    )


#: CSV money is rounded to the cent (no float noise such as 79408.04999999999); Parquet,
#: Excel and SDMX keep the full values.
CSV_MONEY_DECIMALS = 2


def _rounded(table: pl.DataFrame) -> pl.DataFrame:
    return table.with_columns(
        pl.col(c).round(CSV_MONEY_DECIMALS)
        for c, kind in table.schema.items() if kind.is_float() and c.endswith("_usd")
    )


def write_csv(table: pl.DataFrame, path: Path) -> None:
    _rounded(_text_times(table)).write_csv(path)


def write_parquet(table: pl.DataFrame, path: Path) -> None:
    table.write_parquet(path)


def _number(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value) if value == value else ""
    return str(value)


def sdmx_rows(table: pl.DataFrame) -> list[dict[str, str]]:
    """The export table as SDMX-CSV 2.0 records: one observation per cell and measure."""
    records = []
    for row in _text_times(table).iter_rows(named=True):
        reason = row.get("suppressed")
        for measure, (column, unit) in SDMX_MEASURES.items():
            if column not in row:
                continue
            value = row[column]
            blanked = value is None and reason is not None
            informal = measure == "INFORMAL_EXPORTS"
            records.append({
                "STRUCTURE": "dataflow",
                "STRUCTURE_ID": SDMX_STRUCTURE_ID,
                "ACTION": "I",
                "FREQ": "W",
                "DOMAIN": row["domain"],
                "BREAKDOWN": row["key"],
                "MEASURE": measure,
                "TIME_PERIOD": row["week"],
                "OBS_VALUE": _number(value),
                "UNIT_MEASURE": unit,
                # SDMX CL_OBS_STATUS: E estimated, A normal, Q missing (suppressed), M missing
                "OBS_STATUS": ("Q" if blanked else "M" if value is None
                               else "E" if informal or measure == "INFORMAL_FORMAL_RATIO" else "A"),
                # SDMX CL_CONF_STATUS: F free, C primary confidential, D secondary
                "CONF_STATUS": ("D" if reason == "complementary" else "C") if blanked else "F",
                "CI_LOWER_95": _number(row.get("ci_low_usd")) if informal else "",
                "CI_UPPER_95": _number(row.get("ci_high_usd")) if informal else "",
                "STD_ERROR": _number(row.get("std_error_usd")) if informal else "",
                "VINTAGE_STATUS": row["status"],
                "VINTAGE_TIME": row["vintage_time"],
                "SUPPRESSION_REASON": (reason or "") if blanked else "",
                "SOLAR_HIJRI_WEEK_START": row["solar_hijri_week_start"],
            })
    return records


def write_sdmx_csv(table: pl.DataFrame, path: Path) -> None:
    """SDMX-CSV 2.0: ``STRUCTURE,STRUCTURE_ID,ACTION``, dimensions, OBS_VALUE, attributes."""
    header = ["STRUCTURE", "STRUCTURE_ID", "ACTION", *SDMX_DIMENSIONS, "OBS_VALUE", *SDMX_ATTRIBUTES]
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.DictWriter(out, fieldnames=header, lineterminator="\n")
        writer.writeheader()
        writer.writerows(sdmx_rows(table))


def sdmx_structure():
    """The data structure definition of the SDMX-CSV files, as an ``sdmx1`` object.

    Needs the ``sdmx1`` package (a test dependency): ``sdmx.read_sdmx(path,
    structure=sdmx_structure())`` reads an export back.
    """
    from sdmx.model import common, v30

    dsd = v30.DataStructureDefinition(
        id="DSD_SUITCASE_EXPORTS", maintainer=common.Agency(id=SDMX_AGENCY), version=SDMX_VERSION
    )
    for order, dim in enumerate(SDMX_DIMENSIONS):
        cls = v30.TimeDimension if dim == "TIME_PERIOD" else v30.Dimension
        dsd.dimensions.append(cls(id=dim, order=order))
    dsd.measures.append(v30.Measure(id="OBS_VALUE"))
    for attribute in SDMX_ATTRIBUTES:
        dsd.attributes.append(v30.DataAttribute(id=attribute))
    return v30.Dataflow(
        id=SDMX_DATAFLOW, maintainer=common.Agency(id=SDMX_AGENCY), version=SDMX_VERSION,
        structure=dsd,
    )


# -- Excel ---------------------------------------------------------------------------------
def _width(column: str) -> int:
    if column.endswith("_usd"):
        return max(len(column) + 2, 16)
    return {"week": 10, "domain": 19, "key": 12, "vintage_time": 28, "suppressed": 28,
            "status": 9}.get(column, max(len(column) + 2, 10))


def write_xlsx(
    table: pl.DataFrame,
    path: Path,
    history: pl.DataFrame | None = None,
    notes: dict[str, str] | None = None,
) -> None:
    """Excel workbook: ``estimates`` (the data), ``about`` (columns, method), ``trend`` (chart)."""
    import xlsxwriter

    data = _text_times(table)
    week = data["week"][0]
    book = xlsxwriter.Workbook(str(path), {"nan_inf_to_errors": True})
    try:
        header = book.add_format({"bold": True, "bg_color": "#DDEBF7", "border": 1, "text_wrap": True,
                                  "valign": "top"})
        money = book.add_format({"num_format": "#,##0"})
        count = book.add_format({"num_format": "#,##0"})
        ratio = book.add_format({"num_format": "0.00"})
        plain = book.add_format({"num_format": "0"})  # years and months: 1405, not 1,405
        bold = book.add_format({"bold": True, "valign": "top"})
        wrap = book.add_format({"text_wrap": True, "valign": "top"})
        title = book.add_format({"bold": True, "font_size": 14})

        sheet = book.add_worksheet("estimates")
        for j, column in enumerate(data.columns):
            sheet.write_string(0, j, column, header)
            kind = data.schema[column]
            fmt = (money if column.endswith("_usd") else ratio if column == "informal_to_formal_ratio"
                   else plain if column in ("iranian_year", "iranian_month")
                   else count if kind.is_integer() else None)
            sheet.set_column(j, j, _width(column), fmt)
            for i, value in enumerate(data[column].to_list(), start=1):
                if value is None or (isinstance(value, float) and not math.isfinite(value)):
                    sheet.write_blank(i, j, None, fmt)
                elif isinstance(value, (int, float)) and not isinstance(value, bool):
                    sheet.write_number(i, j, value, fmt)
                else:
                    sheet.write_string(i, j, str(value))
        sheet.freeze_panes(1, 3)
        sheet.autofilter(0, 0, max(data.height, 1), len(data.columns) - 1)
        sheet.set_row(0, 30)
        _print_setup(sheet, landscape=True)
        sheet.repeat_rows(0)  # the header row on every printed page

        about = book.add_worksheet("about")
        about.set_column(0, 0, 28, wrap)
        about.set_column(1, 1, ABOUT_WIDTH, wrap)
        _print_setup(about, landscape=False)
        about.write(0, 0, f"Informal (suitcase) handicraft exports, week {week}", title)
        r = 2
        for label, text in {
            "status": data["status"][0],
            "vintage_time": data["vintage_time"][0],
            "week (Iranian calendar)": f"{data['solar_hijri_week_start'][0]} to {data['solar_hijri_week_end'][0]}, "
                                       f"{MONTH_NAMES[data['iranian_month'][0] - 1]} {data['iranian_year'][0]}",
            **(notes or {}),
        }.items():
            about.write(r, 0, label, bold)
            about.write(r, 1, str(text))
            about.set_row(r, _row_height(str(text), label))
            r += 1
        r += 1
        about.write(r, 0, "Columns", title)
        r += 1
        for column in data.columns:
            text = COLUMN_HELP.get(column, "Produced by the estimator (see the project documentation).")
            about.write(r, 0, column, bold)
            about.write(r, 1, text)
            about.set_row(r, _row_height(text, column))
            r += 1
        r += 1
        about.write(r, 0, "Method", title)
        r += 1
        for paragraph in METHOD_TEXT:
            about.write(r, 1, paragraph)
            about.set_row(r, _row_height(paragraph))
            r += 1

        trend = book.add_worksheet("trend")
        hist = history if history is not None and history.height else None
        trend.write_row(0, 0, ["week", "estimate_usd", "ci_low_usd", "ci_high_usd", "band_usd"], header)
        trend.set_column(0, 0, 10)
        trend.set_column(1, 4, 16, money)
        if hist is not None:
            for i, row in enumerate(hist.iter_rows(named=True), start=1):
                trend.write_string(i, 0, row["week"])
                for j, column in enumerate(("estimate_usd", "ci_low_usd", "ci_high_usd"), start=1):
                    if row[column] is None or not math.isfinite(row[column]):
                        trend.write_blank(i, j, None, money)
                    else:
                        trend.write_number(i, j, row[column], money)
                low, high = row["ci_low_usd"], row["ci_high_usd"]
                if low is None or high is None or not math.isfinite(high - low):
                    trend.write_blank(i, 4, None, money)
                else:
                    trend.write_number(i, 4, high - low, money)
            n = hist.height
            band = book.add_chart({"type": "area", "subtype": "stacked"})
            band.add_series({"name": "ci_low", "categories": ["trend", 1, 0, n, 0],
                             "values": ["trend", 1, 2, n, 2], "fill": {"none": True},
                             "border": {"none": True}})
            band.add_series({"name": "95% interval", "categories": ["trend", 1, 0, n, 0],
                             "values": ["trend", 1, 4, n, 4],
                             "fill": {"color": "#9DC3E6", "transparency": 40},
                             "border": {"none": True}})
            line = book.add_chart({"type": "line"})
            line.add_series({"name": "estimate", "categories": ["trend", 1, 0, n, 0],
                             "values": ["trend", 1, 1, n, 1],
                             "line": {"color": "#1F4E79", "width": 2.25},
                             "marker": {"type": "circle", "size": 5}})
            band.combine(line)
            band.set_title({"name": f"Informal handicraft exports, weekly total, up to {week}"})
            band.set_y_axis({"name": "US dollars", "num_format": "#,##0"})
            band.set_x_axis({"name": "ISO week (Tehran)"})
            band.set_legend({"position": "bottom", "delete_series": [0]})
            band.set_size({"width": 820, "height": 420})
            trend.insert_chart(1, 6, band)
            # the table and the whole chart (820 x 420 px from G2: to column T, row 23) on one page
            trend.print_area(0, 0, max(n, 23), 19)
        else:
            trend.write(1, 0, "no weekly totals to chart")
        _print_setup(trend, landscape=True, pages_high=1)
    finally:
        book.close()


#: Width of the about sheet's text column (characters), and how many characters of
#: wrapped text a line of it holds (a little less: words do not fill lines).
ABOUT_WIDTH = 110
_CHARS_PER_LINE = 100
_LINE_POINTS = 15.0


def _row_height(text: str, label: str = "") -> float:
    """Points for a row of wrapped text: LibreOffice does not grow rows that xlsxwriter
    leaves at the default height, so wrapped text would overlap the next row."""
    lines = max(math.ceil(len(text) / _CHARS_PER_LINE), math.ceil(len(label) / 26), 1)
    return lines * _LINE_POINTS + 2


def _print_setup(sheet, *, landscape: bool, pages_high: int = 0) -> None:
    """A4, fit to one page wide (and ``pages_high`` pages high; 0: as many as needed)."""
    sheet.set_paper(9)
    if landscape:
        sheet.set_landscape()
    else:
        sheet.set_portrait()
    sheet.fit_to_pages(1, pages_high)
    sheet.set_margins(left=0.5, right=0.5, top=0.6, bottom=0.6)


def write_export(
    table: pl.DataFrame,
    path: Path,
    fmt: str | None = None,
    *,
    history: pl.DataFrame | None = None,
    notes: dict[str, str] | None = None,
) -> Path:
    """Write an export table (from :func:`export_table`) in ``fmt`` (default: from the name)."""
    fmt = fmt or infer_format(path)
    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "csv":
        write_csv(table, path)
    elif fmt == "parquet":
        write_parquet(table, path)
    elif fmt == "xlsx":
        write_xlsx(table, path, history, notes)
    else:
        write_sdmx_csv(table, path)
    return path


DEFAULT_WEEKLY_FORMATS: tuple[str, ...] = ("xlsx", "csv", "sdmx-csv")


def write_weekly_exports(
    store: VintageStore,
    week: str,
    exports_dir: Path,
    formats: Iterable[str] = DEFAULT_WEEKLY_FORMATS,
    *,
    k: int = DEFAULT_K,
    min_inspected: int = DEFAULT_MIN_INSPECTED,
    history_weeks: int = 12,
) -> list[Path]:
    """Write the newest vintage of ``week`` into ``exports_dir``, one file per format.

    Called by the worker when it publishes a vintage. Files are named
    ``suitcase-<week>-<status>-<vintage UTC stamp><ext>`` (e.g.
    ``suitcase-2026-W07-flash-20260223T000512Z.xlsx``), written under a temporary name
    and linked into place; a file that exists already is left as it is, so a retry is
    harmless and earlier vintages' files are kept. Returns the paths (new or existing).
    """
    formats = tuple(formats)
    for fmt in formats:
        if fmt not in FORMATS:
            raise ExportError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    vintage = store.latest_vintage(week)
    if vintage is None:
        raise ExportError(f"no published vintage for week {week} in {store.root}")
    table, history = from_store(store, week, k=k, min_inspected=min_inspected,
                                history_weeks=history_weeks)
    stamp = vintage.vintage_time.strftime("%Y%m%dT%H%M%SZ")
    exports_dir = Path(exports_dir)
    exports_dir.mkdir(parents=True, exist_ok=True)
    notes = _notes("vintage store", store.root, k, min_inspected)
    written = []
    for fmt in formats:
        final = exports_dir / f"suitcase-{week}-{vintage.status}-{stamp}{_EXTENSION[fmt]}"
        if not final.exists():
            temporary = exports_dir / f".tmp-{uuid.uuid4().hex}{_EXTENSION[fmt]}"
            try:
                write_export(table, temporary, fmt, history=history, notes=notes)
                try:
                    os.link(temporary, final)
                except FileExistsError:
                    pass
            finally:
                temporary.unlink(missing_ok=True)
        written.append(final)
    return written


def _notes(source: str, where: Path, k: int, min_inspected: int) -> dict[str, str]:
    return {
        "source": f"{source} {where}",
        "suppression": f"cells with fewer than {k} distinct travellers or fewer than "
                       f"{min_inspected} inspected travellers are blank",
    }


def describe_sources(sources: dict[str, int]) -> str:
    """``"border.departures +120, customs.inspections +3"`` (topics with events, by count)."""
    moved = sorted(((t, n) for t, n in sources.items() if n), key=lambda tn: (-tn[1], tn[0]))
    return ", ".join(f"{t} +{n:,}" for t, n in moved) or "-"

