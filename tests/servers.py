"""Real Prometheus and Alertmanager (Debian's packages) on loopback ports, for tests.

Each server runs in its own temporary directory with its own config and storage and is
stopped when the context ends. A tiny HTTP receiver stands in for the economists' and
operators' webhook endpoints: it records every notification Alertmanager posts to it.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def binary(*names: str) -> str:
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    raise RuntimeError(
        f"none of {names} is installed: run ./test (it installs Debian's prometheus and "
        "prometheus-alertmanager) or apt-get install them"
    )


def wait_ready(url: str, process: subprocess.Popen, log: Path, attempts: int = 300) -> None:
    for _ in range(attempts):
        if process.poll() is not None:
            raise RuntimeError(f"{url} exited with {process.returncode}: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=1) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} never became ready: {log.read_text()[-2000:]}")


@contextlib.contextmanager
def running(argv: list[str], ready_url: str, workdir: Path) -> Iterator[None]:
    log = workdir / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=workdir)
    try:
        wait_ready(ready_url, process, log)
        yield
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class Prometheus:
    """A Prometheus server; ``query`` runs an instant PromQL query and returns the result."""

    def __init__(self, url: str) -> None:
        self.url = url

    def api(self, path: str, **params) -> dict:
        query = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}?{query}", timeout=10) as answer:
            body = json.load(answer)
        if body.get("status") != "success":
            raise RuntimeError(f"{path} {params}: {body}")
        return body["data"]

    def query(self, expr: str) -> list[dict]:
        return self.api("query", query=expr)["result"]

    def alerts(self) -> list[dict]:
        return self.api("alerts")["alerts"]


@contextlib.contextmanager
def prometheus(workdir: Path, config: str, rule_files: dict[str, str] | None = None) -> Iterator[Prometheus]:
    """Start Prometheus with ``config`` (YAML text); rule files are written beside it."""
    workdir.mkdir(parents=True, exist_ok=True)
    for name, text in (rule_files or {}).items():
        (workdir / name).write_text(text)
    (workdir / "prometheus.yml").write_text(config)
    port = free_port()
    argv = [
        binary("prometheus"),
        f"--config.file={workdir / 'prometheus.yml'}",
        f"--storage.tsdb.path={workdir / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--web.enable-lifecycle",
    ]
    url = f"http://127.0.0.1:{port}"
    with running(argv, f"{url}/-/ready", workdir):
        yield Prometheus(url)


@contextlib.contextmanager
def alertmanager(workdir: Path, config: str) -> Iterator[str]:
    """Start Alertmanager (clustering off) with ``config``; yields its base URL."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "alertmanager.yml").write_text(config)
    port = free_port()
    argv = [
        binary("prometheus-alertmanager", "alertmanager"),
        f"--config.file={workdir / 'alertmanager.yml'}",
        f"--storage.path={workdir / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",
    ]
    url = f"http://127.0.0.1:{port}"
    with running(argv, f"{url}/-/ready", workdir):
        yield url


class WebhookReceiver:
    """Records the JSON bodies Alertmanager posts, by path (one path per receiver)."""

    def __init__(self) -> None:
        self.received: list[tuple[str, dict]] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver._lock:
                    receiver.received.append((self.path, json.loads(body)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def alerts(self, path: str | None = None) -> list[tuple[str, dict]]:
        """(status, alert) of every alert in every notification, optionally for one path."""
        with self._lock:
            posts = list(self.received)
        return [
            (alert["status"], alert)
            for p, body in posts
            if path is None or p == path
            for alert in body.get("alerts", [])
        ]


def eventually(check, attempts: int = 600, pause: float = 0.25):
    """Poll ``check`` until it returns a truthy value; returns it, or raises with the last."""
    last = None
    for _ in range(attempts):
        last = check()
        if last:
            return last
        time.sleep(pause)
    raise AssertionError(f"condition never held; last value: {last!r}")
