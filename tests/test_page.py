"""The live page in a real browser (Debian's chromium and chromium-driver, with selenium):
it loads with no console error, its figures are the `suitcase.estimates` topic's after
disclosure control, and a screenshot is written. Also: the port survives bad requests,
the page carries no ids, the terminal line says what its number is."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import polars as pl
import pytest
from prometheus_client import CollectorRegistry

from estimators.disclosure import suppress
from streams.commands.cli import main
from streams.pipeline.contract import DECLARATIONS, TOPICS
from streams.kafka.feed import Written, replay
from streams.publish.vintages import VintageStore

pytestmark = [pytest.mark.broker, pytest.mark.browser]

ROOT = Path(__file__).resolve().parents[1]
#: Set to a path (e.g. docs/page.png) to keep the screenshot there; else it goes to a temp dir.
SCREENSHOT_ENV = "SUITCASE_PAGE_SCREENSHOT"


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("world")
    assert main(["simulate", "--out", str(out), "--scale", "0.02", "--weeks", "5", "--seed", "5", "--faults"]) == 0
    return out


def part(archive: Path, into: Path, topics) -> Path:
    into.mkdir()
    for topic in topics:
        shutil.copy(archive / f"{topic}.ndjson", into)
    return into


class Served:
    """A live worker and its page server, in a thread with its own event loop."""

    def __init__(self, archive: Path, root: Path) -> None:
        from streams.kafka.broker import EmbeddedBroker, create_topics

        self.broker = EmbeddedBroker().__enter__()
        create_topics(self.broker.bootstrap)
        self.root = root
        self.on_time = part(archive, root / "on-time", [t for t in TOPICS if t != DECLARATIONS])
        self.late = part(archive, root / "late", [DECLARATIONS])
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.stopping: asyncio.Event | None = None
        self.thread = threading.Thread(target=self._main, daemon=True)
        self.thread.start()

    def _main(self) -> None:
        try:
            asyncio.run(self._run())
        except BaseException as err:  # surfaced by the fixture
            self.error = err
            self.ready.set()

    async def _run(self) -> None:
        from streams.publish.web import serve
        from streams.kafka.worker import LiveWorker, WorkerSettings

        self.loop = asyncio.get_running_loop()
        self.stopping = asyncio.Event()
        registry = CollectorRegistry()
        self.server = serve("127.0.0.1", 0, registry)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.worker = LiveWorker(WorkerSettings(
            bootstrap=self.broker.bootstrap, app_id="page-test", data_dir=self.root / "data", registry=registry,
            vintages_dir=self.root / "vintages", exports_dir=self.root / "exports",
        ))
        self.server.attach(self.worker, self.worker.publisher.store)
        await self.worker.start()
        try:
            for events in (self.on_time, self.late):  # the declarations arrive late: revisions
                written = Written()
                await asyncio.to_thread(replay, events, self.broker.bootstrap, None, None, written)
                await self.worker.wait_caught_up(written.last)
                await self.worker.publish(force=True)
            self.ready.set()
            await self.stopping.wait()
        finally:
            await self.worker.stop()
            self.server.shutdown()

    def stop(self) -> None:
        if self.loop is not None and self.stopping is not None:
            self.loop.call_soon_threadsafe(self.stopping.set)
        self.thread.join(60)
        self.broker.__exit__(None, None, None)


@pytest.fixture(scope="module")
def served(archive, tmp_path_factory):
    running = Served(archive, tmp_path_factory.mktemp("served"))
    try:
        assert running.ready.wait(600), "the worker did not catch up"
        if running.error is not None:
            raise running.error
        yield running
    finally:
        running.stop()


def get(url: str, method: str = "GET") -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def topic_rows(bootstrap: str, expected: int) -> pl.DataFrame:
    """The newest row of every key of suitcase.estimates, read with kafka-python (a client
    independent of the worker's), waiting until ``expected`` keys are there."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None,
                             consumer_timeout_ms=2000)
    try:
        tps = [TopicPartition("suitcase.estimates", p) for p in sorted(consumer.partitions_for_topic("suitcase.estimates"))]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        newest: dict[bytes, dict] = {}
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            for message in consumer:
                newest[message.key] = json.loads(message.value)
            if len(newest) >= expected:
                break
        return pl.DataFrame(list(newest.values()), infer_schema_length=None)
    finally:
        consumer.close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium = shutil.which("chromium")
    driver_path = shutil.which("chromedriver")
    if chromium is None or driver_path is None:
        pytest.fail("Debian's chromium and chromium-driver are needed: apt-get install chromium chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 "--window-size=1400,1000", "--force-device-scale-factor=1", "--lang=en-US"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # the profile and chromium's scratch files live in pytest's temp dir, not in /tmp
    scratch = tmp_path_factory.mktemp("chromium")
    options.add_argument(f"--user-data-dir={scratch / 'profile'}")
    env = {**os.environ, "TMPDIR": str(scratch)}
    driver = webdriver.Chrome(service=Service(driver_path, env=env), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def wait_drawn(driver, timeout: float = 60.0) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, timeout).until(
        lambda d: d.execute_script("return document.body.getAttribute('data-drawn')")
        and d.find_elements("css selector", "#revisions .vintage")
    )


def money(text: str | None) -> float | None:
    return None if text in (None, "") else float(text)


#: Everything the test checks, read in one script run (the page cannot redraw meanwhile).
SNAPSHOT_JS = """
const attrs = (el, names) => Object.fromEntries(names.map(n => [n, el.getAttribute(n)]));
const q = (sel, root) => Array.from((root || document).querySelectorAll(sel));
const cells = sel => q(sel).map(g => attrs(g, ["data-key", "data-usd", "data-suppressed"]));
return {
  big: document.getElementById("current-estimate").getAttribute("data-usd"),
  kind: document.getElementById("current-kind").textContent,
  interval: document.getElementById("current-interval").textContent,
  week: document.getElementById("current-week").textContent,
  table: q("#weekly-table tbody tr").map(tr => ({
    week: tr.getAttribute("data-week"),
    estimate: tr.querySelector(".estimate").getAttribute("data-usd"),
    low: tr.querySelector(".interval").getAttribute("data-low"),
    high: tr.querySelector(".interval").getAttribute("data-high"),
    formal: tr.querySelector(".formal").getAttribute("data-usd")})),
  chart: [window.suitcasePage.weeklyWeeks, window.suitcasePage.weeklyData],
  canvas: q("#weekly-chart canvas").length,
  selected: document.getElementById("week-select").value,
  category: cells("#bars-category .cell"),
  destination_region: cells("#bars-destination_region .cell"),
  border_post: cells("#bars-border_post .cell"),
  map: cells("#map .post"),
  revisions: q("#revisions .revision-week").map(d => ({
    week: d.getAttribute("data-week"),
    vintages: q(".vintage", d).map(r => ({status: r.getAttribute("data-status"),
                                          sources: r.querySelector(".sources").textContent}))})),
};
"""


def test_page_shows_the_estimates_topic_after_disclosure_control(served, browser, tmp_path):
    w = served.worker
    browser.get(served.url + "/")
    wait_drawn(browser)
    time.sleep(3.5)  # one more poll: the page holds the final rows
    page = browser.execute_script(SNAPSHOT_JS)

    severe = [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
    assert severe == []

    raw = topic_rows(served.broker.bootstrap, expected=len(w._rows))
    shown = suppress(raw, w.settings.min_travellers, w.settings.min_inspected)
    cells = {(r["week"], r["domain"], r["key"]): r for r in shown.iter_rows(named=True)}
    assert len(cells) == len(w._rows)
    weeks = sorted({k[0] for k in cells})
    current = weeks[-1]

    def same(page_value: str | None, expected) -> bool:
        if expected is None or expected != expected:
            return page_value in (None, "")
        return money(page_value) == pytest.approx(expected, abs=0.006)

    # The headline: this week's total, the nowcast of the whole week when the row carries
    # one (else the week to date), with its interval in words.
    total = cells[(current, "total", "all")]
    nowcast = total.get("nowcast_usd") is not None
    head, low, high = ("nowcast_usd", "nowcast_ci_low_usd", "nowcast_ci_high_usd") if nowcast else (
        "estimate_usd", "ci_low_usd", "ci_high_usd")
    assert same(page["big"], total[head])
    assert page["kind"].startswith("Nowcast of the whole week" if nowcast else "Week to date, Monday\u2013now")
    if total[low] is not None:
        assert page["interval"].startswith("95% interval: between $")
        assert f"{round(total[low]):,}" in page["interval"]
        assert f"{round(total[high]):,}" in page["interval"]
    else:
        assert page["interval"].startswith("No 95% interval yet")
    assert "Solar Hijri 1405-01" in page["week"]  # 2026-W14 is in Farvardin 1405

    # The weekly table and the weekly chart hold every week's total and formal exports.
    assert sorted(tr["week"] for tr in page["table"]) == weeks
    for tr in page["table"]:
        row = cells[(tr["week"], "total", "all")]
        assert same(tr["estimate"], row["estimate_usd"]), tr
        assert same(tr["low"], row["ci_low_usd"]) and same(tr["high"], row["ci_high_usd"]), tr
        assert same(tr["formal"], row["formal_exports_usd"]), tr
    names, data = page["chart"]
    assert names == weeks and page["canvas"] > 0
    for i, week in enumerate(weeks):
        row = cells[(week, "total", "all")]
        series = 4 if week == current else 3  # closed weeks; this week so far
        assert data[series][i] == pytest.approx(row["estimate_usd"], abs=0.006)
        assert data[5][i] == pytest.approx(row["formal_exports_usd"], abs=0.006)

    # Breakdowns of the last closed week: categories, regions, posts (bars and map).
    week = page["selected"]
    assert week == weeks[-2]
    blanks = 0
    for domain, drawn in (("category", page["category"]), ("destination_region", page["destination_region"]),
                          ("border_post", page["border_post"]), ("border_post", page["map"])):
        expected = {k: r for (wk, d, k), r in cells.items() if wk == week and d == domain}
        assert expected.keys() <= {g["data-key"] for g in drawn}
        for g in drawn:
            row = expected.get(g["data-key"])
            if row is None:
                assert g["data-usd"] in (None, "")  # a post with no cell this week
                continue
            assert same(g["data-usd"], row["estimate_usd"]), g
            assert (g["data-suppressed"] or None) == row["suppressed"], g
            blanks += row["suppressed"] is not None
    assert len(page["map"]) == 16
    assert blanks > 0  # small cells are blank on the page as in the exports

    # Revisions: every vintage of the store, the revised ones with what moved them.
    store = VintageStore(served.root / "vintages")
    assert {d["week"] for d in page["revisions"]} == set(store.weeks()[-4:])
    late_declarations = 0
    for d in page["revisions"]:
        history = store.history(d["week"])
        assert [v["status"] for v in d["vintages"]] == [v.status for v in history]
        for shown_vintage, vintage in zip(d["vintages"], history):
            for topic, n in vintage.sources_changed.items():
                assert f"{n:,} " in shown_vintage["sources"]
            if vintage.status == "revised":
                assert vintage.sources_changed and shown_vintage["sources"]
                late_declarations += "declaration" in shown_vintage["sources"]
    assert late_declarations > 0  # the late declarations revised a week, and the page says so

    # A screenshot of the whole page, for the README.
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(1400, height + 200)
    time.sleep(0.5)
    out = Path(os.environ.get(SCREENSHOT_ENV) or tmp_path / "page.png")
    if not out.is_absolute():
        out = ROOT / out
    out.parent.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(out))
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    severe = [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
    assert severe == []


def test_the_port_survives_any_request_and_serves_metrics(served):
    for path in ("/nope", "/../../etc/passwd", "/api", "/page.js/x", "/%00", "/metrics/../x"):
        assert get(served.url + path)[0] == 404
    assert get(served.url + "/api/estimates", method="POST")[0] == 405
    host, port = served.url.removeprefix("http://").split(":")
    for junk in (b"\x00\xff garbage\r\n\r\n", b"GET\r\n\r\n", b"GET / HTTP/9.9\r\nHost: x\r\n\r\n", b""):
        with socket.create_connection((host, int(port)), timeout=5) as s:
            s.sendall(junk)
            s.shutdown(socket.SHUT_WR)
            try:
                s.recv(1024)  # an error page, or a closed connection
            except OSError:
                pass
    status, body = get(served.url + "/metrics")
    assert status == 200 and b"suitcase_events_accepted_total" in body
    status, body = get(served.url + "/api/estimates")
    assert status == 200 and json.loads(body)["ready"] is True
    assert get(served.url + "/vendor/uplot/LICENSE")[1].startswith(b"The MIT License")


def test_no_id_reaches_the_page(served, archive):
    ids = set()
    for topic in TOPICS:
        with open(archive / f"{topic}.ndjson", encoding="utf-8") as f:
            for _, line in zip(range(300), f):
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                if isinstance(event, dict):
                    ids.update(str(v) for k, v in event.items() if k.endswith("_id") and v)
    assert ids
    body = get(served.url + "/api/estimates")[1].decode() + get(served.url + "/")[1].decode()
    assert [i for i in ids if i in body] == []


def test_terminal_line_says_what_its_number_is(served):
    from streams.commands.live import _estimate_text, _summary_line

    line = _summary_line(served.worker)
    assert "week to date (Monday-now): informal USD" in line and line.endswith("Ctrl-C to stop")
    assert _estimate_text({"estimate_usd": 10.0, "ci_low_usd": float("nan"), "ci_high_usd": float("nan")})[1].startswith(
        "none yet (too few random inspections")
    assert _estimate_text({"estimate_usd": 10.0, "ci_low_usd": 5.0, "ci_high_usd": 15.0}) == ("10", "5 to 15")
    assert _estimate_text({"suppressed": "few_travellers"})[0].startswith("blank")
