"""Commands of the live path: ``up`` (the main job), ``worker`` and ``replay``."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import uuid
from pathlib import Path

import typer

from streams.commands import CliError, app

DEFAULT_METRICS_PORT = 9108
DEFAULT_SECONDS_PER_DAY = 10.0


def _bootstrap(broker: str) -> str:
    from streams.broker import BrokerError, parse_broker_url, wait_reachable

    try:
        bootstrap = parse_broker_url(broker)
        wait_reachable(bootstrap, timeout=10.0)
    except BrokerError as err:
        raise CliError(str(err)) from err
    return bootstrap


def _metrics_server(port: int):
    from prometheus_client import CollectorRegistry, start_http_server

    registry = CollectorRegistry()
    try:
        server, _ = start_http_server(port, addr="0.0.0.0", registry=registry)
    except OSError as err:
        raise CliError(f"cannot serve metrics on port {port}: {err.strerror or err}") from err
    return registry, server.server_port, server


def _check_consumer(consumer: str) -> None:
    if consumer != "raw":
        raise CliError(f"--consumer must be 'raw' (the faust-agent mode was removed), not {consumer!r}")


def _write_table(table, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".parquet":
        table.write_parquet(out)
    else:
        table.write_csv(out)


@app.command()
def up(
    broker: str = typer.Option(None, "--broker", help="kafka://host:port of an existing Kafka; default: start an embedded Tansu broker."),
    metrics_port: int = typer.Option(DEFAULT_METRICS_PORT, "--metrics-port", min=0, max=65535, help="Port of the Prometheus /metrics endpoint (0: any free port)."),
    speed: float = typer.Option(DEFAULT_SECONDS_PER_DAY, "--speed", min=0.01, help="Wall-clock seconds per simulated day."),
    replay_dir: Path = typer.Option(None, "--replay", help="Feed this archive as fast as possible instead of the simulator."),
    until_caught_up: bool = typer.Option(False, "--until-caught-up", help="With --replay: stop once every replayed event is processed."),
    estimates_out: Path = typer.Option(None, "--estimates-out", help="With --until-caught-up: write the live estimates here (.parquet or .csv, the batch format)."),
    seed: int = typer.Option(1, "--seed", help="Seed of the simulated world."),
    start: str = typer.Option("2026-03-02", "--start", help="First simulated day, YYYY-MM-DD."),
    weeks: int = typer.Option(52, "--weeks", min=1, max=520, help="Weeks to simulate."),
    scale: float = typer.Option(0.05, "--scale", min=0.0001, max=10.0, help="Simulated traffic, 1 = Iran's real traffic."),
    faults: bool = typer.Option(True, "--faults/--no-faults", help="Simulate duplicates, late, out-of-order and malformed events."),
    partitions: int = typer.Option(4, "--partitions", min=1, max=64, help="Partitions of the topics created on the embedded broker."),
    data_dir: Path = typer.Option(Path(".suitcase"), "--data-dir", help="Worker data directory."),
    app_id: str = typer.Option(None, "--app-id", help="Consumer group / app id (default: a fresh one on the embedded broker, 'suitcase' otherwise)."),
    consumer: str = typer.Option("raw", "--consumer", help="raw (the only mode): record batches from one aiokafka consumer on the partitions faust assigns (faust runs the group, the table and recovery)."),
    paused_feeds_file: Path = typer.Option(None, "--paused-feeds-file", help="Drill: the simulated feed holds back the topics listed in this file (one a line) until they are removed, e.g. to rehearse the feed-quiet alert."),
) -> None:
    """The main job: broker (embedded unless --broker), topics, a worker, and a feed."""
    _check_consumer(consumer)
    if until_caught_up and replay_dir is None:
        raise CliError("--until-caught-up needs --replay DIR")
    if estimates_out is not None and not until_caught_up:
        raise CliError("--estimates-out needs --until-caught-up")
    if estimates_out is not None and estimates_out.suffix not in (".parquet", ".csv"):
        raise CliError(f"--estimates-out must end in .parquet or .csv, not {estimates_out.name!r}")
    if replay_dir is not None:
        from streams.archive import ArchiveError, topic_files

        try:
            topic_files(replay_dir)
        except ArchiveError as err:
            raise CliError(str(err)) from err
    import datetime as dt

    try:
        first_day = dt.date.fromisoformat(start)
    except ValueError:
        raise CliError(f"--start {start!r} is not a date of the form YYYY-MM-DD") from None

    from streams.broker import BrokerError, EmbeddedBroker, create_topics

    with contextlib.ExitStack() as stack:
        if broker:
            bootstrap = _bootstrap(broker)
            app_id = app_id or "suitcase"
        else:
            try:
                embedded = stack.enter_context(EmbeddedBroker())
            except BrokerError as err:
                raise CliError(str(err)) from err
            bootstrap = embedded.bootstrap
            app_id = app_id or f"suitcase-{uuid.uuid4().hex[:8]}"
            typer.echo(f"embedded Tansu broker on {embedded.url} (memory storage)")
        create_topics(bootstrap, partitions)
        registry, port, server = _metrics_server(metrics_port)
        stack.callback(server.shutdown)
        typer.echo(f"metrics on http://127.0.0.1:{port}/metrics")
        try:
            asyncio.run(_up(
                bootstrap, app_id, partitions, data_dir, registry, replay_dir, until_caught_up,
                estimates_out, speed, dict(seed=seed, start=first_day, weeks=weeks, scale=scale, faults=faults),
                consumer, paused_feeds_file,
            ))
        except KeyboardInterrupt:
            typer.echo("stopped")


async def _up(bootstrap, app_id, partitions, data_dir, registry, replay_dir, until_caught_up,
              estimates_out, speed, world, consumer, paused_feeds_file=None) -> None:
    from streams.feed import PausedFeeds, Written, replay, simulated_feed
    from streams.worker import LiveWorker, WorkerSettings

    worker = LiveWorker(WorkerSettings(
        bootstrap=bootstrap, app_id=app_id, partitions=partitions, data_dir=data_dir, registry=registry,
        consumer=consumer, **_publishing(data_dir),
    ))
    stop = threading.Event()
    feed: asyncio.Future | None = None
    await worker.start()
    try:
        if replay_dir is not None:
            written = Written()
            started = time.monotonic()
            sent = await asyncio.to_thread(replay, replay_dir, bootstrap, None, stop, written)
            typer.echo(f"replayed {sent:,} records in {time.monotonic() - started:.1f} s")
            if until_caught_up:
                await worker.wait_caught_up(written.last)
                await worker.publish(force=True)
                table = worker.estimate_table()
                typer.echo(f"caught up after {time.monotonic() - started:.1f} s: {len(table):,} estimate rows")
                if estimates_out is not None:
                    _write_table(table, estimates_out)
                    typer.echo(f"wrote {estimates_out}")
                return
        else:
            from streams.simulator import WorldConfig, iter_days

            config = WorldConfig(**world)
            feed = asyncio.ensure_future(asyncio.to_thread(
                simulated_feed, bootstrap, iter_days(config), speed, stop,
                paused=PausedFeeds(paused_feeds_file),
            ))
        await worker.until_failed(_summary_loop(worker, feed))  # a failed task: exit 70
    finally:
        stop.set()
        if feed is not None:
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(feed, 15)
        await worker.stop()


async def _summary_loop(worker, feed) -> None:
    """Redraw a one-screen summary every second until stopped (or the feed ends)."""
    from rich.console import Console
    from rich.live import Live

    console = Console()
    if not console.is_terminal:
        while feed is None or not feed.done():
            await asyncio.sleep(5)
            print(_summary_line(worker), flush=True)
        return
    with Live(_summary(worker), console=console, refresh_per_second=1, screen=False) as live:
        while feed is None or not feed.done():
            await asyncio.sleep(1)
            live.update(_summary(worker))


def _summary_line(worker) -> str:
    tally = worker.tallies()
    line = (
        f"accepted {sum(tally.accepted.values()):,} duplicates {sum(tally.duplicates.values()):,} "
        f"rejected {sum(tally.rejected.values()):,} held {sum(worker.held().values()):,}"
    )
    totals = sorted((w, row) for (w, domain, _), row in worker.estimate_rows().items() if domain == "total")
    if totals:
        week, row = totals[-1]
        estimate, interval = _estimate_text(row)
        line += f" | {week} informal USD {estimate} (95% {interval})"
    return line


def _estimate_text(row: dict) -> tuple[str, str]:
    """An estimate and its interval for the screen; a blanked cell says why."""
    if row.get("suppressed"):
        return f"suppressed: {row['suppressed']}", "-"
    if row.get("estimate_usd") is None:
        return "-", "-"
    low, high = row.get("ci_low_usd"), row.get("ci_high_usd")
    interval = "-" if low is None or high is None or low != low else f"{low:,.0f} .. {high:,.0f}"
    return f"{row['estimate_usd']:,.0f}", interval


def _summary(worker):
    import datetime as dt

    from rich.console import Group
    from rich.table import Table

    from streams.contract import TOPICS

    tally, held, lag, newest = worker.tallies(), worker.held(), worker.lag(), worker.newest_event()
    events = Table("topic", "accepted", "duplicates", "rejected", "held", "lag", "event clock", title="events")
    for topic in TOPICS:
        at = newest.get(topic)
        events.add_row(
            topic, f"{tally.accepted[topic]:,}", f"{tally.duplicates[topic]:,}",
            f"{sum(n for (t, _), n in tally.rejected.items() if t == topic):,}",
            f"{held.get(topic, 0):,}",
            f"{sum(n for (t, _), n in lag.items() if t == topic):,}",
            dt.datetime.fromtimestamp(at, dt.timezone.utc).strftime("%Y-%m-%d %H:%M") if at else "-",
        )
    rows = worker.estimate_rows()
    estimates = Table("week", "domain", "key", "estimate USD", "95% interval", "formal USD", "departures", "inspected",
                      title="informal handicraft exports (total, this and last weeks)")
    weeks = sorted({w for w, _, _ in rows})
    for week in weeks[-2:]:
        for (w, domain, key), row in rows.items():
            if w == week and domain in ("total", "destination_region"):
                estimate, interval = _estimate_text(row)
                estimates.add_row(
                    w, domain, key, estimate, interval,
                    f"{row['formal_exports_usd'] or 0:,.0f}", f"{row['n_departures']:,}", f"{row['n_inspected']:,}",
                )
    return Group(events, estimates)


@app.command()
def worker(
    broker: str = typer.Option(..., "--broker", help="kafka://host:port of the Kafka cluster."),
    metrics_port: int = typer.Option(DEFAULT_METRICS_PORT, "--metrics-port", min=0, max=65535, help="Port of the Prometheus /metrics endpoint."),
    data_dir: Path = typer.Option(Path(".suitcase"), "--data-dir", help="Worker data directory."),
    app_id: str = typer.Option("suitcase", "--app-id", help="Consumer group / app id shared by the cluster's workers."),
    partitions: int = typer.Option(4, "--partitions", min=1, max=64, help="Partitions of the topics (must match the input topics)."),
    create: bool = typer.Option(True, "--create-topics/--no-create-topics", help="Create missing topics first."),
    consumer: str = typer.Option("raw", "--consumer", help="raw (the only mode): record batches from one aiokafka consumer on the partitions faust assigns (faust runs the group, the table and recovery)."),
) -> None:
    """Run one live worker (several share the work by partition) until Ctrl-C."""
    from streams.broker import create_topics

    _check_consumer(consumer)
    bootstrap = _bootstrap(broker)
    if create:
        create_topics(bootstrap, partitions)
    registry, port, server = _metrics_server(metrics_port)
    typer.echo(f"worker {app_id} on kafka://{bootstrap}; metrics on http://127.0.0.1:{port}/metrics")
    try:
        asyncio.run(_worker(bootstrap, app_id, partitions, data_dir, registry, consumer))
    except KeyboardInterrupt:
        typer.echo("stopped")
    finally:
        server.shutdown()


async def _worker(bootstrap, app_id, partitions, data_dir, registry, consumer) -> None:
    from streams.worker import LiveWorker, WorkerSettings

    live = LiveWorker(WorkerSettings(
        bootstrap=bootstrap, app_id=app_id, partitions=partitions, data_dir=data_dir,
        registry=registry, consumer=consumer, **_publishing(data_dir),
    ))
    await live.start()
    try:
        await live.until_failed(_summary_loop(live, None))  # a failed task: exit 70
    finally:
        await live.stop()


@app.command("replay")
def replay_command(
    events: Path = typer.Option(..., "--events", help="Archive directory of <topic>.ndjson files."),
    broker: str = typer.Option(..., "--broker", help="kafka://host:port to send to."),
    create: bool = typer.Option(True, "--create-topics/--no-create-topics", help="Create missing topics first."),
    partitions: int = typer.Option(4, "--partitions", min=1, max=64, help="Partitions of topics created here."),
) -> None:
    """Send an archive to Kafka as fast as possible (rates first; keys per topic)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from streams.archive import ArchiveError
    from streams.broker import create_topics
    from streams.feed import count_lines, replay

    try:
        total = count_lines(events)
    except ArchiveError as err:
        raise CliError(str(err)) from err
    bootstrap = _bootstrap(broker)
    if create:
        create_topics(bootstrap, partitions)
    started = time.monotonic()
    with Progress(TextColumn("replaying"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), transient=True) as bar:
        task = bar.add_task("records", total=total)
        sent = replay(events, bootstrap, progress=lambda n: bar.update(task, completed=n))
    elapsed = time.monotonic() - started
    typer.echo(f"sent {sent:,} records in {elapsed:.1f} s ({sent / max(elapsed, 1e-9):,.0f}/s)")


def _publishing(data_dir: Path) -> dict:
    """Where the leader keeps vintages and writes the weekly files: ``$SUITCASE_VINTAGES``
    (or DATA_DIR/vintages) and DATA_DIR/exports, so that ``suitcase export`` and
    ``suitcase revisions`` find them with their defaults."""
    from streams.vintages import default_vintages_dir

    return {"vintages_dir": default_vintages_dir(data_dir), "exports_dir": Path(data_dir) / "exports"}
