"""A replay through the live path publishes flash and revised vintages that
`suitcase revisions` explains, and the worker's metrics blank small cells."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import shutil
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from streams.commands.cli import main
from streams.pipeline.contract import DECLARATIONS, TOPICS
from streams.pipeline.crossings import week_of
from streams.kafka.feed import Written, replay
from streams.publish.vintages import VintageStore

pytestmark = pytest.mark.broker


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("world")
    assert main(["simulate", "--out", str(out), "--scale", "0.01", "--weeks", "3", "--seed", "5"]) == 0
    return out


def part(archive: Path, into: Path, topics) -> Path:
    into.mkdir()
    for topic in topics:
        shutil.copy(archive / f"{topic}.ndjson", into)
    return into


def test_late_declarations_revise_the_flash_and_revisions_explain_it(archive, broker, app_id, tmp_path, capsys):
    from streams.kafka.worker import LiveWorker, WorkerSettings

    on_time = part(archive, tmp_path / "on-time", [t for t in TOPICS if t != DECLARATIONS])
    late = part(archive, tmp_path / "late", [DECLARATIONS])
    vintages = tmp_path / "vintages"
    registry = CollectorRegistry()

    async def run():
        live = LiveWorker(WorkerSettings(
            bootstrap=broker.bootstrap, app_id=app_id, data_dir=tmp_path / "data", registry=registry,
            vintages_dir=vintages, exports_dir=tmp_path / "exports",
        ))
        await live.start()
        try:
            for events in (on_time, late):
                written = Written()
                await asyncio.to_thread(replay, events, broker.bootstrap, None, None, written)
                await live.wait_caught_up(written.last)
                await live.publish(force=True)
        finally:
            await live.stop()
        return live

    live = asyncio.run(run())
    store = VintageStore(vintages)
    assert store.weeks() == ["2026-W10"]  # the only week closed for 7 days on the event clock
    statuses = [v.status for v in store.history("2026-W10")]
    assert statuses[0] == "flash" and set(statuses[1:]) == {"revised"} and len(statuses) >= 2
    assert any("2026-W10-flash" in p.name for p in (tmp_path / "exports").iterdir())

    assert main(["revisions", "--week", "2026-W10", "--vintages", str(vintages), "--json"]) == 0
    history = json.loads(capsys.readouterr().out)["vintages"]
    assert [v["status"] for v in history] == statuses
    late_declarations = history[-1]["sources_changed"]  # the late part moved the last one
    assert late_declarations.get(DECLARATIONS, 0) > 0

    # Rows on the estimates topic say whether they rest on complete input; the last row
    # of every cell, published once everything was read, is complete.
    from kafka import KafkaConsumer

    consumer = KafkaConsumer("suitcase.estimates", bootstrap_servers=broker.bootstrap,
                             auto_offset_reset="earliest", consumer_timeout_ms=3000)
    last_of: dict[bytes, dict] = {}
    for m in consumer:
        row = json.loads(m.value)
        assert type(row["complete"]) is bool
        last_of[m.key] = row
    consumer.close()
    assert last_of and all(row["complete"] for row in last_of.values())

    # Metrics show a cell only when enough travellers stand behind it.
    current = week_of(dt.datetime.fromtimestamp(live.clock(), dt.timezone.utc))
    shown = live.estimate_rows()
    periods = {current: "week_to_date"}
    periods.update({w: "last_week" for (w, _, _) in shown if w < current})
    last = max(w for w in periods if w < current)
    checked = {"blank": 0, "shown": 0}
    for (week, domain, key), row in shown.items():
        if week not in (current, last):
            continue
        labels = {"period": periods[week], "domain": domain, "key": key}
        value = registry.get_sample_value("suitcase_estimate_usd", labels)
        if row["suppressed"] is not None:
            assert value is None
            checked["blank"] += 1
        elif row["estimate_usd"] is not None:
            assert value == pytest.approx(row["estimate_usd"])
            checked["shown"] += 1
    assert checked["blank"] > 0 and checked["shown"] > 0
