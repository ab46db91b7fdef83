"""The live path's logic as plain, Kafka-free code: per-partition state and its changelog.

A worker splits the contract's topics into *lanes*; partition ``p`` of every topic of a
lane goes to one worker (faust co-partitions topics with the same partition count):

- ``crossings``: border.departures, travellers.declarations, customs.inspections (they
  share ``crossing_id`` keys, so a crossing's three pieces meet in one partition);
- ``exports``: customs.exports;  ``payments``: payments.transactions;
- ``rates``: fx.rates, validated, deduplicated and counted here like any topic; the rate
  *book* itself is built by every worker from the whole topic (see ``streams.worker``).

:class:`PartitionState` holds everything one lane partition needs and nothing else:

- ``offsets``: the last applied offset per topic. A record at or below it is skipped, so
  a batch redelivered after a restart (faust commits offsets after the changelog, never
  before) changes nothing: updates are idempotent.
- ``watermark``: the newest accepted ``event_time`` per topic (the event-time clock of
  that topic-partition). An event whose ISO week (Asia/Tehran) closed more than
  ``horizon`` before the watermark is ``too_late``: dead-lettered, not counted.
- ``seen``: event ids per topic, each kept until its week closed ``horizon`` ago on the
  watermark; past that a repeat would be too late anyway, so deduplication is exact and
  the set is bounded by (events per horizon).
- ``crossings``: the open :class:`~streams.crossings.Crossing` joins, dropped on the same
  horizon (on the oldest of the three topics' watermarks).
- ``held``: events whose amount has no exchange rate yet (raw bytes, retried when the
  rate book grows; never dropped).
- ``tally``: accepted, duplicate, rejected (by reason), late, too-late counts per topic.

Processing a batch mutates the state and returns a :class:`Step`: the changelog
*segment* (only what changed: new ids, changed crossings, held changes, offsets,
watermarks, tallies), the released estimator observations, and the dead letters. The
worker writes the segment to a changelogged table under ``lane|p|seq`` and the
observations to the observation log; every ``COMPACT_EVERY`` segments it writes a full
snapshot (in parts of at most ~512 KB) under ``lane|p|base|k`` and deletes the segments
it covers. Recovery is
:meth:`PartitionState.restore` over the table's keys of that partition.

The observations (never ids: the inspection's ``unit_key`` is a digest) are the only
thing that leaves a partition; :class:`Summaries` adds them into the estimators' mergeable
states, whichever worker, partition or order they come from.
"""

from __future__ import annotations

import datetime as _dt
import pickle
from collections import Counter
from dataclasses import dataclass, field
from typing import Final, NamedTuple

from estimators.observations import (
    Stratum,
)
from streams.contract import (
    DECLARATIONS,
    DEPARTURES,
    EXPORTS,
    INSPECTIONS,
    PAYMENTS,
    RATES,
    Rejection,
    decode,
)
from streams.crossings import (
    TEHRAN,
    Crossing,
    priced_declaration,
    departure_stratum,
    formal_export_seen,
    payment_seen,
    priced_inspection,
)
from streams.fx import RateBook

#: Lanes: groups of co-partitioned topics one agent consumes together.
LANES: Final[dict[str, tuple[str, ...]]] = {
    "crossings": (DEPARTURES, DECLARATIONS, INSPECTIONS),
    "exports": (EXPORTS,),
    "payments": (PAYMENTS,),
    "rates": (RATES,),
}
LANE_OF: Final[dict[str, str]] = {t: lane for lane, ts in LANES.items() for t in ts}
#: Topics whose events are estimated (fx.rates feeds the rate book instead).
EVENT_TOPICS: Final[tuple[str, ...]] = tuple(t for t in LANE_OF if t != RATES)

#: Default lateness horizon: an event is refused once its week closed this long ago.
HORIZON_DAYS: Final = 35
#: A full snapshot replaces the segments every this many segments of a partition.
COMPACT_EVERY: Final = 64
#: Dead-letter reason of events beyond the horizon (beside the contract's reasons).
TOO_LATE: Final = "too_late"
#: Largest changelog record a snapshot part aims at (Kafka's default limit is ~1 MB).
MAX_RECORD_BYTES: Final = 512 * 1024
_WEEK: Final = 7 * 86400


class Record(NamedTuple):
    """One Kafka record as the live path sees it (``timestamp`` in epoch seconds)."""

    topic: str
    partition: int
    offset: int
    timestamp: float
    value: bytes
    key: bytes | None = None


class DeadLetter(NamedTuple):
    """A refused record and why; the worker sends it to ``suitcase.deadletter``."""

    record: Record
    reason: str


_week_end_cache: dict[int, float] = {}


def week_end(at: float) -> float:
    """Epoch seconds at which the ISO week (Asia/Tehran) of ``at`` closes.

    Cached per half hour of ``at``: Asia/Tehran's offsets (+03:30, formerly +04:30 in
    summer) put every local midnight on a half-hour boundary of UTC.
    """
    bucket = int(at // 1800)
    end = _week_end_cache.get(bucket)
    if end is None:
        day = _dt.datetime.fromtimestamp(bucket * 1800, TEHRAN).date()
        monday = day + _dt.timedelta(days=7 - day.weekday())
        end = _dt.datetime.combine(monday, _dt.time(), TEHRAN).timestamp()
        if len(_week_end_cache) > 65536:
            _week_end_cache.clear()
        _week_end_cache[bucket] = end
    return end


@dataclass
class Tally:
    """What became of a partition's records, per topic (exposed as counters)."""

    accepted: Counter = field(default_factory=Counter)  # topic
    duplicates: Counter = field(default_factory=Counter)  # topic
    rejected: Counter = field(default_factory=Counter)  # (topic, reason), reason incl. too_late
    late: Counter = field(default_factory=Counter)  # topic: accepted after their week closed
    unjoined: Counter = field(default_factory=Counter)  # (topic, border_post): expired without a departure

    def copy(self) -> "Tally":
        return Tally(Counter(self.accepted), Counter(self.duplicates), Counter(self.rejected), Counter(self.late),
                     Counter(self.unjoined))


@dataclass
class Segment:
    """One changelog record of a partition: what a step changed (see module docs)."""

    seq: int
    offsets: dict[str, int]
    watermark: dict[str, float]
    tally: Tally
    seen: list[tuple[str, str, float]]  # (topic, event_id, expiry)
    crossings: dict[str, tuple | None]  # crossing_id -> Crossing state (None: closed)
    crossing_expiry: dict[str, float]
    held_added: dict[tuple[str, int], tuple[bytes, float, float]]  # (topic, offset) -> (raw, record ts, event ts)
    held_removed: list[tuple[str, int]]
    base: bool = False  # a snapshot: replaces everything before ``seq``
    part: int = 0  # a snapshot comes in ``parts`` records (see PartitionState.snapshot)
    parts: int = 1

    def dumps(self) -> bytes:
        return pickle.dumps(self, protocol=5)

    @staticmethod
    def loads(raw: bytes) -> "Segment":
        return pickle.loads(raw)


@dataclass
class Step:
    """The result of one processing step of a partition."""

    segment: Segment | None  # None: nothing changed
    observations: list  # estimator observations released by this step
    first: dict[str, int]  # topic -> first offset this step covered (observation log dedup)
    dead: list[DeadLetter]
    lags: list[tuple[str, float]]  # (topic, record timestamp) of processed records


class PartitionState:
    """The state of one lane partition (see the module docstring)."""

    def __init__(self, lane: str, partition: int, horizon_days: float = HORIZON_DAYS) -> None:
        self.lane = lane
        self.partition = partition
        self.horizon = horizon_days * 86400.0
        self.seq = 0
        self.base_seq = 0
        self.offsets: dict[str, int] = {}
        self.watermark: dict[str, float] = {}
        self.tally = Tally()
        self.seen: dict[str, dict[str, float]] = {}
        self.crossings: dict[str, Crossing] = {}
        self.crossing_expiry: dict[str, float] = {}
        self.held: dict[tuple[str, int], tuple[bytes, float, float]] = {}
        self._expired_at = 0.0
        self._swept_complete = False
        self._reset_step()

    # ------------------------------------------------------------------ processing

    def _reset_step(self) -> None:
        self._new_seen: list[tuple[str, str, float]] = []
        self._dirty: set[str] = set()
        self._held_added: dict = {}
        self._held_removed: list = []
        self._obs: list = []
        self._dead: list[DeadLetter] = []
        self._lags: list[tuple[str, float]] = []
        self._first: dict[str, int] = {}
        self._changed = False

    def process(self, records: list[Record], rates: RateBook) -> Step:
        """Apply a batch of this partition's records (any of the lane's topics)."""
        self._reset_step()
        offsets = self.offsets
        for rec in records:
            topic = rec.topic
            if rec.offset <= offsets.get(topic, -1):
                continue  # applied before a restart: idempotent
            offsets[topic] = rec.offset
            self._changed = True
            if topic not in self._first:
                self._first[topic] = rec.offset
            self._lags.append((topic, rec.timestamp))
            self._one(rec, rates)
        self.retry_held(rates, _inside=True)
        return self._finish()

    def retry_held(self, rates: RateBook, _inside: bool = False) -> Step | None:
        """Try the held events again (the rate book has grown); a step if run alone."""
        if not _inside:
            self._reset_step()
        if self.held:
            for key, (raw, ts, _) in sorted(self.held.items(), key=lambda kv: (kv[0][0], kv[0][1])):
                event = decode(key[0], raw)
                if self._route(key[0], event, rates):
                    del self.held[key]
                    if key in self._held_added:
                        del self._held_added[key]
                    else:
                        self._held_removed.append(key)
                    self._changed = True
        return None if _inside else self._finish()

    def _one(self, rec: Record, rates: RateBook) -> None:
        topic = rec.topic
        event = decode(topic, rec.value)
        tally = self.tally
        if type(event) is Rejection:
            tally.rejected[(topic, event.reason)] += 1
            self._dead.append(DeadLetter(rec, event.reason))
            return
        at = event.event_time.timestamp()
        end = week_end(at)
        wm = self.watermark.get(topic, float("-inf"))
        if wm > end + self.horizon:
            tally.rejected[(topic, TOO_LATE)] += 1
            self._dead.append(DeadLetter(rec, TOO_LATE))
            return
        seen = self.seen.get(topic)
        if seen is None:
            seen = self.seen[topic] = {}
        if event.event_id in seen:
            tally.duplicates[topic] += 1
            return
        expiry = end + self.horizon
        seen[event.event_id] = expiry
        self._new_seen.append((topic, event.event_id, expiry))
        tally.accepted[topic] += 1
        if wm > end:
            tally.late[topic] += 1
        if at > wm:
            self.watermark[topic] = at
        if not self._route(topic, event, rates):
            key = (topic, rec.offset)
            self.held[key] = self._held_added[key] = (rec.value, rec.timestamp, at)

    def _route(self, topic: str, event, rates: RateBook) -> bool:
        """Price and join one accepted event; False when a rate is missing (hold it)."""
        if topic == DEPARTURES:
            self._obs += self._crossing(event.crossing_id, end_of=event).add_departure(
                *departure_stratum(event)
            )
        elif topic == DECLARATIONS:
            cents = priced_declaration(event, rates)
            if cents is None:
                return False
            self._obs += self._crossing(event.crossing_id, end_of=event).add_declaration(cents)
        elif topic == INSPECTIONS:
            priced = priced_inspection(event, rates)
            if priced is None:
                return False
            self._obs += self._crossing(event.crossing_id, end_of=event).add_inspection(priced)
        elif topic == EXPORTS:
            seen = formal_export_seen(event, rates)
            if seen is None:
                return False
            self._obs.append(seen)
        elif topic == PAYMENTS:
            seen = payment_seen(event, rates)
            if seen is None:
                return False
            self._obs.append(seen)
        return True

    def _crossing(self, crossing_id: str, end_of) -> Crossing:
        found = self.crossings.get(crossing_id)
        expiry = week_end(end_of.event_time.timestamp()) + self.horizon + _WEEK
        if found is None:
            found = self.crossings[crossing_id] = Crossing()
            found.post = end_of.border_post
        if expiry > self.crossing_expiry.get(crossing_id, 0.0):
            self.crossing_expiry[crossing_id] = expiry
        self._dirty.add(crossing_id)
        return found

    def _finish(self) -> Step:
        self._expire()
        segment = None
        if self._changed or self._dirty or self._new_seen:
            self.seq += 1
            segment = Segment(
                seq=self.seq,
                offsets=dict(self.offsets),
                watermark=dict(self.watermark),
                tally=self.tally.copy(),
                seen=self._new_seen,
                crossings={
                    cid: (self.crossings[cid].__getstate__() if cid in self.crossings else None)
                    for cid in self._dirty
                },
                crossing_expiry={cid: self.crossing_expiry[cid] for cid in self._dirty if cid in self.crossing_expiry},
                held_added=self._held_added,
                held_removed=self._held_removed,
            )
        step = Step(segment, self._obs, self._first, self._dead, self._lags)
        self._reset_step()
        return step

    def _expire(self) -> None:
        """Forget ids and crossings beyond the horizon (on the watermarks)."""
        if not self.watermark:
            return
        oldest = min(self.watermark.values())
        complete = self.lane != "crossings" or len(self.watermark) == len(LANES["crossings"])
        # Expiry is a sweep over the sets: at most once per simulated day of event time, and
        # once when the lane's last topic first appears (a backfill sends topic by topic).
        if oldest < self._expired_at + 86400 and complete == self._swept_complete:
            return
        self._expired_at, self._swept_complete = oldest, complete
        for topic, seen in self.seen.items():
            wm = self.watermark.get(topic, float("-inf"))
            stale = [i for i, exp in seen.items() if exp < wm]
            for i in stale:
                del seen[i]
        if self.lane == "crossings" and len(self.watermark) == len(LANES["crossings"]):
            stale = [c for c, exp in self.crossing_expiry.items() if exp < oldest]
            for c in stale:
                del self.crossing_expiry[c]
                gone = self.crossings.pop(c, None)
                if gone is not None:  # pieces that never met their departure: a producer's partitioner?
                    self.tally.unjoined.update(gone.unjoined())
                self._dirty.discard(c)

    # ------------------------------------------------------------------ changelog

    def snapshot(self, max_bytes: int = MAX_RECORD_BYTES) -> list[Segment]:
        """A full snapshot at the current ``seq``, in parts of at most ~``max_bytes``
        pickled (Kafka refuses records above ~1 MB by default).

        Every part carries the offsets, watermarks and tallies; the ids, crossings and
        held events are spread over the parts.
        """
        seen = [(t, i, e) for t, ids in self.seen.items() for i, e in ids.items()]
        crossings = list(self.crossings.items())
        held = list(self.held.items())
        whole = Segment(
            seq=self.seq, offsets=dict(self.offsets), watermark=dict(self.watermark),
            tally=self.tally.copy(), seen=seen,
            crossings={c: x.__getstate__() for c, x in crossings},
            crossing_expiry=dict(self.crossing_expiry), held_added=dict(held), held_removed=[],
            base=True,
        )
        size = len(whole.dumps())
        parts = max(1, -(-size * 5 // (4 * max_bytes)))  # a 25% margin for uneven items
        if parts == 1:
            return [whole]
        out = []
        for k in range(parts):
            chunk = crossings[k::parts]
            out.append(Segment(
                seq=self.seq, offsets=dict(self.offsets), watermark=dict(self.watermark),
                tally=self.tally.copy(), seen=seen[k::parts],
                crossings={c: x.__getstate__() for c, x in chunk},
                crossing_expiry={c: self.crossing_expiry[c] for c, _ in chunk if c in self.crossing_expiry},
                held_added=dict(held[k::parts]), held_removed=[], base=True, part=k, parts=parts,
            ))
        return out

    def apply(self, segment: Segment) -> None:
        """Replay one changelog record (recovery)."""
        if segment.base:
            if segment.part == 0:
                self.__init__(self.lane, self.partition, self.horizon / 86400.0)
            self.base_seq = segment.seq
        elif segment.seq <= self.seq:
            return  # covered by a later snapshot or already applied
        self.seq = segment.seq
        self.offsets = dict(segment.offsets)
        self.watermark = dict(segment.watermark)
        self.tally = segment.tally.copy()
        for topic, event_id, expiry in segment.seen:
            self.seen.setdefault(topic, {})[event_id] = expiry
        for cid, state in segment.crossings.items():
            if state is None:
                self.crossings.pop(cid, None)
                self.crossing_expiry.pop(cid, None)
            else:
                crossing = Crossing()
                crossing.__setstate__(state)
                self.crossings[cid] = crossing
        self.crossing_expiry.update(segment.crossing_expiry)
        self.held.update(segment.held_added)
        for key in segment.held_removed:
            self.held.pop(key, None)

    @classmethod
    def restore(
        cls, lane: str, partition: int, records: dict[bytes, bytes], horizon_days: float = HORIZON_DAYS
    ) -> "PartitionState":
        """Rebuild from the table's records of this partition (``lane|p|...`` keys):
        the newest complete snapshot, then the segments after it, in order."""
        state = cls(lane, partition, horizon_days)
        prefix = segment_prefix(lane, partition)
        segments = [Segment.loads(v) for k, v in records.items() if k.startswith(prefix) and v]
        bases: dict[int, dict[int, Segment]] = {}
        for s in segments:
            if s.base:
                bases.setdefault(s.seq, {})[s.part] = s
        complete = [seq for seq, parts in bases.items()
                    if len(parts) == next(iter(parts.values())).parts]
        start = max(complete, default=0)
        if complete:
            for k in sorted(bases[start]):
                state.apply(bases[start][k])
        for s in sorted((s for s in segments if not s.base and s.seq > start), key=lambda s: s.seq):
            state.apply(s)
        return state

    @property
    def held_count(self) -> Counter:
        return Counter(topic for topic, _ in self.held)


def segment_prefix(lane: str, partition: int) -> bytes:
    return f"{lane}|{partition}|".encode()


def segment_key(lane: str, partition: int, seq: int) -> bytes:
    return f"{lane}|{partition}|{seq:012d}".encode()


def base_key(lane: str, partition: int, part: int = 0) -> bytes:
    return f"{lane}|{partition}|base|{part:04d}".encode()


def is_base_key(key: bytes) -> bool:
    return b"|base|" in key


# ---------------------------------------------------------------------- estimator state


class Summaries:
    """The estimators' mergeable states, fed with observations from any partition.

    A thin wrapper over :class:`estimators.Tables`, the very accumulator the batch path
    (``streams.batch``) feeds, so :meth:`estimate` gives the batch table; ``version``
    counts updates so the publisher knows when to recompute.
    """

    def __init__(self) -> None:
        from estimators import Tables

        self.tables = Tables()
        self.version = 0

    @property
    def strata(self) -> dict:
        return self.tables.strata

    @property
    def formal(self) -> dict:
        return self.tables.formal

    @property
    def payments(self) -> dict:
        return self.tables.payments

    def update(self, obs) -> None:
        """Add one observation (the single place where live state meets the estimators)."""
        self.tables.update(obs)
        self.version += 1

    def estimate(self):
        """The estimate table (the batch output's columns) of every week seen."""
        from estimators.estimate import estimate_weeks

        return estimate_weeks(self.strata, self.formal, self.payments)

    def weeks(self) -> list[str]:
        return sorted({s.week for s in self.strata})

    def departures(self, week: str) -> dict[tuple[str, str], int]:
        """(border_post, group) -> departures of ``week``."""
        return {
            (s.border_post, s.group): int(st.census.departures.sum())
            for s, st in self.strata.items()
            if s.week == week
        }

    def random_inspections(self, week: str) -> dict[tuple[str, str], int]:
        """(border_post, group) -> random inspections of ``week``."""
        return {
            (s.border_post, s.group): int(st.sample.n_random)
            for s, st in self.strata.items()
            if s.week == week
        }


def stratum_of(obs) -> Stratum | None:
    return getattr(obs, "stratum", None)

