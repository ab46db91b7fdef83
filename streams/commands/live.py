"""Commands of the live path: ``up`` (the main job), ``worker`` and ``replay``."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import threading
import time
import uuid
from pathlib import Path

import typer

from streams.commands import CliError, app

DEFAULT_METRICS_PORT = 9108
DEFAULT_METRICS_HOST = "127.0.0.1"
DEFAULT_SECONDS_PER_DAY = 10.0
#: Signals that ask ``up`` and ``worker`` to stop (everything they started, in order).
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
#: Longest an orderly stop may take before the process exits anyway (the embedded
#: broker is killed with it).
STOP_GRACE_S = 20.0
#: Exit status when the broker died or lost its data (a requested stop exits 0).
BROKER_LOST_STATUS = 1
#: ... and the longest the stop may take then: nothing can be flushed to a lost broker.
BROKER_LOST_GRACE_S = 5.0

KAFKA_CONFIG_HELP = "Kafka client settings (TLS, SASL) in Java .properties format: security.protocol, ssl.cafile, sasl.mechanism, ... (see README, Security)."
KAFKA_SETTING_HELP = "One Kafka client setting, key=value (repeatable; wins over --kafka-config and SUITCASE_KAFKA_* variables)."
#: Exit status of ``up --replay --until-caught-up`` when an event was too late.
EXIT_TOO_LATE = 3


def _bootstrap(broker: str) -> str:
    from streams.kafka.broker import BrokerError, parse_broker_url, wait_reachable

    try:
        bootstrap = parse_broker_url(broker)
        wait_reachable(bootstrap, timeout=10.0)
    except BrokerError as err:
        raise CliError(str(err)) from err
    return bootstrap


def _parse_broker(broker: str) -> None:
    """Refuse a malformed --broker before anything is started."""
    from streams.kafka.broker import BrokerError, parse_broker_url

    try:
        parse_broker_url(broker)
    except BrokerError as err:
        raise CliError(str(err)) from err


def _kafka_security(config: Path | None, settings: list[str] | None, embedded: bool = False) -> str:
    """Parse and install the Kafka client settings (one line on error); their summary."""
    from streams.kafka import security as kafka_security

    try:
        security = kafka_security.from_sources(config, settings or ())
    except kafka_security.KafkaConfigError as err:
        raise CliError(str(err)) from err
    if embedded and security.protocol != "PLAINTEXT":
        raise CliError(
            f"security.protocol {security.protocol} needs --broker: the embedded broker speaks PLAINTEXT only"
        )
    kafka_security.configure(security)
    return kafka_security.describe(security)


def _metrics_server(host: str, port: int):
    """The live page at ``/``, its JSON and ``/metrics`` on host:port (see streams.publish.web);
    returns (registry, port, server); ``server.attach(worker)`` shows the worker's numbers."""
    from prometheus_client import CollectorRegistry

    from streams.publish.web import serve

    registry = CollectorRegistry()
    try:
        server = serve(host, port, registry)
    except (OSError, ValueError) as err:
        raise CliError(f"cannot serve metrics on {host} port {port}: {getattr(err, 'strerror', None) or err}") from err
    return registry, server.server_port, server


def _attach_page(page, worker) -> None:
    if page is not None:
        page.attach(worker, worker.publisher.store if worker.publisher is not None else None)


def _metrics_url(host: str, port: int) -> str:
    from streams.kafka.broker import server_address

    shown = "127.0.0.1" if host in ("", "0.0.0.0") else "::1" if host == "::" else host
    return f"http://{server_address(shown, port)}"


class StopRequested(BaseException):
    """SIGINT, SIGTERM or SIGHUP arrived: stop everything started, in order, exit 0."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


class _Stops:
    """How ``up`` and ``worker`` stop: a stop signal outside the event loop raises
    :class:`StopRequested` (so every ``with`` and ``finally`` runs: the embedded broker
    is stopped); inside it, it cancels the main task. Either way a watchdog then makes
    sure the process is gone within STOP_GRACE_S, and a second signal ends it at once
    (the embedded broker dies with us: see ``streams.kafka.broker._die_with_parent``)."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.on_last_resort: list = []
        self._previous: dict[int, object] = {}

    def __enter__(self) -> "_Stops":
        for signum in STOP_SIGNALS:
            self._previous[signum] = signal.getsignal(signum)
        self.install()
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def install(self) -> None:
        for signum in STOP_SIGNALS:
            signal.signal(signum, self._raise)

    def _raise(self, signum, frame) -> None:
        if self._first(signum):
            raise StopRequested(signum)

    def in_loop(self, task: asyncio.Task) -> None:
        """Inside the running loop: a stop signal cancels ``task``."""
        loop = asyncio.get_running_loop()

        def cancel(signum: int) -> None:
            if self._first(signum):
                task.cancel()

        for signum in STOP_SIGNALS:
            loop.add_signal_handler(signum, cancel, signum)

    def _first(self, signum: int) -> bool:
        if self.signum is not None:  # asked twice: stop now
            self.last_resort(128 + signum)
        self.signum = signum
        self.arm()
        return True

    def arm(self, status: int = 0, grace: float = STOP_GRACE_S) -> None:
        """Exit with ``status`` after ``grace`` seconds whatever is still running."""
        timer = threading.Timer(grace, self.last_resort, (status,))
        timer.daemon = True
        timer.start()

    def last_resort(self, status: int) -> None:
        for action in self.on_last_resort:
            with contextlib.suppress(BaseException):
                action()
        with contextlib.suppress(BaseException):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(status)


def _quiet_kafka_clients() -> None:
    import logging

    for name in ("aiokafka", "kafka", "faust", "mode"):
        logging.getLogger(name).setLevel(logging.CRITICAL + 1)


def _run(stops: _Stops, main):
    """Run the coroutine ``main`` with the stop signals wired to cancel it; its result
    (None when a stop signal cancelled it)."""

    async def body():
        stops.in_loop(asyncio.current_task())
        return await main

    try:
        return asyncio.run(body())
    except asyncio.CancelledError:
        if stops.signum is None:
            raise
        return None
    finally:
        stops.install()  # the loop restored the default handlers when it closed


async def _guarded(job, watches, stops: _Stops):
    """Run ``job`` until it ends. A watch that raises (the broker is lost) prints its one
    line at once, arms the exit watchdog, stops the job and re-raises; cancelling this
    (a stop signal) stops the job too."""
    main = asyncio.ensure_future(job)
    guards = [asyncio.ensure_future(w) for w in watches]
    try:
        done, _ = await asyncio.wait([main, *guards], return_when=asyncio.FIRST_COMPLETED)
        for guard in guards:
            if guard in done and guard.exception() is not None:
                _quiet_kafka_clients()  # their retries against the lost broker are noise now
                typer.echo(f"suitcase: error: {' '.join(str(guard.exception()).split())}", err=True)
                stops.arm(BROKER_LOST_STATUS, BROKER_LOST_GRACE_S)
    finally:
        for guard in guards:
            guard.cancel()
        if not main.done():
            main.cancel()
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(asyncio.shield(main), STOP_GRACE_S / 2)
        for guard in guards:
            with contextlib.suppress(BaseException):
                await guard
    for guard in guards:
        if guard in done and guard.exception() is not None:
            raise guard.exception()
    return main.result()


def _topics_ready(bootstrap: str, partitions: int, deadletter_retention_days: float, create: bool = True) -> None:
    """Create the missing topics (unless told not to), then refuse co-partitioned topics
    whose partition counts differ (one line, exit 2): the start of ``up`` and ``worker``."""
    from streams.kafka.broker import BrokerError, check_co_partitioned, create_topics

    if create:
        create_topics(bootstrap, partitions, deadletter_retention_days=deadletter_retention_days)
    try:
        check_co_partitioned(bootstrap)
    except BrokerError as err:
        raise CliError(str(err)) from err


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
    metrics_host: str = typer.Option(DEFAULT_METRICS_HOST, "--metrics-host", help="Address the metrics endpoint listens on (0.0.0.0 or :: for every interface)."),
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
    kafka_config: Path = typer.Option(None, "--kafka-config", help=KAFKA_CONFIG_HELP),
    kafka_settings: list[str] = typer.Option(None, "-X", help=KAFKA_SETTING_HELP),
    deadletter_retention_days: float = typer.Option(7.0, "--deadletter-retention-days", help="retention.ms of suitcase.deadletter when it is created here, in days (-1: keep for ever)."),
    allow_late: bool = typer.Option(False, "--allow-late", help=f"With --until-caught-up: exit 0 even if events were too late (else exit {EXIT_TOO_LATE})."),
) -> None:
    """The main job: broker (embedded unless --broker), topics, a worker, and a feed.

    SIGINT, SIGTERM and SIGHUP stop everything it started (the broker too) and exit 0;
    if the embedded broker dies it stops with one line and exits 1.
    """
    _check_consumer(consumer)
    if broker:
        _parse_broker(broker)
    security = _kafka_security(kafka_config, kafka_settings, embedded=not broker)
    if until_caught_up and replay_dir is None:
        raise CliError("--until-caught-up needs --replay DIR")
    if allow_late and not until_caught_up:
        raise CliError("--allow-late needs --until-caught-up")
    if estimates_out is not None and not until_caught_up:
        raise CliError("--estimates-out needs --until-caught-up")
    if estimates_out is not None and estimates_out.suffix not in (".parquet", ".csv"):
        raise CliError(f"--estimates-out must end in .parquet or .csv, not {estimates_out.name!r}")
    if replay_dir is not None:
        from streams.pipeline.archive import ArchiveError, topic_files

        try:
            topic_files(replay_dir)
        except ArchiveError as err:
            raise CliError(str(err)) from err
    import datetime as dt

    try:
        first_day = dt.date.fromisoformat(start)
    except ValueError:
        raise CliError(f"--start {start!r} is not a date of the form YYYY-MM-DD") from None

    from streams.pipeline import pseudonym
    from streams.kafka.broker import BrokerError, BrokerLost, EmbeddedBroker, watch_data_loss, watch_embedded

    try:
        warning = pseudonym.ensure(data_dir)
    except pseudonym.PseudonymKeyError as err:
        raise CliError(str(err)) from err
    if warning:
        typer.echo(warning, err=True)
    ran: list = []  # the worker, released once the page is shut down (see LiveWorker.release)
    with _Stops() as stops, contextlib.ExitStack() as stack:
        stack.callback(_release, ran)
        try:
            watches = []
            if broker:
                bootstrap = _bootstrap(broker)
                app_id = app_id or "suitcase"
                typer.echo(f"Kafka at kafka://{bootstrap} ({security})")
            else:
                try:
                    embedded = stack.enter_context(EmbeddedBroker())
                except BrokerError as err:
                    raise CliError(str(err)) from err
                stops.on_last_resort.append(embedded.stop)
                bootstrap = embedded.bootstrap
                app_id = app_id or f"suitcase-{uuid.uuid4().hex[:8]}"
                typer.echo(f"embedded Tansu broker on {embedded.url} (memory storage)")
            _topics_ready(bootstrap, partitions, deadletter_retention_days)
            registry, port, server = _metrics_server(metrics_host, metrics_port)
            stack.callback(server.shutdown)
            url = _metrics_url(metrics_host, port)
            typer.echo(f"live page on {url}/ (metrics at {url}/metrics)")
            watches = [watch_embedded(embedded)] if not broker else [watch_data_loss(bootstrap, app_id)]
            tally = _run(stops, _guarded(_up(
                bootstrap, app_id, partitions, data_dir, registry, replay_dir, until_caught_up,
                estimates_out, speed, dict(seed=seed, start=first_day, weeks=weeks, scale=scale, faults=faults),
                consumer, paused_feeds_file, page=server, ran=ran,
            ), watches, stops))
        except StopRequested:
            pass
        except BrokerLost:  # its line is printed
            raise typer.Exit(BROKER_LOST_STATUS) from None
        finally:
            for watch in watches:  # never started when the loop did not run
                watch.close()
    if stops.signum is not None:
        typer.echo(f"stopped ({signal.Signals(stops.signum).name})")
        return
    if until_caught_up and tally is not None:
        late = _too_late(tally)
        if late and not allow_late:
            typer.echo(f"suitcase: {late:,} events were too late (dead-lettered as too_late); "
                       "--allow-late accepts that", err=True)
            raise typer.Exit(EXIT_TOO_LATE)


async def _up(bootstrap, app_id, partitions, data_dir, registry, replay_dir, until_caught_up,
              estimates_out, speed, world, consumer, paused_feeds_file=None, page=None, ran=None) -> None:
    from streams.kafka.feed import PausedFeeds, Written, replay_counts, simulated_feed
    from streams.kafka.worker import LiveWorker, WorkerSettings

    worker = LiveWorker(WorkerSettings(
        bootstrap=bootstrap, app_id=app_id, partitions=partitions, data_dir=data_dir, registry=registry,
        consumer=consumer, **_publishing(data_dir),
    ))
    if ran is not None:
        ran.append(worker)
    _attach_page(page, worker)
    stop = threading.Event()
    feed: asyncio.Future | None = None
    replaying: asyncio.Future | None = None
    if replay_dir is not None:
        # The replay needs only the topics, not the worker: it runs while the worker
        # joins its group (seconds on Tansu), and the worker then reads from the start.
        written = Written()
        started = time.monotonic()
        replaying = asyncio.ensure_future(asyncio.to_thread(replay_counts, replay_dir, bootstrap, None, stop, written))
    try:
        await worker.start()
    except BaseException:
        await _stopped(stop, replaying)
        raise
    try:
        if replaying is not None:
            sent = await replaying
            typer.echo(_sent_line(sent, time.monotonic() - started))
            if until_caught_up:
                await worker.wait_caught_up(written.last)
                await worker.publish(force=True)
                table = worker.estimate_table()  # the one publish computed
                typer.echo(f"caught up after {time.monotonic() - started:.1f} s: {len(table):,} estimate rows")
                if estimates_out is not None:
                    _write_table(table, estimates_out)
                    typer.echo(f"wrote {estimates_out}")
                tally = worker.tallies()
                typer.echo(_account_line(tally))
                return tally
        else:
            from streams.simulation.simulator import WorldConfig, iter_days

            config = WorldConfig(**world)
            feed = _in_daemon_thread(
                simulated_feed, bootstrap, iter_days(config), speed, stop,
                paused=PausedFeeds(paused_feeds_file),
            )
        await worker.until_failed(_summary_loop(worker, feed))  # a failed task: exit 70
        return None
    finally:
        await _stopped(stop, replaying, feed)
        await asyncio.wait_for(worker.stop(), STOP_GRACE_S / 2)


def _release(workers: list) -> None:
    """Drop what the stopped workers hold (after the page that shows them is shut down)."""
    for worker in workers:
        worker.release()
    workers.clear()


async def _stopped(stop: threading.Event, *feeds: asyncio.Future | None) -> None:
    """Tell the feeds (replay, simulator) to stop, and give each 5 s to do so."""
    stop.set()
    for feed in feeds:
        if feed is not None:
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(feed, 5)


def _in_daemon_thread(function, *args, **kwargs) -> asyncio.Future:
    """``asyncio.to_thread`` in a daemon thread: a feed blocked on a dead broker must
    not keep the process from exiting."""
    loop = asyncio.get_running_loop()
    future = loop.create_future()

    def run() -> None:
        try:
            result = function(*args, **kwargs)
        except BaseException as err:  # handed to the awaiting task
            done = (lambda error=err: future.done() or future.set_exception(error))
        else:
            done = (lambda: future.done() or future.set_result(result))
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
            loop.call_soon_threadsafe(done)

    threading.Thread(target=run, name="simulated-feed", daemon=True).start()
    return future


def _sent_line(sent, seconds: float) -> str:
    """One line: the lines replayed, in how long, and per topic."""
    total = sum(sent.values())
    per_topic = ", ".join(f"{topic} {n:,}" for topic, n in sent.items())
    return (f"replayed {total:,} lines in event-time order in {seconds:.1f} s "
            f"({total / max(seconds, 1e-9):,.0f}/s): {per_topic}")


def _too_late(tally) -> int:
    from streams.pipeline.partition import TOO_LATE

    return sum(n for (_, reason), n in tally.rejected.items() if reason == TOO_LATE)


def _account_line(tally) -> str:
    """One line: what became of the events (accepted, duplicates, rejected by reason,
    too late), over every topic."""
    from collections import Counter

    from streams.pipeline.partition import TOO_LATE

    reasons = Counter()
    for (_, reason), n in tally.rejected.items():
        if reason != TOO_LATE and n:
            reasons[reason] += n
    detail = ", ".join(f"{reason} {n:,}" for reason, n in sorted(reasons.items()))
    return (f"account: accepted {sum(tally.accepted.values()):,}; duplicates {sum(tally.duplicates.values()):,}; "
            f"rejected {sum(reasons.values()):,}" + (f" ({detail})" if detail else "")
            + f"; too late {_too_late(tally):,}")


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
        line += f" | {week} week to date (Monday-now): informal USD {estimate}, 95% interval {interval}"
    return line + " | Ctrl-C to stop"


#: What a missing interval means, on the screen.
NO_INTERVAL_YET = "none yet (too few random inspections to measure it)"


def _estimate_text(row: dict) -> tuple[str, str]:
    """An estimate and its interval for the screen; a blanked cell or a missing interval says why."""
    if row.get("suppressed"):
        return f"blank ({row['suppressed'].replace(';', ', ')}: too few to publish)", "blank"
    if row.get("estimate_usd") is None:
        return "-", "-"
    low, high = row.get("ci_low_usd"), row.get("ci_high_usd")
    missing = low is None or high is None or low != low or high != high
    interval = NO_INTERVAL_YET if missing else f"{low:,.0f} to {high:,.0f}"
    return f"{row['estimate_usd']:,.0f}", interval


def _summary(worker):
    import datetime as dt

    from rich.console import Group
    from rich.table import Table

    from streams.pipeline.contract import TOPICS

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
                      title="informal handicraft exports, USD (this week: week to date, Monday-now; last week: whole week)",
                      caption="A blank cell rests on too few travellers; no interval: too few random inspections yet. Ctrl-C to stop.")
    weeks = sorted({w for w, _, _ in rows})
    for week in weeks[-2:]:
        for (w, domain, key), row in rows.items():
            if w == week and domain in ("total", "destination_region"):
                estimate, interval = _estimate_text(row)
                interval = "none yet" if interval == NO_INTERVAL_YET else interval
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
    metrics_host: str = typer.Option(DEFAULT_METRICS_HOST, "--metrics-host", help="Address the metrics endpoint listens on (0.0.0.0 or :: for every interface, e.g. in a container)."),
    kafka_config: Path = typer.Option(None, "--kafka-config", help=KAFKA_CONFIG_HELP),
    kafka_settings: list[str] = typer.Option(None, "-X", help=KAFKA_SETTING_HELP),
    deadletter_retention_days: float = typer.Option(7.0, "--deadletter-retention-days", help="retention.ms of suitcase.deadletter when this worker creates it, in days (-1: keep for ever)."),
) -> None:
    """Run one live worker (several share the work by partition) until stopped.

    Needs SUITCASE_PSEUDONYM_KEY. SIGINT, SIGTERM and SIGHUP stop it in order (exit 0);
    a cluster that lost its data (topics gone, offsets gone back) stops it with one line
    (exit 1); co-partitioned topics with different partition counts refuse it (exit 2).
    """
    from streams.pipeline import pseudonym
    from streams.kafka.broker import BrokerLost, watch_data_loss

    _check_consumer(consumer)
    _parse_broker(broker)
    security = _kafka_security(kafka_config, kafka_settings)
    try:
        pseudonym.require()
    except pseudonym.PseudonymKeyError as err:
        raise CliError(str(err)) from err
    ran: list = []  # the worker, released once the page is shut down (see LiveWorker.release)
    with _Stops() as stops:
        watch = None
        try:
            bootstrap = _bootstrap(broker)
            _topics_ready(bootstrap, partitions, deadletter_retention_days, create=create)
            registry, port, server = _metrics_server(metrics_host, metrics_port)
            try:
                url = _metrics_url(metrics_host, port)
                typer.echo(f"worker {app_id} on kafka://{bootstrap} ({security}); live page on {url}/ (metrics at {url}/metrics)")
                watch = watch_data_loss(bootstrap, app_id)
                _run(stops, _guarded(_worker(bootstrap, app_id, partitions, data_dir, registry, consumer,
                                             page=server, ran=ran), [watch], stops))
            finally:
                server.shutdown()
                _release(ran)
        except StopRequested:
            pass
        except BrokerLost:  # its line is printed
            raise typer.Exit(BROKER_LOST_STATUS) from None
        finally:
            if watch is not None:
                watch.close()
    if stops.signum is not None:
        typer.echo(f"stopped ({signal.Signals(stops.signum).name})")


async def _worker(bootstrap, app_id, partitions, data_dir, registry, consumer, page=None, ran=None) -> None:
    from streams.kafka.worker import LiveWorker, WorkerSettings

    live = LiveWorker(WorkerSettings(
        bootstrap=bootstrap, app_id=app_id, partitions=partitions, data_dir=data_dir,
        registry=registry, consumer=consumer, **_publishing(data_dir),
    ))
    if ran is not None:
        ran.append(live)
    _attach_page(page, live)
    await live.start()
    try:
        await live.until_failed(_summary_loop(live, None))  # a failed task: exit 70
    finally:
        await asyncio.wait_for(live.stop(), STOP_GRACE_S / 2)


@app.command("replay")
def replay_command(
    events: Path = typer.Option(..., "--events", help="Archive directory of <topic>.ndjson files."),
    broker: str = typer.Option(..., "--broker", help="kafka://host:port to send to."),
    create: bool = typer.Option(True, "--create-topics/--no-create-topics", help="Create missing topics first."),
    partitions: int = typer.Option(4, "--partitions", min=1, max=64, help="Partitions of topics created here."),
    kafka_config: Path = typer.Option(None, "--kafka-config", help=KAFKA_CONFIG_HELP),
    kafka_settings: list[str] = typer.Option(None, "-X", help=KAFKA_SETTING_HELP),
    record_time: str = typer.Option("event", "--record-time", help="Kafka timestamp of each record: 'event' (its event_time) or 'now' (the send time; use it when the topics' retention.ms is shorter than the archive's age)."),
    tmp_dir: Path = typer.Option(None, "--tmp-dir", help="Where the sort spills its runs (removed at the end); default: the system's temporary directory."),
) -> None:
    """Send an archive to Kafka as fast as possible, in event-time order (rates first)."""
    _kafka_security(kafka_config, kafka_settings)
    from streams.pipeline.archive import ArchiveError, topic_files
    from streams.kafka.broker import create_topics
    from streams.kafka.feed import RECORD_TIMES, replay_counts

    if record_time not in RECORD_TIMES:
        raise CliError(f"--record-time must be 'event' or 'now', not {record_time!r}")
    if tmp_dir is not None and not tmp_dir.is_dir():
        raise CliError(f"--tmp-dir {tmp_dir} is not a directory")
    try:
        topic_files(events)
    except ArchiveError as err:
        raise CliError(str(err)) from err
    bootstrap = _bootstrap(broker)
    if create:
        create_topics(bootstrap, partitions)
    started = time.monotonic()
    from streams.kafka.feed import KafkaError

    try:
        sent = replay_counts(events, bootstrap, record_time=record_time, tmp_dir=tmp_dir)
    except (OSError, ValueError, KafkaError) as err:
        raise CliError(f"cannot replay {events}: {err}") from err
    typer.echo(_sent_line(sent, time.monotonic() - started))


def _publishing(data_dir: Path) -> dict:
    """Where the leader keeps vintages and writes the weekly files: ``$SUITCASE_VINTAGES``
    (or DATA_DIR/vintages) and DATA_DIR/exports, so that ``suitcase export`` and
    ``suitcase revisions`` find them with their defaults."""
    from streams.publish.vintages import default_vintages_dir

    return {"vintages_dir": default_vintages_dir(data_dir), "exports_dir": Path(data_dir) / "exports"}
