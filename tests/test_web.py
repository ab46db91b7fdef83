"""The page's data without a browser: what the headline figure is, blank cells and missing
intervals said in words, and the routes of the port."""

from __future__ import annotations

import datetime as dt
import json
import urllib.error
import urllib.request

import pytest
from prometheus_client import CollectorRegistry

from streams.pipeline.partition import Tally
from streams.publish.web import NO_INTERVAL, page_data, serve


class View:
    def __init__(self, rows):
        self.rows = rows

    def clock(self):
        return dt.datetime(2026, 3, 12, 9, 0, tzinfo=dt.timezone.utc).timestamp()  # Thursday of W11

    def estimate_rows(self):
        return self.rows

    def tallies(self):
        t = Tally()
        t.accepted.update({"border.departures": 12})
        return t


def row(estimate, low=None, high=None, suppressed=None, **extra):
    return {"estimate_usd": estimate, "ci_low_usd": low, "ci_high_usd": high, "formal_exports_usd": 5.0,
            "n_departures": 40, "n_inspected": 4, "suppressed": suppressed, **extra}


ROWS = {
    ("2026-W10", "total", "all"): row(1000.004, 900.0, 1100.0),
    ("2026-W10", "category", "carpet"): row(None, suppressed="few_travellers;few_inspected"),
    ("2026-W10", "border_post", "IKA"): row(700.0, float("nan"), float("nan")),
    ("2026-W11", "total", "all"): row(300.0, float("nan"), float("nan")),
}


def test_week_to_date_with_its_dates_and_a_missing_interval_explained():
    data = page_data(View(ROWS))
    current = data["current"]
    assert current["week"] == "2026-W11" and current["kind"] == "week_to_date"
    assert current["kind_label"] == "week to date, Monday\u2013now"
    assert (current["monday"], current["solar_hijri_start"], current["solar_hijri_end"]) == ("2026-03-09", "1404-12-18", "1404-12-24")
    assert current["ci_low_usd"] is None and current["note"] == NO_INTERVAL
    assert data["event_clock"] == "2026-03-12T12:30+03:30"
    assert [w["week"] for w in data["weeks"]] == ["2026-W10", "2026-W11"]
    assert data["weeks"][0]["estimate_usd"] == 1000.0  # to the cent
    assert data["weeks"][0]["note"] is None
    assert len(data["posts"]) == 16


def test_blank_cells_carry_no_value_and_say_why():
    cells = page_data(View(ROWS))["breakdowns"]["2026-W10"]
    [carpet] = cells["category"]
    assert carpet["estimate_usd"] is None and carpet["ci_low_usd"] is None
    assert carpet["suppressed"] == "few_travellers;few_inspected"
    assert carpet["note"].startswith("blank: too few travellers") and "too few inspected" in carpet["note"]
    [ika] = cells["border_post"]
    assert ika["estimate_usd"] == 700.0 and ika["note"] == NO_INTERVAL


def test_a_nowcast_is_shown_when_the_rows_carry_one():
    rows = dict(ROWS)
    rows[("2026-W11", "total", "all")] = row(300.0, 250.0, 350.0, nowcast_usd=900.0,
                                             nowcast_ci_low_usd=700.0, nowcast_ci_high_usd=1200.0)
    current = page_data(View(rows))["current"]
    assert current["kind"] == "nowcast" and current["estimate_usd"] == 900.0
    assert (current["ci_low_usd"], current["ci_high_usd"]) == (700.0, 1200.0)


def test_before_any_estimate_the_page_says_it_waits():
    assert page_data(None)["ready"] is False
    data = page_data(View({}))
    assert data["ready"] is False and "no estimate yet" in data["waiting"]


@pytest.fixture
def server():
    running = serve("127.0.0.1", 0, CollectorRegistry())
    running.attach(View(ROWS))
    yield f"http://127.0.0.1:{running.server_port}"
    running.shutdown()


def status(url, method="GET"):
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=5) as r:
            return r.status, r.headers.get("Content-Type"), r.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers.get("Content-Type"), err.read()


def test_routes(server):
    code, kind, body = status(server + "/")
    assert code == 200 and kind.startswith("text/html") and b"/vendor/uplot/uPlot.iife.min.js" in body
    code, kind, body = status(server + "/api/estimates")
    assert code == 200 and kind == "application/json" and json.loads(body)["current"]["week"] == "2026-W11"
    assert b"NaN" not in body
    code, kind, body = status(server + "/metrics")
    assert code == 200 and kind.startswith("text/plain")
    for path in ("/x", "/index.html/..", "/vendor/", "/vendor/uplot/../../web.py"):
        assert status(server + path)[0] == 404, path
    assert status(server + "/", method="DELETE")[0] == 405
    assert status(server + "/", method="HEAD")[0] == 200


def test_the_page_loads_nothing_from_elsewhere():
    from importlib.resources import files

    page = files("streams.publish") / "page"
    for name in ("index.html", "page.js", "page.css"):
        text = (page / name).read_text()
        assert "https://" not in text and "//cdn" not in text, name
    assert (page / "vendor" / "uplot" / "LICENSE").read_text().startswith("The MIT License")
