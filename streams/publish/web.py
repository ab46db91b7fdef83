"""The live page and the metrics, on one port: what an economist opens on the laptop.

Routes (GET or HEAD; anything else is a 404 or 405, never an error of the worker):

- ``/``: the page (``streams/publish/page/index.html`` with its script and style, and the chart
  library vendored from npm under ``streams/publish/page/vendor/``: it works offline).
- ``/api/estimates``: the JSON the page polls every few seconds (:func:`page_data`).
- ``/metrics``: the Prometheus exposition of the registry (prometheus-client's own WSGI
  app, so scrapers see exactly what ``start_http_server`` served).

The page shows only what the metrics and the exports may show: the worker's estimate rows
after disclosure control (:func:`estimators.disclosure.suppress`, a blanked cell keeps
its ``suppressed`` reason and loses its values), counts and the reference data of the
border posts. No traveller, card or crossing id is in any row the page reads.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import socket
import threading
from importlib.resources import files
from socketserver import ThreadingMixIn
from typing import Any, Protocol
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app

log = logging.getLogger("suitcase.web")

#: Seconds between two polls of ``/api/estimates`` by the page.
POLL_SECONDS = 3
#: Closed weeks the page shows beside the current one.
WEEKS_SHOWN = 12
#: Weeks whose revisions the page lists.
REVISION_WEEKS = 4
#: Breakdowns the page draws, in its order.
BREAKDOWNS = ("category", "destination_region", "border_post")
#: What the headline figure is, in plain words, by the kind of figure.
KIND_LABELS = {
    "nowcast": "nowcast of the whole week",
    "week_to_date": "week to date, Monday\u2013now",
}
#: Why a figure has no 95% interval, in plain words.
NO_INTERVAL = (
    "no 95% interval yet: some travellers of this cell are not yet informed by any random "
    "inspection, so the uncertainty cannot be measured (the figure counts what is known)"
)
#: Why a cell is blank, in plain words (reasons of estimators.disclosure).
SUPPRESSED = {
    "few_travellers": "blank: too few travellers to publish without revealing someone",
    "few_inspected": "blank: too few inspected travellers to publish",
    "complementary": "blank: would reveal a blanked cell from the total",
}
_CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
    "": "text/plain; charset=utf-8",
}


class PageView(Protocol):
    """What the page reads (implemented by :class:`streams.kafka.worker.LiveWorker`)."""

    def clock(self) -> float | None: ...
    def estimate_rows(self) -> dict[tuple[str, str, str], dict]: ...  # after disclosure control
    def tallies(self): ...


def _clean(value: Any) -> Any:
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    return value


def _money(row: dict, column: str) -> float | None:
    value = _clean(row.get(column))
    return None if value is None else round(float(value), 2)


def _cell(key: str, row: dict) -> dict:
    """One cell of the page: its figures, or why it is blank or has no interval."""
    estimate, low, high = _money(row, "estimate_usd"), _money(row, "ci_low_usd"), _money(row, "ci_high_usd")
    reason = row.get("suppressed")
    note = None
    if reason:
        note = "; ".join(SUPPRESSED.get(r, f"blank: {r}") for r in str(reason).split(";"))
        note = note.replace("; blank:", ";")
    elif estimate is not None and (low is None or high is None):
        note = NO_INTERVAL
    return {
        "key": key,
        "estimate_usd": estimate,
        "ci_low_usd": low,
        "ci_high_usd": high,
        "formal_exports_usd": _money(row, "formal_exports_usd"),
        "n_departures": _clean(row.get("n_departures")),
        "n_inspected": _clean(row.get("n_inspected")),
        "suppressed": reason or None,
        "note": note,
    }


def week_label(week: str) -> dict:
    """An ISO week with its Solar Hijri dates (Monday to Sunday)."""
    from estimators.calendar import iso_week_monday, iso_week_solar_hijri

    monday = iso_week_monday(week)
    hijri = iso_week_solar_hijri(week)
    return {
        "week": week,
        "monday": monday.isoformat(),
        "sunday": (monday + dt.timedelta(days=6)).isoformat(),
        "solar_hijri_start": str(hijri.week_start),
        "solar_hijri_end": str(hijri.week_end),
        "iranian_year": hijri.year,
        "iranian_month": hijri.month,
    }


def _posts() -> list[dict]:
    from estimators.reference import BORDER_POSTS

    return [
        {"code": code, "place": p["place"], "mode": p["mode"], "lat": p["lat"], "lon": p["lon"]}
        for code, p in sorted(BORDER_POSTS.items())
    ]


class _Revisions:
    """revision_rows of recent weeks, re-read only when a week got a new vintage file."""

    def __init__(self) -> None:
        self._cache: dict[str, tuple[tuple[str, ...], list[dict]]] = {}
        self._lock = threading.Lock()

    def of(self, store, week: str) -> list[dict]:
        from streams.publish.vintages import revision_rows

        folder = store.root / f"week={week}"
        names = tuple(sorted(p.name for p in folder.glob("vintage-*.parquet"))) if folder.is_dir() else ()
        with self._lock:
            cached = self._cache.get(week)
            if cached is not None and cached[0] == names:
                return cached[1]
        rows = revision_rows(store, week) if names else []
        with self._lock:
            self._cache[week] = (names, rows)
        return rows


def page_data(view: PageView | None, store=None, revisions: _Revisions | None = None,
              now: dt.datetime | None = None) -> dict:
    """Everything the page shows, as plain JSON-able data (see module docstring).

    ``current`` is the newest week on the event clock: its nowcast when the rows carry
    one (``nowcast_usd``), else its week-to-date figure; ``weeks`` the newest
    :data:`WEEKS_SHOWN` weeks' totals beside formal exports; ``breakdowns`` the cells of
    each week by :data:`BREAKDOWNS`; ``revisions`` the vintages of the newest published
    weeks with the sources that moved them.
    """
    now = now or dt.datetime.now(dt.timezone.utc)
    out: dict[str, Any] = {
        "generated_at": now.isoformat().replace("+00:00", "Z"),
        "poll_seconds": POLL_SECONDS,
        "posts": _posts(),
        "ready": False,
        "weeks": [],
        "breakdowns": {},
        "revisions": [],
    }
    if view is None:
        out["waiting"] = "the worker is starting"
        return out
    rows = view.estimate_rows()
    clock = view.clock()
    tally = view.tallies()
    out["accepted_events"] = int(sum(tally.accepted.values()))
    if clock is not None:
        from streams.pipeline.crossings import TEHRAN

        moment = dt.datetime.fromtimestamp(clock, dt.timezone.utc).astimezone(TEHRAN)
        out["event_clock"] = moment.isoformat(timespec="minutes")
        from estimators.calendar import to_solar_hijri

        out["event_clock_solar_hijri"] = str(to_solar_hijri(moment.date()))
    weeks = sorted({w for (w, _, _) in rows})
    if not weeks:
        out["waiting"] = (
            "no estimate yet: waiting for the first departures (only the worker holding "
            "partition 0 estimates; on another worker, open the leader's page)"
        )
        return out
    out["ready"] = True
    current = weeks[-1]
    total = rows.get((current, "total", "all"), {})
    kind = "nowcast" if _clean(total.get("nowcast_usd")) is not None else "week_to_date"
    headline = _cell("all", total)
    if kind == "nowcast":
        headline.update(
            estimate_usd=_money(total, "nowcast_usd"),
            ci_low_usd=_money(total, "nowcast_ci_low_usd"),
            ci_high_usd=_money(total, "nowcast_ci_high_usd"),
        )
    out["current"] = {**week_label(current), **headline, "kind": kind, "kind_label": KIND_LABELS[kind]}
    statuses: dict[str, str] = {}
    if store is not None:
        for week in weeks[-WEEKS_SHOWN:]:
            latest = store.latest_vintage(week) if store.has(week) else None
            if latest is not None:
                statuses[week] = latest.status
    out["weeks"] = [
        {**week_label(w), **_cell("all", rows.get((w, "total", "all"), {})),
         "to_date": w == current, "vintage": statuses.get(w)}
        for w in weeks[-WEEKS_SHOWN:]
    ]
    for week in weeks[-WEEKS_SHOWN:]:
        out["breakdowns"][week] = {
            domain: [_cell(k, row) for (w, d, k), row in sorted(rows.items()) if w == week and d == domain]
            for domain in BREAKDOWNS
        }
    if store is not None:
        revisions = revisions or _Revisions()
        for week in [w for w in store.weeks() if w <= current][-REVISION_WEEKS:][::-1]:
            history = revisions.of(store, week)
            if history:
                out["revisions"].append({**week_label(week), "vintages": history})
    return out


def _json(data: dict) -> bytes:
    def clean(x):
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items()}
        if isinstance(x, list):
            return [clean(v) for v in x]
        return _clean(x)

    return json.dumps(clean(data), allow_nan=False, default=str).encode()


def _assets() -> dict[str, tuple[bytes, str]]:
    """Every file of the page package, by URL path (read once: nothing else is served)."""
    root = files("streams.publish") / "page"
    out: dict[str, tuple[bytes, str]] = {}

    def walk(node, prefix: str) -> None:
        for child in node.iterdir():
            if child.is_dir():
                walk(child, f"{prefix}{child.name}/")
            elif not child.name.startswith("."):
                suffix = "." + child.name.rsplit(".", 1)[1] if "." in child.name else ""
                out[f"/{prefix}{child.name}"] = (child.read_bytes(), _CONTENT_TYPES.get(suffix, "application/octet-stream"))

    walk(root, "")
    out["/"] = out["/index.html"]
    return out


class PageApp:
    """The WSGI application of the port: page, JSON and metrics (see module docstring)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.metrics = make_wsgi_app(registry)
        self.assets = _assets()
        self.view: PageView | None = None
        self.store = None
        self.revisions = _Revisions()

    def attach(self, view: PageView, store=None) -> None:
        """Show ``view``'s estimates (and ``store``'s vintages) from now on."""
        self.view, self.store = view, store

    def __call__(self, environ, start_response):
        try:
            return self._route(environ, start_response)
        except Exception:  # a request never takes the worker down
            log.exception("page request %s failed", environ.get("PATH_INFO"))
            start_response("500 Internal Server Error", [("Content-Type", "text/plain; charset=utf-8")])
            return [b"internal error\n"]

    def _route(self, environ, start_response):
        path = environ.get("PATH_INFO") or "/"
        method = environ.get("REQUEST_METHOD", "GET")
        if method not in ("GET", "HEAD"):
            start_response("405 Method Not Allowed", [("Allow", "GET, HEAD"), ("Content-Type", "text/plain")])
            return [b"method not allowed\n"]
        if path == "/metrics":
            return self.metrics(environ, start_response)
        if path == "/api/estimates":
            body = _json(page_data(self.view, self.store, self.revisions))
            return self._send(start_response, body, "application/json", method)
        asset = self.assets.get(path)
        if asset is None:
            start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
            return [b"not found\n"]
        return self._send(start_response, asset[0], asset[1], method)

    @staticmethod
    def _send(start_response, body: bytes, content_type: str, method: str):
        start_response("200 OK", [
            ("Content-Type", content_type), ("Content-Length", str(len(body))),
            ("Cache-Control", "no-store"), ("X-Content-Type-Options", "nosniff"),
        ])
        return [b"" if method == "HEAD" else body]


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address) -> None:  # a broken client: log, go on
        log.debug("page connection from %s failed", client_address, exc_info=True)


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args) -> None:  # noqa: A002 - no access log on stderr
        pass


class PageServer:
    """The port's HTTP server in a daemon thread; :meth:`shutdown` stops it."""

    def __init__(self, host: str, port: int, registry: CollectorRegistry) -> None:
        self.app = PageApp(registry)
        server_class = _ThreadingServer
        if ":" in host:  # an IPv6 address (``::1``, ``::``): the server's socket family
            server_class = type("_ThreadingServer6", (_ThreadingServer,), {"address_family": socket.AF_INET6})
        self.httpd = make_server(host, port, self.app, server_class, handler_class=_QuietHandler)
        self.server_port = self.httpd.server_port
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="suitcase-page", daemon=True)
        self.thread.start()

    def attach(self, view: PageView, store=None) -> None:
        self.app.attach(view, store)

    def shutdown(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def serve(host: str, port: int, registry: CollectorRegistry) -> PageServer:
    """Serve the page, its JSON and ``/metrics`` of ``registry`` on host:port (0: any free port)."""
    return PageServer(host, port, registry)
