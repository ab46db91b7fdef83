"""The live path's logic as plain, Kafka-free code: per-partition state and its changelog.

A worker splits the contract's topics into *lanes*; partition ``p`` of every topic of a
lane goes to one worker (faust co-partitions topics with the same partition count):

- ``crossings``: border.departures, travellers.declarations, customs.inspections (they
  share ``crossing_id`` keys, so a crossing's three pieces meet in one partition);
- ``exports``: customs.exports;  ``payments``: payments.transactions;
- ``rates``: fx.rates, validated, deduplicated and counted here like any topic; the rate
  *book* itself is built by every worker from the whole topic (see ``streams.kafka.worker``).

:class:`PartitionState` holds everything one lane partition needs and nothing else:

- ``offsets``: the last applied offset per topic. A record at or below it is skipped, so
  a batch redelivered after a restart changes nothing: updates are idempotent.
- ``watermark``: per topic, the ``WATERMARK_RANK``-th (16th) newest accepted
  ``event_time``: the event-time clock of that topic-partition, which a handful of
  far-future events cannot move. An event whose ISO week (Asia/Tehran) closed more than
  ``horizon`` before it is ``too_late``: dead-lettered, not counted.
- ``seen``: keyed digests (:func:`id_digest`) of event ids per topic, each kept until its
  week closed ``horizon`` ago on the watermark; past that a repeat would be too late
  anyway, so deduplication is exact and the set is bounded by (events per horizon).
- ``crossings``: the open :class:`~streams.pipeline.crossings.Crossing` joins, keyed by the keyed
  digest of the crossing id, dropped on the same horizon.
- ``held``: events whose amount has no exchange rate yet (raw bytes, retried when the
  rate book grows; never dropped).
- ``tally``: accepted, duplicate, rejected (by reason), late, too-late counts per topic.

Every record is isolated: a tombstone is dead-lettered as ``tombstone``, and a record
that raises anywhere (decoding, joining, pricing, also on a held-event retry) is
dead-lettered as ``internal_error:<Type>`` with nothing of it kept.

Processing a batch mutates the state and returns a :class:`Step` whose *segment*
(:class:`streams.pipeline.encoding.Segment`, versioned MessagePack, never pickle) carries both
what changed (new id digests, changed crossings, held changes, offsets, watermarks,
tallies) **and the partition's whole estimator states of every week the step touched**
(``weeks``: :class:`estimators.encoding.WeekStates`; the state adds the step's
observations to ``weeks`` first). That is the design that makes a kill -9 exact: one
write carries the state change and the states it led to, so they land together or not
at all (a step too large for one record is written in parts sharing a random
``attempt`` id, and counts only when every part of one attempt is there). A worker
killed before its write lands restarts from the previous step and redoes it; a step
that landed is recovered with its offsets and never redone. Since each record holds a
week's states whole, the newest complete step of a (partition, week) supersedes every
earlier one: the estimate is a function of the newest complete steps in the changelog,
which every worker reads (see :mod:`streams.kafka.worker`), and reading one twice
changes nothing.

The worker writes segments to the changelogged ``partition-state`` table under
``lane|p|seq|part``; every ``COMPACT_EVERY`` steps it writes a snapshot (a base segment,
no observations, no week states) under ``lane|p|base|seq|part``. A step record that a
snapshot covers, whose weeks a later step carries again and that is not the newest is
obsolete and tombstoned by the owner (:class:`StepLedger`), so the compacted topic grows
with weeks, not with steps; readers pass the gaps that leaves at or below the newest
snapshot (``LiveWorker._merge_ready``). Recovery is :meth:`PartitionState.restore` /
:meth:`PartitionState.rebuild` (the week states from the newest record of each week).

Only states leave a partition (never ids: the inspection's ``unit_key``, the traveller
keys and the sketches' hashes are keyed digests); :class:`Summaries` keeps the newest
per (partition, week) and merges them into the estimators' states.
"""

from __future__ import annotations

import bisect
import datetime as _dt
import hashlib
import logging
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Final, NamedTuple

import msgspec

from estimators.encoding import (
    Observations, WeekStates, decode_state, encode_state, state_class, state_slot, week_items,
)
from estimators.observations import FormalExportSeen, PaymentSeen, Stratum
from estimators.state import update_isolated
from estimators.tables import Tables
from streams.pipeline.contract import (
    DECLARATIONS,
    DEPARTURES,
    EXPORTS,
    INSPECTIONS,
    PAYMENTS,
    RATES,
    Rejection,
    decode,
)
from streams.pipeline.crossings import (
    TEHRAN,
    Crossing,
    priced_declaration,
    departure_stratum,
    formal_export_seen,
    payment_seen,
    priced_inspection,
)
from streams.pipeline.encoding import (
    CrossingRecord,
    HeldRecord,
    Invalid,
    Segment,
    TallyRecord,
    decode_segment,
    encode_segment,
)
from streams.pipeline import pseudonym
from streams.pipeline.fx import RateBook

log = logging.getLogger("suitcase.live")

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
#: Dead-letter reason of a record without a value (a tombstone) on an input topic.
TOMBSTONE: Final = "tombstone"
#: Largest changelog record a step or snapshot part aims at (Kafka's default limit is ~1 MB).
MAX_RECORD_BYTES: Final = 512 * 1024
#: Weeks a partition keeps decoded (the most recently touched); the others as bytes only,
#: decoded again if a late event touches them.
DECODED_WEEKS: Final = 6
#: The watermark of a topic-partition is its WATERMARK_RANK-th newest accepted event time.
WATERMARK_RANK: Final = 16
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


def id_digest(identifier: str) -> bytes:
    """Keyed 128-bit BLAKE2b digest of an event or crossing id (SUITCASE_PSEUDONYM_KEY):
    what the seen-sets and the crossing joins are keyed by, so the changelog carries no id.
    128 bits: no two ids of a horizon collide in practice, so deduplication stays exact."""
    key = pseudonym.key()
    keyed = _KEYED.get(key)
    if keyed is None:  # a keyed hash set up once per key, copied per id (the key schedule is the cost)
        keyed = _KEYED[key] = hashlib.blake2b(digest_size=16, key=key)
    h = keyed.copy()
    h.update(identifier.encode("utf-8", "surrogatepass"))
    return h.digest()


_KEYED: dict[bytes, "hashlib._Hash"] = {}


def _tally_record(t: Tally) -> TallyRecord:
    return TallyRecord(dict(t.accepted), dict(t.duplicates),
                       [(topic, reason, n) for (topic, reason), n in t.rejected.items()], dict(t.late),
                       [(topic, post, n) for (topic, post), n in t.unjoined.items()])


def _tally(r: TallyRecord) -> Tally:
    return Tally(Counter(r.accepted), Counter(r.duplicates),
                 Counter({(topic, reason): n for topic, reason, n in r.rejected}), Counter(r.late),
                 Counter({(topic, post): n for topic, post, n in r.unjoined}))


def _crossing_record(key: bytes, c: Crossing, expiry: float) -> CrossingRecord:
    return CrossingRecord(key, c.stratum, c.region, c.declared, list(c.waiting), expiry, c.post)


def _state_key(obs):
    """Where an observation's state lives: its stratum, or ``("formal"|"payments", week)``."""
    kind = type(obs)
    if kind is FormalExportSeen:
        return ("formal", obs.week)
    if kind is PaymentSeen:
        return ("payments", obs.week)
    return Stratum(*obs.stratum)


def _key_week(key) -> str:
    return key.week if isinstance(key, Stratum) else key[1]


def encode_parts(segment: Segment, max_bytes: int = MAX_RECORD_BYTES) -> list[bytes]:
    """A segment as records of at most ~``max_bytes`` each (Kafka refuses records above
    ~1 MB by default): one record, or ``parts`` records with the same ``seq`` and
    ``attempt``, each carrying the offsets, watermarks and tallies and a share of the
    ids, crossings, held events and observations."""
    whole = encode_segment(segment)
    if len(whole) <= max_bytes:
        return [whole]
    parts = max(2, -(-len(whole) * 5 // (4 * max_bytes)))  # a 25% margin for uneven items
    while True:
        pieces = segment.observations.split(parts)
        out = [
            encode_segment(msgspec.structs.replace(
                segment, part=k, parts=parts, seen=segment.seen[k::parts],
                crossings=segment.crossings[k::parts], closed=segment.closed[k::parts],
                held_added=segment.held_added[k::parts], held_removed=segment.held_removed[k::parts],
                observations=pieces[k], stamps=segment.stamps if k == parts - 1 else None,
                weeks=[WeekStates(w.week, w.strata[k::parts], w.formal if k == 0 else None,
                                  w.payments if k == 0 else None) for w in segment.weeks],
            ))
            for k in range(parts)
        ]
        if max(map(len, out)) <= max_bytes or parts > 4096:
            return out
        parts *= 2


def complete_steps(segments: list[Segment]) -> dict[tuple[bool, int], list[Segment]]:
    """(base, seq) -> the parts of one attempt that has every part (see Segment)."""
    attempts: dict[tuple[bool, int, int], dict[int, Segment]] = {}
    for s in segments:
        attempts.setdefault((s.base, s.seq, s.attempt), {})[s.part] = s
    out: dict[tuple[bool, int], list[Segment]] = {}
    for (base, seq, _), parts in sorted(attempts.items()):
        if len(parts) == next(iter(parts.values())).parts:
            out.setdefault((base, seq), [parts[k] for k in sorted(parts)])
    return out


class StepLedger:
    """Which step records of one lane partition the state changelog still needs.

    A step record (``lane|p|seq|part``) holds the partition's join-state change, needed
    until a snapshot covers it (``seq <= base``), the whole states of the weeks it
    touched, each needed until a later step carries that week again, and the
    partition's offsets, which the newest step must keep saying (readers take "how far
    is this partition" from it). A step that is none of these is obsolete: its owner
    tombstones it, so the compacted changelog keeps one snapshot, the steps after it,
    the newest step and at most one step per week: its size grows with weeks, not with
    steps (one per fetch, so with time). A version-2 step (observations, added by
    readers rather than superseding) is never obsolete.

    Every worker keeps a ledger per partition from the complete steps it reads, owner or
    not, and obsolete records wait in it until an owner takes them (:meth:`take`) or their
    tombstone is read (:meth:`forget`), so a new owner tombstones what the old one left,
    an upgrade tombstones the history, and a worker that owns nothing holds only the
    obsolete records whose tombstones are still on their way.
    """

    __slots__ = ("base", "newest", "_week_step", "_steps", "_waiting")

    def __init__(self) -> None:
        self.base = 0  # seq of the newest complete snapshot
        self.newest = 0  # seq of the newest step
        self._week_step: dict[str, int] = {}  # week -> seq of the newest step carrying it
        self._steps: dict[int, tuple[int, set[str] | None]] = {}  # seq -> (parts, weeks newest here; None: keep)
        self._waiting: dict[int, int] = {}  # obsolete seq -> parts, not yet tombstoned

    def step(self, seq: int, parts: int, weeks, observations: bool = False) -> None:
        """A complete step ``seq`` of ``parts`` records carrying ``weeks`` (and, for a
        version-2 step, ``observations``)."""
        if seq in self._steps:
            return  # read twice
        newest_here = set()
        for week in weeks:
            old = self._week_step.get(week, 0)
            if old > seq:
                continue  # a later step carries it already
            held = self._steps.get(old)
            if held is not None and held[1] is not None:
                held[1].discard(week)
            self._week_step[week] = seq
            newest_here.add(week)
        self._steps[seq] = (parts, None if observations else newest_here)
        self.newest = max(self.newest, seq)
        self._sweep()

    def snapshot(self, seq: int) -> None:
        """A complete snapshot at ``seq``."""
        self.base = max(self.base, seq)
        self._sweep()

    def take(self) -> list[tuple[int, int]]:
        """The (seq, parts) of the obsolete records not taken or tombstoned before, oldest
        first."""
        out = sorted(self._waiting.items())
        self._waiting.clear()
        return out

    def forget(self, seq: int) -> None:
        """Step ``seq``'s tombstone was read: nobody need write it."""
        self._waiting.pop(seq, None)

    def kept(self) -> list[int]:
        """The seqs of the step records still needed, in order."""
        return sorted(self._steps)

    def _sweep(self) -> None:
        gone = [(seq, parts) for seq, (parts, weeks) in self._steps.items()
                if weeks is not None and not weeks and seq <= self.base and seq != self.newest]
        for seq, parts in gone:
            del self._steps[seq]
            self._waiting[seq] = parts


@dataclass
class Step:
    """The result of one processing step of a partition."""

    segment: Segment | None  # None: nothing changed
    observations: list  # estimator observations released by this step
    dead: list[DeadLetter]
    lags: list[tuple[str, float]]  # (topic, record timestamp) of processed records


class Expiring:
    """Keys with an expiry time, forgotten in bulk once the clock passes it.

    A dict (key -> expiry) beside buckets of keys by expiry: expiring costs what expires,
    not a sweep over everything kept (expiry times are week ends plus the horizon, so
    there are few buckets). A key set again, or removed, leaves a stale entry in its old
    bucket, which expiring checks against the dict."""

    __slots__ = ("_expiry", "_buckets")

    def __init__(self) -> None:
        self._expiry: dict = {}
        self._buckets: dict[float, list] = {}

    def __contains__(self, key) -> bool:
        return key in self._expiry

    def __len__(self) -> int:
        return len(self._expiry)

    def __eq__(self, other) -> bool:
        return isinstance(other, Expiring) and self._expiry == other._expiry

    __hash__ = None

    def get(self, key, default=None):
        return self._expiry.get(key, default)

    def items(self):
        return self._expiry.items()

    def __setitem__(self, key, expiry: float) -> None:
        self._expiry[key] = expiry
        bucket = self._buckets.get(expiry)
        if bucket is None:
            bucket = self._buckets[expiry] = []
        bucket.append(key)

    def pop(self, key, default=None):
        return self._expiry.pop(key, default)

    def expire(self, before: float) -> list:
        """Forget the keys whose expiry is before ``before``; returns them."""
        gone = []
        expiry = self._expiry
        for at in [at for at in self._buckets if at < before]:
            for key in self._buckets.pop(at):
                if expiry.get(key) == at:
                    del expiry[key]
                    gone.append(key)
        return gone


class PartitionState:
    """The state of one lane partition (see the module docstring)."""

    def __init__(self, lane: str, partition: int, horizon_days: float = HORIZON_DAYS) -> None:
        self.lane = lane
        self.partition = partition
        self.horizon = horizon_days * 86400.0
        self.seq = 0
        self.base_seq = 0
        self.base_parts = 0  # records of the snapshot at base_seq
        self.offsets: dict[str, int] = {}
        self.newest: dict[str, list[float]] = {}  # topic -> the WATERMARK_RANK newest event times
        self.watermark: dict[str, float] = {}  # topic -> the watermark those give
        self.tally = Tally()
        self.seen: dict[str, Expiring] = {}  # topic -> id digests and their expiry
        self.crossings: dict[bytes, Crossing] = {}
        self.crossing_expiry = Expiring()
        self.held: dict[tuple[str, int], tuple[bytes, float, float]] = {}
        self._expired_at = 0.0
        self._swept_complete = False
        #: The estimators' mergeable states of this partition's observations, all weeks
        #: (what each step publishes, for the weeks it touched, in its segment).
        self.weeks = Tables()
        self._week_keys: dict[str, list] = {}  # week -> its state keys in self.weeks
        self._encoded: dict = {}  # state key -> its encoding (kept until the state changes)
        self._undecoded: dict = {}  # state key -> its class: restored, decoded when first updated
        self._recent: dict[str, None] = {}  # weeks touched lately, oldest first (kept decoded)
        self.state_errors = 0  # observations a state refused (logged once; never expected)
        self._reset_step()

    # ------------------------------------------------------------------ processing

    def _reset_step(self) -> None:
        self._new_seen: list[tuple[str, bytes, float]] = []
        self._dirty: set[bytes] = set()
        self._held_added: dict = {}
        self._held_removed: list = []
        self._obs: list = []
        self._dead: list[DeadLetter] = []
        self._lags: list[tuple[str, float]] = []
        self._changed = False

    def process(self, records: list[Record], rates: RateBook) -> Step:
        """Apply a batch of this partition's records (any of the lane's topics).

        Each record is isolated: one that raises anywhere in decoding, joining or
        pricing is dead-lettered as ``internal_error:<Type>`` with nothing of it kept,
        and the batch goes on.
        """
        self._reset_step()
        offsets = self.offsets
        for rec in records:
            topic = rec.topic
            if rec.offset <= offsets.get(topic, -1):
                continue  # applied before a restart: idempotent
            offsets[topic] = rec.offset
            self._changed = True
            self._lags.append((topic, rec.timestamp))
            if rec.value is None:  # a tombstone: no event at all
                self.tally.rejected[(topic, TOMBSTONE)] += 1
                self._dead.append(DeadLetter(rec, TOMBSTONE))
                continue
            self._isolated(rec, rates)
        self.retry_held(rates, _inside=True)
        return self._finish()

    def _isolated(self, rec: Record, rates: RateBook) -> None:
        """:meth:`_one`, undone and dead-lettered if it raises."""
        n_obs = len(self._obs)
        self._accepting = None
        try:
            self._one(rec, rates)
        except Exception as error:  # noqa: BLE001 -- any input must leave the worker running
            topic = rec.topic
            del self._obs[n_obs:]
            if self._accepting is not None:  # counted as accepted: take it back
                key, late = self._accepting
                self.seen[topic].pop(key, None)
                self._new_seen.pop()
                self.tally.accepted[topic] -= 1
                if late:
                    self.tally.late[topic] -= 1
            self.held.pop((topic, rec.offset), None)
            self._held_added.pop((topic, rec.offset), None)
            reason = f"internal_error:{type(error).__name__}"
            self.tally.rejected[(topic, reason)] += 1
            self._dead.append(DeadLetter(rec, reason))
            _log_once(reason, error)

    def retry_held(self, rates: RateBook, _inside: bool = False) -> Step | None:
        """Try the held events again (the rate book has grown); a step if run alone."""
        if not _inside:
            self._reset_step()
        if self.held:
            for key, (raw, ts, _) in sorted(self.held.items(), key=lambda kv: (kv[0][0], kv[0][1])):
                n_obs = len(self._obs)
                try:
                    released = self._route(key[0], decode(key[0], raw), rates)
                except Exception as error:  # noqa: BLE001 -- dead-letter it, keep going
                    del self._obs[n_obs:]
                    reason = f"internal_error:{type(error).__name__}"
                    self.tally.accepted[key[0]] -= 1
                    self.tally.rejected[(key[0], reason)] += 1
                    self._dead.append(DeadLetter(Record(key[0], self.partition, key[1], ts, raw), reason))
                    _log_once(reason, error)
                    released = True
                if released:
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
            seen = self.seen[topic] = Expiring()
        key = id_digest(event.event_id)
        if key in seen:
            tally.duplicates[topic] += 1
            return
        expiry = end + self.horizon
        seen[key] = expiry
        self._new_seen.append((topic, key, expiry))
        tally.accepted[topic] += 1
        if wm > end:
            tally.late[topic] += 1
        self._accepting = (key, wm > end)
        if not self._route(topic, event, rates, end):
            held = (topic, rec.offset)
            self.held[held] = self._held_added[held] = (rec.value, rec.timestamp, at)
        self._advance(topic, at)  # last: nothing above moved the clock if it raised

    def _advance(self, topic: str, at: float) -> None:
        """Keep the WATERMARK_RANK newest event times; the watermark is the oldest of
        them once there are that many, so no handful of far-future events moves it."""
        newest = self.newest.get(topic)
        if newest is None:
            newest = self.newest[topic] = []
        if len(newest) < WATERMARK_RANK:
            bisect.insort(newest, at)
        elif at > newest[0]:
            bisect.insort(newest, at)
            del newest[0]
        else:
            return
        if len(newest) >= WATERMARK_RANK:
            self.watermark[topic] = newest[0]

    def _route(self, topic: str, event, rates: RateBook, end: float | None = None) -> bool:
        """Price and join one accepted event; False when a rate is missing (hold it).
        ``end``: the close of the event's week, when the caller has it already."""
        if topic == DEPARTURES:
            self._obs += self._crossing(event.crossing_id, event, end).add_departure(
                *departure_stratum(event)
            )
        elif topic == DECLARATIONS:
            cents = priced_declaration(event, rates)
            if cents is None:
                return False
            self._obs += self._crossing(event.crossing_id, event, end).add_declaration(cents)
        elif topic == INSPECTIONS:
            priced = priced_inspection(event, rates)
            if priced is None:
                return False
            self._obs += self._crossing(event.crossing_id, event, end).add_inspection(priced)
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

    def _crossing(self, crossing_id: str, end_of, end: float | None = None) -> Crossing:
        key = id_digest(crossing_id)
        found = self.crossings.get(key)
        if end is None:
            end = week_end(end_of.event_time.timestamp())
        expiry = end + self.horizon + _WEEK
        if found is None:
            found = self.crossings[key] = Crossing()
            found.post = end_of.border_post
        if expiry > self.crossing_expiry.get(key, 0.0):
            self.crossing_expiry[key] = expiry
        self._dirty.add(key)
        return found

    def _finish(self) -> Step:
        self._expire()
        segment = None
        if self._changed or self._dirty or self._new_seen:
            self.seq += 1
            segment = self._segment(
                seen=self._new_seen,
                crossings=[_crossing_record(k, self.crossings[k], self.crossing_expiry.get(k, 0.0))
                           for k in self._dirty if k in self.crossings],
                closed=[k for k in self._dirty if k not in self.crossings],
                held_added=self._held_added, held_removed=self._held_removed,
                observations=Observations(),
            )
            segment.weeks = self._add_to_weeks(self._obs)
        step = Step(segment, self._obs, self._dead, self._lags)
        self._reset_step()
        return step

    # ------------------------------------------------------------------ week states

    def _add_to_weeks(self, observations: list) -> list[WeekStates]:
        """Add the step's observations to the partition's states; the whole states of
        every week they touched (only the changed states are encoded anew)."""
        touched = {}
        groups: dict = {}
        for obs in observations:
            key = _state_key(obs)
            group = groups.get(key)
            if group is None:
                group = groups[key] = []
            group.append(obs)
        for key, group in groups.items():  # each state's observations in bulk
            week = _key_week(key)
            if key in self._undecoded:
                self._decode_restored(key)
            if key not in self._encoded and not self._has(key):
                self._week_keys.setdefault(week, []).append(key)
            table, at = state_slot(self.weeks, key)
            state = table.get(at)
            if state is None:
                state = table[at] = state_class(key)()
            errors = update_isolated(state, group)
            for error in errors:  # checked on decode: a bug, logged
                self.state_errors += 1
                _log_once(f"state_error:{type(error).__name__}", error)
            if len(errors) < len(group):
                self._encoded.pop(key, None)
                touched[week] = True
        out = [self._week_states(week) for week in sorted(touched)]
        recent = self._recent
        for week in touched:
            recent.pop(week, None)
            recent[week] = None
        while len(recent) > DECODED_WEEKS:
            self._evict(next(iter(recent)))
        return out

    def _evict(self, week: str) -> None:
        """Keep a week no step touched lately as its encoded states only (memory)."""
        del self._recent[week]
        for key in self._week_keys.get(week, ()):
            if key in self._undecoded or self._encoding(key) is None:
                continue
            table, at = state_slot(self.weeks, key)
            del table[at]
            self._undecoded[key] = state_class(key)

    def _decode_restored(self, key) -> None:
        """Decode a restored state before its first update (one that does not decode
        was counted by the readers that merged it: it starts again, empty)."""
        cls = self._undecoded.pop(key)
        try:
            state = decode_state(self._encoded[key], cls)
        except ValueError:
            self.state_errors += 1
            return
        table, at = state_slot(self.weeks, key)
        table[at] = state

    def _has(self, key) -> bool:
        table, at = state_slot(self.weeks, key)
        return at in table

    def _encoding(self, key) -> bytes | None:
        raw = self._encoded.get(key)
        if raw is None:
            table, at = state_slot(self.weeks, key)
            state = table.get(at)
            if state is None:
                return None
            raw = self._encoded[key] = encode_state(state)
        return raw

    def _week_states(self, week: str) -> WeekStates:
        out = WeekStates(week, [], None, None)
        for key in self._week_keys.get(week, ()):
            raw = self._encoding(key)
            if raw is None:
                continue
            if isinstance(key, Stratum):
                out.strata.append((key.border_post, key.group, raw))
            elif key[0] == "formal":
                out.formal = raw
            else:
                out.payments = raw
        out.strata.sort()
        return out

    def restore_weeks(self, parts: list[WeekStates]) -> int:
        """Take one week's states from a record (its parts, of one step). They are kept
        as bytes, and each is decoded only when a step first updates it: a restart
        decodes none of the weeks no event touches any more."""
        for part in parts:
            week = part.week
            for key, raw in week_items(part):
                if key not in self._encoded and not self._has(key):
                    self._week_keys.setdefault(week, []).append(key)
                self._encoded[key] = raw
                self._undecoded[key] = state_class(key)
        return 0

    def _segment(self, *, seen, crossings, closed, held_added, held_removed, observations, base=False) -> Segment:
        return Segment(
            lane=self.lane, partition=self.partition, seq=self.seq, attempt=random.getrandbits(63),
            part=0, parts=1, offsets=dict(self.offsets),
            watermark={t: list(v) for t, v in self.newest.items()}, tally=_tally_record(self.tally),
            seen=seen, crossings=crossings, closed=closed,
            held_added=[HeldRecord(t, o, raw, ts, at) for (t, o), (raw, ts, at) in held_added.items()],
            held_removed=list(held_removed), observations=observations, base=base,
        )

    def _expire(self) -> None:
        """Forget ids and crossings beyond the horizon (on the watermarks)."""
        if not self.watermark:
            return
        oldest = min(self.watermark.values())
        complete = self.lane != "crossings" or len(self.watermark) == len(LANES["crossings"])
        # Expiry runs at most once per simulated day of event time (bucketed: it costs what
        # expires), and once when the lane's last topic first appears (a backfill sends topic by topic).
        if oldest < self._expired_at + 86400 and complete == self._swept_complete:
            return
        self._expired_at, self._swept_complete = oldest, complete
        for topic, seen in self.seen.items():
            seen.expire(self.watermark.get(topic, float("-inf")))
        if self.lane == "crossings" and len(self.watermark) == len(LANES["crossings"]):
            for c in self.crossing_expiry.expire(oldest):
                gone = self.crossings.pop(c, None)
                if gone is not None:  # pieces that never met their departure: a producer's partitioner?
                    self.tally.unjoined.update(gone.unjoined())
                self._dirty.discard(c)

    # ------------------------------------------------------------------ changelog

    def snapshot(self) -> Segment:
        """A full snapshot at the current ``seq`` (a base segment; write it with
        :func:`encode_parts`, which splits it below Kafka's record limit)."""
        return self._segment(
            seen=[(t, i, e) for t, ids in self.seen.items() for i, e in ids.items()],
            crossings=[_crossing_record(k, c, self.crossing_expiry.get(k, 0.0)) for k, c in self.crossings.items()],
            closed=[], held_added=self.held, held_removed=[], observations=Observations(), base=True,
        )

    def apply(self, segment: Segment) -> None:
        """Replay one changelog record (recovery); a base's first part resets the state
        (but for the week states, which snapshots do not carry; see :meth:`rebuild`)."""
        if segment.base and segment.part == 0:
            kept = self.weeks, self._week_keys, self._encoded, self._undecoded, self._recent
            self.__init__(self.lane, self.partition, self.horizon / 86400.0)
            self.weeks, self._week_keys, self._encoded, self._undecoded, self._recent = kept
        if segment.base:
            self.base_seq = segment.seq
        self.seq = segment.seq
        self.offsets = dict(segment.offsets)
        self.newest = {t: sorted(v)[-WATERMARK_RANK:] for t, v in segment.watermark.items()}
        self.watermark = {t: v[0] for t, v in self.newest.items() if len(v) >= WATERMARK_RANK}
        self.tally = _tally(segment.tally)
        for topic, key, expiry in segment.seen:
            seen = self.seen.get(topic)
            if seen is None:
                seen = self.seen[topic] = Expiring()
            seen[key] = expiry
        for c in segment.crossings:
            crossing = Crossing()
            crossing.__setstate__((c.stratum, c.region, c.declared, c.waiting, c.post))
            self.crossings[c.key] = crossing
            self.crossing_expiry[c.key] = c.expiry
        for key in segment.closed:
            self.crossings.pop(key, None)
            self.crossing_expiry.pop(key, None)
        for h in segment.held_added:
            self.held[(h.topic, h.offset)] = (h.value, h.timestamp, h.event_time)
        for topic, offset in segment.held_removed:
            self.held.pop((topic, offset), None)

    @classmethod
    def restore(
        cls, lane: str, partition: int, records: dict[bytes, bytes], horizon_days: float = HORIZON_DAYS
    ) -> "PartitionState":
        """Rebuild from table records of this partition (``lane|p|...`` keys); records
        that do not decode are skipped (``invalid`` counts them). See :meth:`rebuild`."""
        prefix = segment_prefix(lane, partition)
        segments, invalid = [], 0
        for k, v in records.items():
            if k.startswith(prefix) and v:
                s = decode_segment(v)
                if type(s) is Invalid or s.lane != lane or s.partition != partition:
                    invalid += 1
                else:
                    segments.append(s)
        state = cls.rebuild(lane, partition, segments, horizon_days)
        state.invalid = invalid
        return state

    @classmethod
    def rebuild(
        cls, lane: str, partition: int, segments: list[Segment], horizon_days: float = HORIZON_DAYS,
        weeks: dict[str, tuple[int, list[WeekStates]]] | None = None,
    ) -> "PartitionState":
        """The state from decoded changelog records of this partition: the newest
        complete snapshot, then each complete step after it, in order, up to the first
        missing one; the week states of ``weeks`` (week -> (seq, parts) of the step
        that last wrote them) and of those segments."""
        state = cls(lane, partition, horizon_days)
        steps = complete_steps(segments)
        start = max((seq for base, seq in steps if base), default=0)
        if start:
            for part in steps[(True, start)]:
                state.apply(part)
            state.base_parts = len(steps[(True, start)])
        seq = start + 1
        while (False, seq) in steps:
            for part in steps[(False, seq)]:
                state.apply(part)
            seq += 1
        # Each week's states from the newest step that touched it, among the steps up to
        # the restored one: those of ``weeks`` (the reader's, for steps before the
        # snapshot), then those the segments carry.
        newest: dict[str, tuple[int, list]] = {}
        for week, (at, parts) in (weeks or {}).items():
            if at <= state.seq:
                newest[week] = (at, parts)
        for (base, at), parts in steps.items():
            if base or at > state.seq:
                continue
            by_week: dict[str, list] = {}
            for part in parts:
                for w in part.weeks:
                    by_week.setdefault(w.week, []).append(w)
            for week, ws in by_week.items():
                if at >= newest.get(week, (-1, None))[0]:
                    newest[week] = (at, ws)
        for week in sorted(newest):
            state.invalid += state.restore_weeks(newest[week][1])
        return state

    invalid = 0  # records restore could not decode

    @property
    def held_count(self) -> Counter:
        return Counter(topic for topic, _ in self.held)


_logged: set[str] = set()


def _log_once(reason: str, error: BaseException) -> None:
    if reason not in _logged:
        _logged.add(reason)
        log.error("a record failed (%s), dead-lettered; later ones of this kind are counted only",
                  reason, exc_info=error)


def segment_prefix(lane: str, partition: int) -> bytes:
    return f"{lane}|{partition}|".encode()


def segment_key(lane: str, partition: int, seq: int, part: int = 0) -> bytes:
    return f"{lane}|{partition}|{seq:012d}|{part:04d}".encode()


def base_key(lane: str, partition: int, seq: int, part: int = 0) -> bytes:
    return f"{lane}|{partition}|base|{seq:012d}|{part:04d}".encode()


# ---------------------------------------------------------------------- estimator state


class Summaries:
    """The estimators' mergeable states of every lane partition, merged.

    Each lane partition's owner publishes, with every step, the whole states of each
    week the step touched (:class:`estimators.encoding.WeekStates`); :meth:`put` keeps
    the newest per (lane partition, week), superseding the one before, so a step read
    twice or redone changes nothing. :attr:`tables` is their merge (an
    :class:`estimators.Tables`, the very accumulator the batch path feeds, so
    :meth:`estimate` gives the batch table), recomputed only for the states whose bytes
    changed, decoded only then. :meth:`update` adds one observation directly (tests, and
    the steps of version-2 records, which carried observations). ``version`` counts
    changes so the publisher knows when to recompute.
    """

    def __init__(self) -> None:
        from estimators import Tables

        self._weeks: dict[tuple, dict[str, tuple[int, list[WeekStates]]]] = {}
        self._holders: dict[str, set] = {}  # week -> lane partitions with states of it
        self._direct = Tables()
        self._merged = Tables()
        self._sums: dict = {}  # state key -> ((partition, bytes) summed, their sum)
        self._dirty: set[str] = set()  # weeks to merge again
        self.version = 0
        self.invalid = 0  # states that did not decode (skipped)

    # -- writing ---------------------------------------------------------------------

    def put(self, partition: tuple, seq: int, weeks: list[WeekStates]) -> None:
        """The states a complete step ``seq`` of ``partition`` carried (all its parts)."""
        if not weeks:
            return
        by_week: dict[str, list[WeekStates]] = {}
        for w in weeks:
            by_week.setdefault(w.week, []).append(w)
        mine = self._weeks.setdefault(partition, {})
        for week, parts in by_week.items():
            old = mine.get(week)
            if old is not None and old[0] > seq:
                continue  # an older step read late: superseded already
            mine[week] = (seq, parts)
            self._holders.setdefault(week, set()).add(partition)
            self._dirty.add(week)
        self.version += 1

    def update(self, obs) -> None:
        """Add one observation directly."""
        self._direct.update(obs)
        self._dirty.add(_key_week(_state_key(obs)))
        self.version += 1

    def fold(self, partition: tuple, seq: int, observations) -> None:
        """Add a version-2 step's observations to ``partition``'s week states (as if
        its owner had published them as states)."""
        by_week: dict[str, list] = {}
        for obs in observations:
            by_week.setdefault(_key_week(_state_key(obs)), []).append(obs)
        state = PartitionState(*partition)
        for week, (_, parts) in self._weeks.get(partition, {}).items():
            if week in by_week:
                self.invalid += state.restore_weeks(parts)
        self.put(partition, seq, state._add_to_weeks([o for obs in by_week.values() for o in obs]))

    def has_states(self) -> bool:
        return bool(self._weeks) or bool(self._direct.strata or self._direct.formal or self._direct.payments)

    def week_states(self, partition: tuple) -> dict[str, tuple[int, list[WeekStates]]]:
        """week -> (seq, parts) of the newest step of ``partition`` that carried it."""
        return dict(self._weeks.get(partition, {}))

    # -- reading ---------------------------------------------------------------------

    def _decode(self, partition: tuple, raw: bytes, cls):
        try:
            return decode_state(raw, cls)
        except ValueError:
            self.invalid += 1
            log.error("skipped a week state of %s that does not decode", partition)
            return None

    def _merge_week(self, week: str) -> None:
        """Merge the week's states of every lane partition again; a state whose inputs'
        bytes are the same as at its last merge is kept, the others are decoded and
        summed (no decoded state of a single partition is kept: memory)."""
        merged, direct = self._merged, self._direct
        inputs: dict = {}  # state key -> [(partition, bytes)]
        for partition in sorted(self._holders.get(week, ())):
            for part in self._weeks[partition][week][1]:
                for key, raw in week_items(part):
                    inputs.setdefault(key, []).append((partition, raw))
        direct_states = {s: st for s, st in direct.strata.items() if s.week == week}
        if week in direct.formal:
            direct_states[("formal", week)] = direct.formal[week]
        if week in direct.payments:
            direct_states[("payments", week)] = direct.payments[week]
        for key in direct_states:
            inputs.setdefault(key, [])
        gone = []
        for key, raws in inputs.items():
            cls = state_class(key)
            signature = tuple(raws)
            cached = self._sums.get(key)
            if cached is not None and cached[0] == signature and key not in direct_states:
                out = cached[1]
            else:
                out, n = cls(), 0
                for partition, raw in raws:
                    st = self._decode(partition, raw, cls)
                    if st is not None:
                        out += st
                        n += 1
                if key in direct_states:
                    out += direct_states[key]
                    n += 1
                if not n:  # nothing decoded: no state (as if never seen)
                    out = None
                self._sums[key] = (signature, out)
            if out is None:
                gone.append(key)
            else:
                table, at = state_slot(merged, key)
                table[at] = out
        for key in gone:  # (their failed sums stay cached: counted once)
            del inputs[key]
        for s in [s for s in merged.strata if s.week == week and s not in inputs]:
            del merged.strata[s]
            if s not in gone:
                self._sums.pop(s, None)
        for table, kind in ((merged.formal, "formal"), (merged.payments, "payments")):
            if (kind, week) not in inputs and week in table:
                del table[week]
                if (kind, week) not in gone:
                    self._sums.pop((kind, week), None)

    @property
    def tables(self):
        """The merged states of every lane partition (and of :meth:`update`)."""
        if self._dirty:
            for week in sorted(self._dirty):
                self._merge_week(week)
            self._dirty = set()
        return self._merged

    @property
    def strata(self) -> dict:
        return self.tables.strata

    @property
    def formal(self) -> dict:
        return self.tables.formal

    @property
    def payments(self) -> dict:
        return self.tables.payments

    def estimate(self):
        """The estimate table (the batch output's columns) of every week seen."""
        from estimators.estimate import estimate_weeks

        tables = self.tables
        return estimate_weeks(tables.strata, tables.formal, tables.payments)

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
