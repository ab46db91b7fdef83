"""One live worker: the faust app, its partition states, the rate book and the estimates.

Data flow (see :mod:`streams.pipeline.partition` for the state, :mod:`streams.kafka.topics` for the topics):

1. One aiokafka consumer fetches record batches of the lane partitions faust assigned
   to this worker (faust runs the group, the table and its recovery; there are no
   agents) and hands them to the partition states (:meth:`LiveWorker._raw_loop`).
2. Before pricing a batch, the worker waits until its rate book holds every rate that
   was on ``fx.rates`` when the batch arrived (a read barrier: one ListOffsets request,
   then the broadcast rate reader catches up). So an amount is priced with the rate in
   force at its event time whenever the feed published that rate before the amount, as
   the batch path does; an amount with no rate at all is *held* in the partition state
   and retried every second and on every batch, never dropped.
3. Each partition of the batch makes one state update (:meth:`PartitionState.process`),
   which also adds the step's observations to the partition's own estimator states. Its
   changelog segment carries the state change *and* the partition's whole mergeable
   states (census, sample with its sparse replicate rows, formal exports, payments) of
   each week the step touched (:class:`estimators.encoding.WeekStates`; only the states
   the step changed are encoded anew): one write per step, never per event, so a kill -9
   loses or doubles nothing (see :mod:`streams.pipeline.partition`). It goes to the
   ``partition-state`` table, its refusals to ``suitcase.deadletter``.
4. Every worker reads the state changelog (group-less, every partition) and keeps, per
   (lane partition, week), the states of the newest complete step that carried them
   (:class:`Summaries`): a record supersedes the one before for its key, so a step read
   twice or redone is harmless, and nobody re-applies anyone's observations. Records
   that do not decode, and states that do not (decoded only when merged), are counted
   (``suitcase_internal_records_invalid_total``) and skipped. The leader, the holder of
   changelog partition 0 (one rule), merges the partitions' states of the weeks that
   changed, recomputes the estimate table at most once per publish interval when
   something changed and publishes the rows that changed. A worker that gets a
   partition (start, reassignment) rebuilds its join state from the newest snapshot and
   the steps after it, and its week states from the newest record of each week, then
   continues them. The owner tombstones the step records that a snapshot covers and
   whose weeks a later step carries (:class:`~streams.pipeline.partition.StepLedger`),
   so the compacted changelog holds at most one step per week, the newest step and the
   steps since the last snapshot, however long the worker runs.
5. Every long-running task is supervised (:meth:`LiveWorker._supervise`): one that fails
   is logged with its traceback, ``suitcase_worker_healthy`` drops to 0 and
   ``suitcase worker`` exits non-zero, so an orchestrator restarts it.

Why not a faust GlobalTable for the broadcast state: GlobalTable replicas do not follow
writes made by other instances reliably (faust-streaming issue #283), and the barrier of
step 2 needs to know exactly how far the reader is. A plain group-less aiokafka consumer
over the whole topic gives both.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import gc
import json
import logging
import sys
import time
import traceback
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import msgspec
from aiokafka import AIOKafkaConsumer, TopicPartition
from prometheus_client import CollectorRegistry

from estimators.disclosure import suppress
from estimators.encoding import Observations, invalid
from streams.kafka.app import create_app
from streams.kafka.broker import DEFAULT_PARTITIONS
from streams.pipeline.contract import DEPARTURES, RATES, FxRate, decode
from streams.pipeline.fx import RateBook
from streams.kafka.security import aiokafka_kwargs
from streams.pipeline.encoding import Invalid, decode_segment
from streams.pipeline.partition import (
    COMPACT_EVERY,
    HORIZON_DAYS,
    LANE_OF,
    LANES,
    MAX_RECORD_BYTES,
    PartitionState,
    Record,
    Step,
    StepLedger,
    Summaries,
    Tally,
    base_key,
    complete_steps,
    encode_parts,
    segment_key,
)
from streams.publish.metrics import register
from streams.kafka.tables import define_tables
from streams.kafka.topics import define_topics

log = logging.getLogger("suitcase.worker")
_NO_OBSERVATIONS = Observations()

#: Least seconds between two estimate recomputations (when something changed).
PUBLISH_INTERVAL_S = 0.25
#: Most of the leader's time spent recomputing estimates while data flows in: after a
#: recomputation of t seconds the next waits t * (1 / share - 1). At 1,000 events/s the
#: recomputation is nearly all the leader does, so a record waits at most about t / share + t
#: for its estimate: a half keeps that near three recomputations.
ESTIMATE_SHARE = 0.5
#: ... and while the worker is more than CATCHING_UP_RECORDS behind (a replay, a
#: restart after an outage), when intermediate estimates matter less than catching up.
ESTIMATE_SHARE_CATCHING_UP = 0.03
CATCHING_UP_RECORDS = 10_000
#: Longest each stage of stopping may take (flush, faust, readers).
STOP_TIMEOUT_S = 15.0
#: Most records one fetch hands to the partition states.
BATCH_MAX = 2000
#: ... while the worker is more than CATCHING_UP_RECORDS behind: every step costs the
#: same whatever its size (its changed week states encoded, its record written and read
#: back, a snapshot every COMPACT_EVERY steps), and nobody waits on a single record then.
BATCH_MAX_CATCHING_UP = 20_000
#: Seconds between two retries of held events and two consumer-lag readings.
HOUSEKEEPING_INTERVAL_S = 1.0
#: Longest a fetch waits on the broker for data. faust fixes it at 1500 ms, and Tansu
#: 0.6 does not answer a waiting fetch when data arrives, so every record would wait
#: ~0.75 s on average; 50 ms keeps latency low for 20 empty fetches a second at most.
FETCH_MAX_WAIT_MS = 50
#: ... and the changelog reader's (a step's observations reach the estimate through it).
CHANGELOG_FETCH_WAIT_MS = 20
#: Allocations between two young-generation collections. The worker holds hundreds of
#: thousands of long-lived objects (open crossings, id digests) and makes no cycles on
#: its hot path; at Python's default (700) collections took a fifth of its CPU.
GC_THRESHOLD = (50_000, 20, 100)


def _short_fetch_wait() -> None:
    """Make faust's worker consumers wait at most FETCH_MAX_WAIT_MS per fetch."""
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    original = AIOKafkaConsumerThread._create_worker_consumer
    if getattr(original, "_suitcase", False):
        return

    def create(self, transport):
        consumer = original(self, transport)
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS  # read by AIOKafkaConsumer.start
        return consumer

    create._suitcase = True
    AIOKafkaConsumerThread._create_worker_consumer = create


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("suitcase-exports")
    except Exception:
        return "0+unknown"


@dataclass
class WorkerSettings:
    bootstrap: str
    app_id: str = "suitcase"
    partitions: int = DEFAULT_PARTITIONS
    data_dir: Path = Path(".suitcase")
    horizon_days: float = HORIZON_DAYS
    publish_interval: float = PUBLISH_INTERVAL_S
    registry: CollectorRegistry | None = None
    #: How records reach the partition states: only ``"raw"`` (one aiokafka consumer
    #: fetching record batches for the partitions faust assigned; see
    #: :meth:`LiveWorker._raw_loop`). The faust-agent mode was removed: one mode.
    consumer: str = "raw"
    #: Vintage store (append-only Parquet) the leader publishes flash and revised
    #: estimates of closed weeks into; None: no vintages.
    vintages_dir: Path | None = None
    #: Where the week's files are written when its flash vintage is published.
    exports_dir: Path | None = None
    #: A week's flash is published this long after it closed, on the event clock.
    flash_delay_days: float = 7.0
    #: Disclosure control of the estimate metrics (see estimators.disclosure).
    min_travellers: int = 10
    min_inspected: int = 3
    #: Benchmarks: join the group and recover, but process nothing until ``resume()``.
    start_paused: bool = False
    #: Benchmarks: carry record timestamps through the observation log and collect
    #: production-to-estimate latencies in ``LiveWorker.estimate_latencies``.
    track_latency: bool = False


def row_json(row: dict) -> bytes:
    """An estimate row as strict JSON (a NaN, e.g. an interval the estimator could not
    give, becomes null)."""
    clean = {k: (None if isinstance(v, float) and v != v else v) for k, v in row.items()}
    return json.dumps(clean, default=str, allow_nan=False).encode()


def kafka_consumer(bootstrap: str, **options) -> AIOKafkaConsumer:
    """Every Kafka consumer of the worker is made here (one place for client settings)."""
    return AIOKafkaConsumer(**aiokafka_kwargs(), bootstrap_servers=bootstrap, **options)


class BroadcastReader:
    """Reads every partition of a topic from the beginning, for ever, into ``apply``.

    :meth:`sync` is a read barrier: it returns once everything that was in the topic
    when it was called has been applied.
    """

    def __init__(self, bootstrap: str, topic: str, apply: Callable, fetch_wait_ms: int = 50) -> None:
        self.bootstrap, self.topic, self.apply = bootstrap, topic, apply
        self.fetch_wait_ms = fetch_wait_ms
        self.consumer: AIOKafkaConsumer | None = None
        self.probe: AIOKafkaConsumer | None = None
        self.tps: list[TopicPartition] = []
        self.next: dict[TopicPartition, int] = {}
        self._progress = asyncio.Event()
        self._task: asyncio.Task | None = None
        self.version = 0

    async def start(self) -> None:
        self.consumer = kafka_consumer(
            self.bootstrap, group_id=None, enable_auto_commit=False,
            auto_offset_reset="earliest", fetch_max_wait_ms=self.fetch_wait_ms, client_id=f"suitcase-{self.topic}",
        )
        await self.consumer.start()
        # ListOffsets through the fetching consumer waits behind its long poll (~50 ms);
        # an idle consumer answers in well under a millisecond on loopback.
        self.probe = kafka_consumer(
            self.bootstrap, group_id=None, enable_auto_commit=False,
            client_id=f"suitcase-{self.topic}-probe",
        )
        await self.probe.start()
        await self.consumer.topics()
        partitions = self.consumer.partitions_for_topic(self.topic) or set()
        if not partitions:
            raise RuntimeError(f"topic {self.topic} does not exist (or has no partitions)")
        self.tps = [TopicPartition(self.topic, p) for p in sorted(partitions)]
        self.consumer.assign(self.tps)
        starts = await self.consumer.beginning_offsets(self.tps)
        for tp in self.tps:
            self.consumer.seek(tp, starts[tp])
            self.next[tp] = starts[tp]
        self._task = asyncio.create_task(self._run(), name=f"read-{self.topic}")

    async def _run(self) -> None:
        while True:
            batches = await self.consumer.getmany(timeout_ms=100, max_records=5000)
            for tp, messages in batches.items():
                for message in messages:
                    self.apply(message)
                if messages:
                    self.next[tp] = messages[-1].offset + 1
                    self.version += 1
            self._progress.set()

    async def end_offsets(self) -> dict[TopicPartition, int]:
        """End offsets now: ListOffsets, raised to the newest fetch high watermark.

        (Tansu 0.6 answers ListOffsets with the base offset of the last record batch
        plus one; the high watermark of the reader's own fetches, at most one long poll
        old, covers the rest of that batch.)
        """
        ends = await self.probe.end_offsets(self.tps)
        for tp in self.tps:
            high = self.consumer.highwater(tp)
            if high is not None and high > ends[tp]:
                ends[tp] = high
        return ends

    async def sync(self, timeout: float = 30.0) -> bool:
        """Wait until all records present now are applied; False on timeout."""
        ends = await self.end_offsets()
        deadline = time.monotonic() + timeout
        while any(self.next.get(tp, 0) < end for tp, end in ends.items()):
            if self._task.done():
                self._task.result()  # re-raise the reader's error
            self._progress.clear()
            try:
                await asyncio.wait_for(self._progress.wait(), max(0.01, deadline - time.monotonic()))
            except asyncio.TimeoutError:
                return False
        return True

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
        if self.consumer is not None:
            await self.consumer.stop()
        if self.probe is not None:
            await self.probe.stop()


class LiveWorker:
    """A faust worker for the live estimates (start with :meth:`start`, stop with :meth:`stop`)."""

    def __init__(self, settings: WorkerSettings) -> None:
        self.settings = settings
        self.version = _version()
        _short_fetch_wait()
        self.app = create_app(settings.app_id, settings.bootstrap, settings.partitions, settings.data_dir)
        self.topics = define_topics(self.app)
        self.table = define_tables(self.app, settings.partitions)
        if settings.consumer != "raw":
            raise ValueError(f"consumer must be 'raw' (the faust-agent mode was removed), not {settings.consumer!r}")
        self.table.on_recover(self._on_recover)
        self.app.on_partitions_revoked.connect(self._on_revoked)
        self._raw: AIOKafkaConsumer | None = None
        self._raw_ready = asyncio.Event()
        self._recovered = asyncio.Event()
        self._go = asyncio.Event()
        if not settings.start_paused:
            self._go.set()
        self.states: dict[tuple[str, int], PartitionState] = {}
        self.book = RateBook()
        self.rates = BroadcastReader(settings.bootstrap, RATES, self._add_rate)
        self.summaries = Summaries()
        self.changelog_topic = self.table.changelog_topic.get_topic_name()
        # Every worker reads every partition's steps from the changelog (see _add_segment).
        self.steps = BroadcastReader(settings.bootstrap, self.changelog_topic, self._add_segment,
                                     CHANGELOG_FETCH_WAIT_MS)
        self._applied: dict[tuple[str, int], dict[str, int]] = {}  # (lane, p) -> offsets merged
        self._applied_seq: dict[tuple[str, int], int] = {}
        self._pending: dict[tuple[str, int], list] = {}  # parts of steps not yet complete
        self._ledgers: dict[tuple[str, int], StepLedger] = {}  # what the changelog still needs
        self.tombstoned = 0  # obsolete step records tombstoned by this worker
        self._latest: dict[tuple[str, int], list] = {}  # (lane, p) -> what rebuilds its state
        self._invalid: Counter = Counter()  # internal topic -> records skipped
        self._invalid_logged: set[str] = set()
        self._own: dict[bytes, tuple[bytes, object]] = {}  # see _commit and _add_segment
        self.failure: asyncio.Future | None = None  # set with the exception of a failed task
        self._stopping = False
        self._stopped = self._stop_timed_out = False  # see stop and release
        self._rows: dict[tuple[str, str, str], dict] = {}
        self._shown: dict[tuple[str, str, str], dict] = {}  # _rows after disclosure control
        self._first: dict[tuple[str, str, str], float] = {}
        self.publisher = None
        if settings.vintages_dir is not None:
            from streams.publish.publishing import VintagePublisher
            from streams.publish.vintages import VintageStore

            self.publisher = VintagePublisher(
                VintageStore(settings.vintages_dir), settings.exports_dir,
                dt.timedelta(days=settings.flash_delay_days),
            )
        self._computed_version = -1
        self._table = None  # the estimate table publish computed at _computed_version
        self._computed_complete = False
        self._app_lag: int | None = None  # see _measure_app_lag
        self._published = 0
        self._last_processed: dict[str, float] = {}
        self._lag: dict[tuple[str, int], int] = {}
        self._retried_at: dict[tuple[str, int], int] = {}
        self._tasks: list[asyncio.Task] = []
        self.instruments = register(self, settings.registry) if settings.registry is not None else None
        self.estimate_seconds = 0.0
        self._pending_stamps: list[float] = []
        self.first_record_at: float | None = None
        self._next_estimate = 0.0
        self.estimate_latencies: list[float] = []
        self.processing_latencies: list[float] = []
        self.merge_latencies: list[float] = []  # production -> merged (read back from the changelog)

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        from streams.kafka.broker import create_topics

        self.failure = asyncio.get_running_loop().create_future()
        gc.collect()
        gc.freeze()  # what is loaded by now lives as long as the process: never scan it again
        gc.set_threshold(*GC_THRESHOLD)
        await asyncio.to_thread(
            create_topics, self.settings.bootstrap, self.settings.partitions,
            names=(self.changelog_topic,),
        )
        await self.rates.start()
        self._supervise(self.rates._task)
        await self.steps.start()
        self._supervise(self.steps._task)
        self._raw = kafka_consumer(
            self.settings.bootstrap, group_id=None, enable_auto_commit=False,
            auto_offset_reset="earliest", fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
            max_partition_fetch_bytes=4 << 20, fetch_max_bytes=32 << 20,
            client_id=f"{self.settings.app_id}-raw",
        )
        await self._raw.start()
        await self.app.start()
        self._tasks.append(asyncio.create_task(self._raw_loop(), name="raw-lanes"))
        self._tasks += [
            asyncio.create_task(self._every(0.05, self.publish), name="publish"),
            asyncio.create_task(self._every(HOUSEKEEPING_INTERVAL_S, self.housekeeping), name="housekeeping"),
        ]
        for task in self._tasks:
            self._supervise(task)

    def _supervise(self, task: asyncio.Task) -> None:
        """A long-running task that ends other than by :meth:`stop` is a failure: it is
        logged with its traceback, ``suitcase_worker_healthy`` drops to 0 and
        :attr:`failure` is set, on which ``suitcase worker`` exits non-zero (so an
        orchestrator restarts it) instead of living on with growing lag."""

        def done(t: asyncio.Task) -> None:
            if self._stopping or t.cancelled():
                return
            error = t.exception() or RuntimeError(f"task {t.get_name()} ended")
            log.critical("task %s failed; the worker stops\n%s", t.get_name(),
                         "".join(traceback.format_exception(error)))
            print(f"suitcase: error: worker task {t.get_name()} failed: {type(error).__name__}: {error}",
                  file=sys.stderr)
            if self.failure is not None and not self.failure.done():
                self.failure.set_exception(error)
                self.failure.exception()  # retrieved: no "never retrieved" warning

        task.add_done_callback(done)

    def healthy(self) -> bool:
        return self.failure is None or not self.failure.done()

    async def wait_failed(self) -> BaseException:
        """Return the exception of the first task that failed (waits until one does)."""
        try:
            await asyncio.shield(self.failure)
        except Exception as error:  # noqa: BLE001
            return error
        raise RuntimeError("failure future resolved without an error")

    async def until_failed(self, work) -> None:
        """Run the coroutine ``work``; if a task of the worker fails first, stop it and
        exit the process non-zero (the failure is logged by _supervise)."""
        job = asyncio.ensure_future(work)
        await asyncio.wait({job, self.failure}, return_when=asyncio.FIRST_COMPLETED)
        if not job.done():
            job.cancel()
            with contextlib.suppress(BaseException):
                await job
            raise SystemExit(70)
        job.result()

    def tombstones(self) -> int:
        return self.tombstoned

    def invalid_records(self) -> dict[str, int]:
        out = dict(self._invalid)
        if self.summaries.invalid:  # week states that did not decode (decoded when merged)
            out[self.changelog_topic] = out.get(self.changelog_topic, 0) + self.summaries.invalid
        return out

    async def stop(self) -> None:
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        self._tasks = []
        if self._raw is not None:
            await self._raw.stop()
            self._raw = None
        # Bounded: with the broker gone a flush would wait for ever (what is not
        # flushed is redone by the next owner: a step counts only once it landed).
        for closing in (self.app.producer.flush(), self.app.stop(), self.rates.stop(), self.steps.stop()):
            try:
                await asyncio.wait_for(closing, STOP_TIMEOUT_S)
            except asyncio.TimeoutError:
                self._stop_timed_out = True
                log.error("stopping the worker timed out after %.0f s (broker unreachable?)", STOP_TIMEOUT_S)
        self._stopped = True

    def release(self) -> None:
        """Drop everything the worker holds, once it is stopped and nothing shows it.

        :meth:`start` freezes what exists then (``gc.freeze``), this worker included, so
        its states (millions of objects after a 12-week backfill) would otherwise live
        until the interpreter exits, whose teardown of them took 3-5 s; dropped here
        they are freed in a fraction of a second. The worker is unusable afterwards; one
        whose stop did not finish (a faust thread may still use it) is left as it is."""
        if self._stopped and not self._stop_timed_out:
            vars(self).clear()

    def resume(self) -> None:
        """Start processing (see ``WorkerSettings.start_paused``)."""
        self._go.set()

    async def _every(self, seconds: float, job) -> None:
        """Run ``job`` every ``seconds``; an exception ends the task (see _supervise)."""
        while True:
            await asyncio.sleep(seconds)
            await job()

    # ------------------------------------------------------------------ processing

    def _write(self, partition: int, key: bytes, value: bytes | None) -> None:
        """Send a record to the state changelog (the table is a write path only: states
        are rebuilt from what the changelog reader kept, see _on_recover)."""
        self.table.send_changelog(partition, key, value, value_serializer="raw")

    def _commit(self, state: PartitionState, step: Step) -> None:
        lane, p = state.lane, state.partition
        segment = step.segment
        if segment is not None:
            # One write carries the state change and its observations (see streams.pipeline.partition);
            # sent even without observations: it also says how far the partition is,
            # which is what wait_caught_up reads (on any worker).
            if self.settings.track_latency:
                segment.stamps = [ts for _, ts in step.lags]
            parts = encode_parts(segment, MAX_RECORD_BYTES)
            for k, raw in enumerate(parts):
                self._write(p, segment_key(lane, p, segment.seq, k), raw)
            if len(parts) == 1:  # read back by this worker's changelog reader: no decode then
                if len(self._own) > 4096:
                    self._own.clear()
                self._own[segment_key(lane, p, segment.seq, 0)] = (parts[0], segment)
            if state.seq - state.base_seq >= COMPACT_EVERY:
                self._compact(state)
        for dead in step.dead:
            r = dead.record
            self.topics.deadletter.send_soon(
                key=r.key, value=r.value,
                headers=[("topic", r.topic.encode()), ("partition", str(r.partition).encode()),
                         ("offset", str(r.offset).encode()), ("reason", dead.reason.encode())],
            )
        if step.lags:
            now = time.time()
            by_topic: dict[str, list[float]] = defaultdict(list)
            for topic, ts in step.lags:
                by_topic[topic].append(max(0.0, now - ts) if ts else 0.0)
            for topic, lags in by_topic.items():
                self._last_processed[topic] = now
                if self.settings.track_latency:
                    self.processing_latencies.extend(lags)
                if self.instruments is not None:
                    self.instruments.observe_lag(topic, lags)

    def _compact(self, state: PartitionState) -> None:
        """Write a snapshot and tombstone the one before. The steps it covers are
        tombstoned once the reader has read the snapshot back and no week's newest
        states are in them (see StepLedger and _tombstone)."""
        lane, p, seq = state.lane, state.partition, state.seq
        parts = encode_parts(state.snapshot(), MAX_RECORD_BYTES)
        for k, raw in enumerate(parts):
            self._write(p, base_key(lane, p, seq, k), raw)
        if state.base_seq:
            for k in range(state.base_parts):
                self._write(p, base_key(lane, p, state.base_seq, k), None)
        state.base_seq, state.base_parts = seq, len(parts)

    async def _on_recover(self) -> None:
        actives = self.app.assignor.assigned_actives()
        # No agent subscribes to the lanes: partition p of the state changelog being
        # active here is what makes partition p of every lane topic ours.
        assigned = {
            (lane, tp.partition) for tp in actives if tp.topic == self.changelog_topic for lane in LANES
        }
        # faust's recovery reads the changelog up to ListOffsets, which Tansu 0.6 answers
        # short of the last record batch; the changelog reader's barrier does not, so
        # the states are rebuilt from what it kept (the newest complete snapshot and
        # the steps after it, per partition) and faust's copy is dropped.
        self.table.data.clear()
        while not await self.steps.sync():
            log.warning("still reading the state changelog before recovering partitions")
        self.states = {
            key: PartitionState.rebuild(key[0], key[1], self._latest.get(key, []), self.settings.horizon_days,
                                        weeks=self.summaries.week_states(key))
            for key in assigned
        }
        log.info("recovered %d partition states", len(self.states))
        for key in self.states:  # what the ledger found obsolete while nobody here owned it
            self._tombstone(key)
        self._recovered.set()
        if self._raw is not None:
            await self._raw_assign()

    async def _on_revoked(self, sender=None, revoked=None, **kwargs) -> None:
        """Stop processing at once (faust flushes the changelog before moving on); the
        states are rebuilt from the table when the new assignment is recovered."""
        if self._raw is not None:
            self._raw_ready.clear()
            self._raw.assign([])
        self.states = {}

    async def _raw_assign(self) -> None:
        """Fetch the lane partitions we own, from just after each state's last offset."""
        tps = [TopicPartition(t, p) for (lane, p) in self.states for t in LANES[lane]]
        self._raw.assign(tps)
        for tp in tps:
            last = self.states[(LANE_OF[tp.topic], tp.partition)].offsets.get(tp.topic)
            if last is None:
                await self._raw.seek_to_beginning(tp)
            else:
                self._raw.seek(tp, last + 1)
        self._raw_ready.set()

    async def _raw_loop(self) -> None:
        """Fetch record batches with ``getmany`` and hand them to the partition states.

        The partition state holds the offsets (changelogged with the state itself), so
        no offset is committed to Kafka: a restarted or reassigned worker seeks to where
        the recovered state stopped, and a record is applied exactly once.
        """
        raw = self._raw
        await self._go.wait()
        while True:
            await self._raw_ready.wait()
            most = BATCH_MAX if sum(self._lag.values()) < CATCHING_UP_RECORDS else BATCH_MAX_CATCHING_UP
            batches = await raw.getmany(timeout_ms=FETCH_MAX_WAIT_MS, max_records=most)
            if not batches or not self._raw_ready.is_set():
                continue
            if self.first_record_at is None:
                self.first_record_at = time.time()
            if any(tp.topic != RATES for tp in batches):
                await self.rates.sync()
            by_partition: dict[tuple[str, int], list[Record]] = defaultdict(list)
            for tp, messages in batches.items():
                high = raw.highwater(tp)  # the lag now, not at the next housekeeping: a
                if high is not None and messages:  # backfill is seen as one from its first batch
                    self._lag[(tp.topic, tp.partition)] = max(0, high - 1 - messages[-1].offset)
                lane = LANE_OF[tp.topic]
                by_partition[(lane, tp.partition)].extend(
                    Record(m.topic, m.partition, m.offset, m.timestamp / 1000.0, m.value, m.key)
                    for m in messages
                )
            for key, batch in by_partition.items():
                state = self.states.get(key)
                if state is None:
                    continue  # revoked meanwhile
                self._commit(state, state.process(batch, self.book))
                self._retried_at[key] = self.rates.version

    def _add_rate(self, message) -> None:
        if message.value is None:
            return
        try:
            rate = decode(RATES, message.value)
        except Exception:  # noqa: BLE001 -- the lane partition dead-letters it
            return
        if type(rate) is FxRate:
            self.book.add(rate.currency, rate.event_time.timestamp(), rate.event_id, rate.units_per_usd)

    def _skip(self, topic: str, reason: str, count: int = 1) -> None:
        """Count an internal record that did not decode; log the first of each kind."""
        self._invalid[topic] += count
        if reason not in self._invalid_logged:
            self._invalid_logged.add(reason)
            log.error("skipped a record on %s that does not decode (%s); later ones are counted "
                      "in suitcase_internal_records_invalid_total only", topic, reason)

    def _add_segment(self, message) -> None:
        """Merge the observations of each partition's complete steps, in ``seq`` order,
        each exactly once (a step redone after a kill has the same ``seq`` as the
        incomplete attempt it replaces; see streams.pipeline.partition)."""
        if message.value is None:  # a tombstone: of an old snapshot, or of an obsolete step
            self._tombstone_read(message.key)
            return
        own = self._own.pop(message.key, None) if self._own else None
        if own is not None and own[0] == message.value:
            # the very bytes this worker wrote: the segment they encode, checked as
            # decode_segment checks a decoded one
            segment = own[1]
            if any(invalid(o) is not None for o in segment.observations):
                segment = Invalid("bad_observation")
        else:
            segment = decode_segment(message.value)
        if type(segment) is Invalid:
            self._skip(message.topic, segment.reason)
            return
        key = (segment.lane, segment.partition)
        if segment.lane not in LANES:
            self._skip(message.topic, "unknown_lane")
            return
        if self._keep(key, segment):  # a complete snapshot: what waited for it can merge
            self._merge_ready(key, message.topic)
        if segment.base:
            return  # snapshots carry no observations
        applied = self._applied_seq.get(key, 0)
        if segment.seq <= applied:
            return  # merged already
        pending = self._pending.get(key)
        if segment.parts == 1 and segment.seq == applied + 1 and not pending:
            self._merge(key, [segment])
            return
        self._pending.setdefault(key, []).append(segment)
        self._merge_ready(key, message.topic)

    def _merge_ready(self, key: tuple[str, int], topic: str) -> None:
        """Merge the complete pending steps that may merge now, in seq order: the next
        one, and any the newest complete snapshot covers. A compacted changelog lacks the
        obsolete steps (StepLedger) at or below its snapshot, which comes after them: a
        gap there is waited for until the snapshot is read, then passed; a gap above it
        is a step still to come."""
        pending = self._pending.get(key)
        if not pending:
            return
        applied = self._applied_seq.get(key, 0)
        base = self._ledger(key).base
        for (is_base, seq), parts in complete_steps(pending).items():
            if is_base or seq <= applied:
                continue
            if seq > max(applied, base) + 1:
                break  # a step still to come
            self._merge(key, parts)
            applied = seq
        self._pending[key] = [s for s in pending if s.seq > applied]
        if len(self._pending[key]) > 10_000:
            self._skip(topic, "gap", count=0)

    def _keep(self, key: tuple[str, int], segment) -> bool:
        """Keep what rebuilding this partition's state needs: the newest complete
        snapshot and the records after it (without their observations; a week's states
        only in the newest record that carries them, the others are superseded). True
        when ``segment`` completed a snapshot."""
        kept = self._latest.setdefault(key, [])
        if not segment.base:
            segment = msgspec.structs.replace(segment, observations=_NO_OBSERVATIONS, stamps=None)
        kept.append(segment)
        if segment.base:
            parts = [s for s in kept if s.base and s.seq == segment.seq and s.attempt == segment.attempt]
            if len(parts) == segment.parts:
                self._latest[key] = parts + [s for s in kept if not s.base and s.seq > segment.seq]
                self._ledger(key).snapshot(segment.seq)
                self._tombstone(key)
                return True
        return False

    def _supersede(self, key: tuple[str, int], seq: int, weeks: set[str]) -> None:
        """Drop ``weeks``' states from the kept records before step ``seq`` (complete)."""
        kept = self._latest.get(key, [])
        for i, old in enumerate(kept):
            if old.weeks and old.seq < seq and any(w.week in weeks for w in old.weeks):
                kept[i] = msgspec.structs.replace(old, weeks=[w for w in old.weeks if w.week not in weeks])

    def _merge(self, key: tuple[str, int], parts: list) -> None:
        """A complete step: its week states supersede the partition's earlier ones
        (a version-2 step carried observations instead: added to them)."""
        weeks = [w for part in parts for w in part.weeks]
        week_names = {w.week for w in weeks}
        observations = [o for part in parts for o in part.observations]
        try:
            if weeks:
                self.summaries.put(key, parts[0].seq, weeks)
                self._supersede(key, parts[0].seq, week_names)
            if observations:
                self.summaries.fold(key, parts[0].seq, observations)
            for part in parts:
                if part.stamps:
                    self._pending_stamps.extend(part.stamps)
                    if self.settings.track_latency:
                        now = time.time()
                        self.merge_latencies.extend(now - ts for ts in part.stamps)
        except Exception as error:  # noqa: BLE001 -- decoded and checked: a bug, counted
            log.exception("merging step %s of %s failed", parts[0].seq, key)
            self._skip(self.changelog_topic, f"internal_error:{type(error).__name__}")
        self._applied_seq[key] = parts[0].seq
        self._applied[key] = dict(parts[0].offsets)
        self._ledger(key).step(parts[0].seq, len(parts), week_names, observations=bool(observations))
        self._tombstone(key)

    def _tombstone_read(self, key: bytes | None) -> None:
        """An obsolete step's tombstone (``lane|p|seq|part``) is in the changelog: its
        ledger need not keep it for a future owner."""
        fields = key.split(b"|") if isinstance(key, bytes) else []
        if len(fields) != 4:
            return  # a snapshot's (lane|p|base|seq|part), or not ours
        try:
            ledger = self._ledgers.get((fields[0].decode("ascii"), int(fields[1])))
            if ledger is not None:
                ledger.forget(int(fields[2]))
        except (UnicodeDecodeError, ValueError):
            return

    def _ledger(self, key: tuple[str, int]) -> StepLedger:
        ledger = self._ledgers.get(key)
        if ledger is None:
            ledger = self._ledgers[key] = StepLedger()
        return ledger

    def _tombstone(self, key: tuple[str, int]) -> None:
        """Tombstone a partition's obsolete step records, if this worker owns it (every
        worker's ledger names the same ones and keeps them until an owner takes them:
        one writer is enough)."""
        if key not in self.states:
            return
        ledger = self._ledgers.get(key)
        obsolete = ledger.take() if ledger is not None else []
        lane, p = key
        for seq, parts in obsolete:
            for k in range(parts):
                self._write(p, segment_key(lane, p, seq, k), None)
        self.tombstoned += sum(parts for _, parts in obsolete)

    async def housekeeping(self) -> None:
        """Retry held events when the rate book grew; read the consumer lag."""
        if any(state.held for state in self.states.values()):
            await self.rates.sync()
            for key, state in list(self.states.items()):
                if state.held and self._retried_at.get(key) != self.rates.version:
                    self._retried_at[key] = self.rates.version
                    step = state.retry_held(self.book)
                    if step is not None:
                        self._commit(state, step)
        tps = [TopicPartition(topic, p) for (lane, p) in self.states for topic in LANES[lane]]
        if tps:
            ends = await self.rates.probe.end_offsets(tps)
            source = self._raw
            for tp in tps:  # see BroadcastReader.end_offsets
                try:
                    high = source.highwater(tp)
                except Exception:  # not (or no longer) assigned
                    continue
                if high is not None and high > ends[tp]:
                    ends[tp] = high
            lag = {}
            for tp, end in ends.items():
                state = self.states.get((LANE_OF[tp.topic], tp.partition))
                if state is not None:  # (revoked meanwhile)
                    lag[(tp.topic, tp.partition)] = max(0, end - 1 - state.offsets.get(tp.topic, -1))
            self._lag = lag
        if self.is_leader():
            await self._measure_app_lag()

    async def _measure_app_lag(self) -> None:
        """Records of every input partition not yet covered by the merged steps (the
        leader's test of "the whole app is caught up" before a flash vintage)."""
        tps = [TopicPartition(t, p) for t in LANE_OF for p in range(self.settings.partitions)]
        ends = await self.rates.probe.end_offsets(tps)
        for tp in tps:  # see BroadcastReader.end_offsets
            try:
                high = self._raw.highwater(tp)
            except Exception:  # not assigned here
                continue
            if high is not None and high > ends[tp]:
                ends[tp] = high
        self._app_lag = sum(
            max(0, end - 1 - self._applied.get((LANE_OF[tp.topic], tp.partition), {}).get(tp.topic, -1))
            for tp, end in ends.items()
        )

    # ------------------------------------------------------------------ estimates

    def is_leader(self) -> bool:
        try:
            actives = self.app.assignor.assigned_actives()
        except Exception:
            return False
        # One rule in both consumer modes: lane partition p goes with state changelog
        # partition p, and the leader is the holder of changelog partition 0.
        return any(tp.topic == self.changelog_topic and tp.partition == 0 for tp in actives)

    async def publish(self, force: bool = False) -> int:
        """Recompute the estimates if the state changed and publish the changed rows.

        Only the leader (the worker holding partition 0 of the state changelog, hence of
        every lane) estimates
        and publishes, and serves the estimate metrics; the others merge the same
        observations but spend no time estimating. Recomputation is throttled so that
        it takes at most ``ESTIMATE_SHARE`` of the worker's time (and runs at most once
        per ``publish_interval``).
        """
        version = self.summaries.version
        complete = force or self._app_lag == 0
        if (version == self._computed_version and complete == self._computed_complete) or not self.summaries.has_states():
            if self._pending_stamps:  # steps that changed nothing: already estimated
                now = time.time()
                self.estimate_latencies.extend(now - ts for ts in self._pending_stamps)
                self._pending_stamps = []
            return 0
        if not force:
            if not self.is_leader():
                return 0
            if time.monotonic() < self._next_estimate:
                return 0
        started = time.perf_counter()
        table = self._table = self.summaries.estimate()
        stamps, self._pending_stamps = self._pending_stamps, []
        self.estimate_seconds = time.perf_counter() - started
        share = ESTIMATE_SHARE if sum(self._lag.values()) < CATCHING_UP_RECORDS else ESTIMATE_SHARE_CATCHING_UP
        self._next_estimate = time.monotonic() + max(
            self.settings.publish_interval, self.estimate_seconds * (1 / share - 1)
        )
        if stamps:
            now = time.time()
            self.estimate_latencies.extend(now - ts for ts in stamps)
        self._computed_version = version
        flipped = complete != self._computed_complete
        self._computed_complete = complete
        rows = {(r["week"], r["domain"], r["key"]): r for r in table.iter_rows(named=True)}
        changed = [k for k, r in rows.items() if flipped or self._rows.get(k) != r]
        self._rows = rows
        self._shown = {
            (r["week"], r["domain"], r["key"]): r
            for r in suppress(table, self.settings.min_travellers, self.settings.min_inspected).iter_rows(named=True)
        }
        leader = force or self.is_leader()
        clock = self.clock()
        if leader and self.publisher is not None and clock is not None and complete:
            # A flash (and its files) only once the whole app is caught up: every input
            # partition's end offset is covered by the merged steps (housekeeping), not
            # just this worker's own lag; partial numbers are never final.
            self.publisher.consider(table, dt.datetime.fromtimestamp(clock, dt.timezone.utc))
        for key in changed:
            row = rows[key]
            if row.get("estimate_usd") is not None:
                self._first.setdefault(key, float(row["estimate_usd"]))
            if leader:
                self.topics.estimates.send_soon(key="|".join(key).encode(), value=row_json({**row, "complete": complete}))
                self._published += 1
        return len(changed)

    def estimate_table(self):
        """The estimate table of the merged state now (the batch output's format): the
        one :meth:`publish` computed last if nothing changed since (seconds at 12 weeks)."""
        if self._table is not None and self._computed_version == self.summaries.version:
            return self._table
        return self.summaries.estimate()

    def observed_through(self, last: dict[tuple[str, int], int]) -> bool:
        """True once the observation log (all workers' steps) covers ``last``."""
        for (topic, p), offset in last.items():
            lane = LANE_OF.get(topic)
            if lane is not None and self._applied.get((lane, p), {}).get(topic, -1) < offset:
                return False
        return True

    async def wait_caught_up(self, last: dict[tuple[str, int], int], poll: float = 0.05) -> None:
        """Return once the records up to ``last`` ((topic, partition) -> offset, e.g. from
        :class:`streams.kafka.feed.Written`) are processed, by this worker or any other of the
        group, and their observations are in this worker's merged state."""
        while not self.observed_through(last):
            if not self.healthy():
                raise SystemExit(70)  # a task failed (logged): never report "caught up"
            await asyncio.sleep(poll)

    # ------------------------------------------------------------------ metrics view

    def tallies(self) -> Tally:
        total = Tally()
        for state in list(self.states.values()):
            total.accepted.update(state.tally.accepted)
            total.duplicates.update(state.tally.duplicates)
            total.rejected.update(state.tally.rejected)
            total.late.update(state.tally.late)
            total.unjoined.update(state.tally.unjoined)
        return total

    def held(self) -> dict[str, int]:
        held: Counter = Counter({t: 0 for lane, _ in self.states for t in LANES[lane] if t != RATES})
        for state in list(self.states.values()):
            held.update(state.held_count)
        return dict(held)

    def newest_event(self) -> dict[str, float]:
        newest: dict[str, float] = {}
        for state in list(self.states.values()):
            for topic, at in state.watermark.items():
                if at > newest.get(topic, float("-inf")):
                    newest[topic] = at
        return newest

    def last_processed(self) -> dict[str, float]:
        return dict(self._last_processed)

    def lag(self) -> dict[tuple[str, int], int]:
        return dict(self._lag)

    def published(self) -> int:
        return self._published

    def clock(self) -> float | None:
        return self.newest_event().get(DEPARTURES)

    def estimate_rows(self) -> dict[tuple[str, str, str], dict]:
        """Rows the metrics show: small cells blanked by the disclosure rule."""
        return self._shown

    def first_published(self) -> dict[tuple[str, str, str], float]:
        return self._first

    def flash_estimates(self, week: str) -> dict[tuple[str, str], float]:
        """The week's flash estimates by (domain, key), small cells blanked as in the
        metrics; empty before the flash (or without a vintage store)."""
        rows = self.publisher.store.flash(week) if self.publisher is not None else None
        if rows is None:
            return {}
        shown = suppress(rows, self.settings.min_travellers, self.settings.min_inspected)
        return {
            (r["domain"], r["key"]): float(r["estimate_usd"])
            for r in shown.select("domain", "key", "estimate_usd").iter_rows(named=True)
            if r["estimate_usd"] is not None and r["estimate_usd"] == r["estimate_usd"]
        }

    def week_counts(self, week: str) -> tuple[dict, dict]:
        return self.summaries.departures(week), self.summaries.random_inspections(week)
