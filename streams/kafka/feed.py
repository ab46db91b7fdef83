"""Putting events on Kafka: an archive replayed in event-time order as fast as possible,
or the simulator on an accelerated clock. Keys follow :data:`streams.pipeline.contract.TOPIC_KEYS`
(a line whose key cannot be read, e.g. a malformed one, is sent without a key); a key
goes to partition ``murmur2(key) & 0x7fffffff % partitions``, as the Java client and
kafka-python put it, so a crossing's departure, declaration and inspection share one.

Replay order (the contract lets archive lines come in any order; a live worker's
lateness rule does not, so the replayer restores the order a live feed would have):

- fx.rates first, the whole topic in event-time order, and on the broker before any
  amount (Kafka orders nothing across partitions; the worker prices an amount with the
  rates on the broker when its batch arrives, so every rate is there before any amount);
- then the five other topics merged into one event-time order.

The order is a sort in bounded memory: files of up to ``MEMORY_BYTES`` are sorted in
memory; larger ones by an external sort, whose runs of ``RUN_LINES`` lines are sorted
by event time (ties in file order) and spilled to a temporary directory that is always
removed, then a k-way merge streams them. A line whose ``event_time`` cannot be read
keeps its place in its file (it takes the time of the line before it) and is sent like
any other, so the worker dead-letters exactly what ``suitcase validate`` rejects.
Records go out in record batches built from arrays (:func:`record_batch`), not by one
builder call per record. A line is never an object of its own until its batch is built:
it stays in the block it was read in (a block, its start and length travel with the
sort), and is sliced from there once, when its batch is joined.
Each record's Kafka timestamp is its event time (``record_time="event"``) or the send
time (``"now"``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import queue
import re
import struct
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Final, NamedTuple

import msgspec
from aiokafka.errors import KafkaError  # noqa: F401 - the replay's failures, for the CLI
import numpy as np

from streams.pipeline.archive import blocks, lines, topic_files

log = logging.getLogger("suitcase.feed")
from streams.pipeline.contract import RATES, TOPIC_KEYS, TOPICS

#: Files of at most this many bytes (per stream: rates, the rest) are sorted in memory
#: in one run, nothing spilled or merged (12 weeks at scale 0.2, 240 MB, peak RSS
#: ~0.6 GB); larger ones go through the external sort.
MEMORY_BYTES: Final = 256 << 20
#: Lines sorted in memory per run of the external sort (about 150 MB of lines at the
#: simulator's ~250 bytes a line; at most two runs are in memory at once).
RUN_LINES: Final = 500_000
#: Records the merge holds over all runs at once.
MERGE_RECORDS: Final = 200_000
#: Records per chunk handed to the sender from a sort done in memory (small enough that
#: the lines gathered for a chunk are still in the cache when their batches are built).
CHUNK_RECORDS: Final = 8192
#: Bytes of a record batch the replayer builds (and of each read of an archive file).
BATCH_BYTES: Final = 1 << 20
#: Record-time choices: the event's own time, or the time it is sent.
RECORD_TIMES: Final = ("event", "now")

_READ_BYTES: Final = 1 << 20
_UNKNOWN: Final = np.iinfo(np.int64).min  # event time not readable: sorts first
_MAX_TIMESTAMP_MS: Final = 253402300799999  # 9999-12-31T23:59:59.999Z
_TOPIC_INDEX: Final = {t: i for i, t in enumerate(TOPICS)}
_PARTITION_SLOTS: Final = 1 << 16  # (topic, partition) -> topic * slots + partition

_KEY_DECODERS = {
    topic: msgspec.json.Decoder(dict[str, msgspec.Raw]) for topic in TOPICS
}


def key_of(topic: str, raw: bytes) -> bytes | None:
    """The message key of one event line (its TOPIC_KEYS field), or None if unreadable."""
    try:
        value = _KEY_DECODERS[topic].decode(raw).get(TOPIC_KEYS[topic])
        if value is None:
            return None
        key = msgspec.json.decode(value)
    except (msgspec.DecodeError, msgspec.ValidationError, TypeError):
        return None
    return key.encode() if isinstance(key, str) else None


# ---------------------------------------------------------------------- partitioning

_M: Final = np.uint32(0x5BD1E995)
#: Keys longer than this are hashed one at a time (keeps the key matrix small).
_WIDE_KEY: Final = 64


def murmur2_partition_hash(keys: list[bytes | None]) -> np.ndarray:
    """``murmur2(key) & 0x7fffffff`` of each key (Kafka's Java client and kafka-python:
    ``partition = hash % partitions``), -1 for a missing key; vectorized."""
    from kafka.partitioner.default import murmur2

    n = len(keys)
    if not n:
        return np.empty(0, dtype=np.int64)
    if None in keys:
        missing = np.array([k is None for k in keys], dtype=bool)
        present = [b"" if k is None else k for k in keys]
    else:
        missing, present = np.zeros(n, dtype=bool), keys
    length = np.fromiter(map(len, present), dtype=np.int64, count=n)
    width = max(4, -(-min(int(length.max()), _WIDE_KEY) // 4) * 4)
    data = np.frombuffer(np.array(present, dtype=f"S{width}").tobytes(), dtype=np.uint8).reshape(n, width)
    words = data.view("<u4")
    whole = length // 4
    with np.errstate(over="ignore"):
        h = np.uint32(0x9747B28C) ^ length.astype(np.uint32)
        for i in range(width // 4):
            k = words[:, i] * _M
            k ^= k >> np.uint32(24)
            k *= _M
            h = np.where(i < whole, (h * _M) ^ k, h)
        tail = length % 4
        rows = np.arange(n)
        base = whole * 4

        def byte(j: int) -> np.ndarray:
            return data[rows, np.minimum(base + j, width - 1)].astype(np.uint32)

        h = np.where(tail >= 3, h ^ (byte(2) << np.uint32(16)), h)
        h = np.where(tail >= 2, h ^ (byte(1) << np.uint32(8)), h)
        h = np.where(tail >= 1, (h ^ byte(0)) * _M, h)
        h ^= h >> np.uint32(13)
        h *= _M
        h ^= h >> np.uint32(15)
    out = (h & np.uint32(0x7FFFFFFF)).astype(np.int64)
    for i in np.flatnonzero(length > _WIDE_KEY).tolist():
        out[i] = murmur2(present[i]) & 0x7FFFFFFF
    out[missing] = -1
    return out


# ---------------------------------------------------------------------- event times

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MICROSECOND: Final = timedelta(microseconds=1)
_DIGITS: Final = [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18]
_OFFSET_DIGITS: Final = [20, 21, 23, 24]
_MONTH_DAYS: Final = np.array([31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])


def event_micros(times: list) -> np.ndarray:
    """Epoch microseconds of each ``event_time`` value (as decoded from JSON), or
    ``_UNKNOWN``. The forms ``YYYY-MM-DDTHH:MM:SS+HH:MM`` and ``...Z`` are read in bulk;
    any other string goes through msgspec's RFC 3339 parser, the contract decoder's."""
    n = len(times)
    out = np.full(n, _UNKNOWN, dtype=np.int64)
    if not n:
        return out
    texts = [t if type(t) is str else "" for t in times]  # anything else is no time
    joined = "".join(texts)
    if joined.isascii():  # the common case: the characters in one buffer, no object each
        data = np.frombuffer(joined.encode("ascii"), dtype=np.uint8)
        if len(data) == 25 * n and set(map(len, texts)) == {25}:
            length = np.full(n, 25)
            c = np.ascontiguousarray(data.reshape(n, 25).T, dtype=np.int32)
        else:
            length = np.fromiter(map(len, texts), dtype=np.int64, count=n)
            at = (np.cumsum(length) - length)[None, :] + np.arange(25)[:, None]
            data = data if len(data) else np.zeros(1, np.uint8)
            c = data[np.minimum(at, len(data) - 1)].astype(np.int32)  # past a value's end: unused
    else:
        # a longer string has length 26
        text = np.array(texts, dtype="U26")
        length = np.char.str_len(text)
        c = np.ascontiguousarray(text.view(np.uint32).reshape(n, 26)[:, :25].T, dtype=np.int64)
    d = c - 48  # d[i]: the i-th character of every value (a row each, for contiguous reads)

    def number(*at: int) -> np.ndarray:
        value = d[at[0]].astype(np.int64)
        for i in at[1:]:
            value = value * 10 + d[i]
        return value

    ok = (length == 25) | (length == 20)
    ok &= (d[_DIGITS].astype(np.uint32) <= 9).all(axis=0)  # below 0 wraps above 9
    ok &= (c[4] == 45) & (c[7] == 45) & (c[10] == 84) & (c[13] == 58) & (c[16] == 58)
    zulu = (length == 20) & (c[19] == 90)
    sign = np.where(c[19] == 43, -1, np.where(c[19] == 45, 1, 0))
    offset = (length == 25) & (sign != 0) & (c[22] == 58)
    offset &= (d[_OFFSET_DIGITS].astype(np.uint32) <= 9).all(axis=0)
    oh, om = number(20, 21), number(23, 24)
    offset &= (oh <= 23) & (om <= 59)
    ok &= zulu | offset
    year, month, day = number(0, 1, 2, 3), number(5, 6), number(8, 9)
    hour, minute, second = number(11, 12), number(14, 15), number(17, 18)
    month_ok = (month >= 1) & (month <= 12)
    m = np.where(month_ok, month, 1)
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    last_day = _MONTH_DAYS[m - 1] + ((m == 2) & leap)
    ok &= month_ok & (year >= 1) & (day >= 1) & (day <= last_day)
    ok &= (hour <= 23) & (minute <= 59) & (second <= 59)
    # days from civil (H. Hinnant), proleptic Gregorian
    y = year - (m <= 2)
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + np.where(m > 2, -3, 9)) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    days = era * 146097 + doe - 719468
    seconds = days * 86400 + hour * 3600 + minute * 60 + second + np.where(offset, sign * (oh * 3600 + om * 60), 0)
    out[ok] = seconds[ok] * 1_000_000
    for i in np.flatnonzero(~ok).tolist():
        out[i] = _micros_one(times[i])
    return out


def _micros_one(value) -> int:
    if type(value) is not str:
        return _UNKNOWN
    try:
        at = msgspec.convert(value, datetime)
        if at.tzinfo is None:
            at = at.replace(tzinfo=timezone.utc)
        return (at - _EPOCH) // _MICROSECOND
    except Exception:  # noqa: BLE001 - not a time: the line keeps its place
        return _UNKNOWN


# ---------------------------------------------------------------------- reading

def _key_time_decoder(topic: str) -> msgspec.json.Decoder:
    fields = [("event_time", object, None), ("key", object, None)]
    struct = msgspec.defstruct(f"KeyTime{_TOPIC_INDEX[topic]}", fields, rename={"key": TOPIC_KEYS[topic]})
    return msgspec.json.Decoder(struct)


_KEY_TIME = {topic: _key_time_decoder(topic) for topic in TOPICS}
_AT_BYTE = re.compile(r"\(byte (\d+)\)")


def _key_times(decoder, block: bytes, rows: list[bytes] | None, starts: np.ndarray, sizes: np.ndarray) -> tuple[list, list]:
    """(event_time values, key values) of the lines of ``block`` (``rows``, if not None,
    is ``block.split(b"\\n")``; the lines start at ``starts`` and have ``sizes`` bytes).

    Runs of lines that start with ``{`` and end with ``}`` (so one JSON value each) are
    decoded with one msgspec call each; any other line alone (a line that does not
    decode has neither time nor key)."""
    data = np.frombuffer(block, dtype=np.uint8)
    stops = starts + sizes
    full = stops > starts
    shaped = full.copy()
    shaped[full] = (data[starts[full]] == 123) & (data[stops[full] - 1] == 125)
    n = len(starts)
    if shaped.all():
        return _decode_run(decoder, block, rows, n)
    times, keys = [], []
    odd = np.flatnonzero(~shaped).tolist()
    at = 0
    for i in odd + [n]:
        if i > at:
            t, k = _decode_run(decoder, block[starts[at]:stops[i - 1]], None if rows is None else rows[at:i], i - at)
            times += t
            keys += k
        if i < n:
            t, k = _decode_run(decoder, block[starts[i]:stops[i]], None, 1)
            times += t
            keys += k
        at = i + 1
    return times, keys


def _decode_run(decoder, block: bytes, rows: list[bytes] | None, n: int | None = None) -> tuple[list, list]:
    """``_key_times`` of lines each shaped as one JSON object (or a single line);
    ``rows`` None: the ``n`` lines of ``block``, split only if a line does not decode."""
    n = len(rows) if rows is not None else n
    if n > 1:
        try:
            found = decoder.decode_lines(block)
        except Exception as err:  # noqa: BLE001 - a line does not decode: cut it out
            rows = block.split(b"\n") if rows is None else rows
            at = _AT_BYTE.search(str(err))
            cut = block.count(b"\n", 0, int(at.group(1))) if at is not None else n // 2
            cut = min(cut, n - 1)
            left = _decode_run(decoder, b"\n".join(rows[:cut]), rows[:cut]) if cut else ([], [])
            one = _decode_run(decoder, rows[cut], rows[cut:cut + 1])
            right = _decode_run(decoder, b"\n".join(rows[cut + 1:]), rows[cut + 1:]) if cut + 1 < n else ([], [])
            return left[0] + one[0] + right[0], left[1] + one[1] + right[1]
        if len(found) == n:
            return [e.event_time for e in found], [e.key for e in found]
    rows = block.split(b"\n") if rows is None else rows
    times, keys = [], []
    for raw in rows:
        try:
            event = decoder.decode(raw)
        except Exception:  # noqa: BLE001
            times.append(None)
            keys.append(None)
        else:
            times.append(event.event_time)
            keys.append(event.key)
    return times, keys


def _key_bytes(keys: list) -> list[bytes | None]:
    try:  # the common case, in three C calls: every key a str without a newline
        joined = "\n".join(keys)
        if keys and joined.count("\n") == len(keys) - 1:
            return joined.encode().split(b"\n")
    except (TypeError, UnicodeEncodeError):
        pass
    try:
        return [k.encode() if type(k) is str else None for k in keys]
    except UnicodeEncodeError:  # a lone surrogate from a JSON escape: no key
        out = []
        for k in keys:
            try:
                out.append(k.encode() if type(k) is str else None)
            except UnicodeEncodeError:
                out.append(None)
        return out


class _Block(NamedTuple):
    topic: int
    data: bytes  # the lines joined by b"\n"
    starts: np.ndarray  # where each line starts in data
    sizes: np.ndarray  # bytes of each value
    keys: bytes  # the keys there are, joined
    klens: np.ndarray  # bytes of each key, -1: no key
    hashes: np.ndarray
    micros: np.ndarray


def _key_lengths(keys: list) -> np.ndarray:
    if None in keys:
        return np.array([-1 if k is None else len(k) for k in keys], dtype=np.int32)
    return np.fromiter(map(len, keys), dtype=np.int32, count=len(keys))


def _read(topic: str, path: Path) -> Iterator[_Block]:
    """A topic file in blocks of lines with their keys, key hashes and event times; a
    line whose time cannot be read gets the time of the line before it. A line stays
    in its block's bytes (no object per line: a 240 MB archive would be a million)."""
    decoder = _KEY_TIME[topic]
    carry = _UNKNOWN
    index = _TOPIC_INDEX[topic]
    from streams.pipeline.archive import _keep

    limit = _keep() - 1  # the longest line decode accepts
    for block in blocks(path, size=_READ_BYTES):
        newlines = np.flatnonzero(np.frombuffer(block, dtype=np.uint8) == 10)
        sizes = np.diff(np.r_[-1, newlines, len(block)]) - 1
        rows = None
        if len(block) > limit and (sizes > limit).any():
            # A line over the limit is line_too_long for every reader, and no Kafka with
            # its default message.max.bytes would take it: it is not sent (but logged).
            rows = block.split(b"\n")
            kept = [r for r in rows if len(r) <= limit]
            log.warning("%s: %d line(s) over %d bytes not replayed (line_too_long)", path, len(rows) - len(kept), limit)
            rows = kept
            if not rows:
                continue
            block = b"\n".join(rows)
            sizes = sizes[sizes <= limit]
        starts = np.cumsum(sizes + 1) - (sizes + 1)
        times, keys = _key_times(decoder, block, rows, starts, sizes)
        keys = _key_bytes(keys)
        micros = event_micros(times)
        known = micros != _UNKNOWN
        if not known.all():
            at = np.where(known, np.arange(len(micros)), -1)
            np.maximum.accumulate(at, out=at)
            micros = np.where(at >= 0, micros[np.maximum(at, 0)], carry)
        if len(micros):
            carry = int(micros[-1])
        yield _Block(index, block, starts, sizes.astype(np.int32), b"".join(filter(None, keys)),
                     _key_lengths(keys), murmur2_partition_hash(keys), micros)


# ---------------------------------------------------------------------- sorting

_INDEX: Final = np.dtype([
    ("micros", "<i8"), ("hash", "<i8"), ("vstart", "<i8"), ("kstart", "<i8"),
    ("vblock", "<i4"), ("klen", "<i4"), ("vlen", "<i4"), ("topic", "u1"),
])


def _gather_bytes(buf: np.ndarray, starts: np.ndarray, lens: np.ndarray) -> np.ndarray:
    """The bytes ``buf[s:s + n]`` of every (start, length), joined (length -1: none)."""
    lens = np.maximum(lens, 0).astype(np.int64)
    total = int(lens.sum())
    if not total:
        return np.empty(0, dtype=np.uint8)
    return buf[np.repeat(starts - (np.cumsum(lens) - lens), lens) + np.arange(total)]


def _slices(blocks: list[bytes], block: np.ndarray, starts: np.ndarray, lens: np.ndarray) -> list[bytes]:
    """``blocks[b][s:s + n]`` of every (block, start, length), in C calls only."""
    return list(map(bytes.__getitem__, map(blocks.__getitem__, block.tolist()),
                    map(slice, starts.tolist(), (starts + lens).tolist())))


class Chunk:
    """Records in replay order: topic index (into TOPICS), key hash (-1: no key), event
    time (epoch microseconds), bytes of each key (-1: none) and value; a key is at
    ``kstarts`` in ``kbuf``, a value at ``vstarts`` in ``vblocks[vblock]`` (the
    archive's lines stay in the blocks they were read in: no object per line).
    ``shared``: the buffers are those of a run in memory, alive while it is; else the
    chunk's own (a window read back from disk, a merge), so whoever keeps some of its
    records for long copies them out."""

    __slots__ = ("topics", "hashes", "micros", "klens", "vlens", "kstarts", "vstarts", "vblock", "kbuf", "vblocks",
                 "shared")

    def __init__(self, index: np.ndarray, kbuf: np.ndarray, vblocks: list[bytes], shared: bool = False) -> None:
        self.topics, self.hashes, self.micros = index["topic"], index["hash"], index["micros"]
        self.klens, self.vlens = index["klen"], index["vlen"]
        self.kstarts, self.vstarts, self.vblock = index["kstart"], index["vstart"], index["vblock"]
        self.kbuf, self.vblocks = kbuf, vblocks
        self.shared = shared

    def __len__(self) -> int:
        return len(self.micros)

    @property
    def values(self) -> list[bytes]:
        return _slices(self.vblocks, self.vblock, self.vstarts, self.vlens)

    @property
    def keys(self) -> list[bytes | None]:
        return [None if n < 0 else self.kbuf[s:s + n].tobytes()
                for s, n in zip(self.kstarts.tolist(), self.klens.tolist())]


class _Pending:
    """Lines read for the next run: the blocks as read (their keys appended to one
    buffer), and per line its block and where it starts there."""

    def __init__(self) -> None:
        self.vblocks: list[bytes] = []
        self.kbuf = bytearray()
        self.n = 0
        self.topics: list[np.ndarray] = []
        self.hashes: list[np.ndarray] = []
        self.micros: list[np.ndarray] = []
        self.sizes: list[np.ndarray] = []  # bytes of each value
        self.klens: list[np.ndarray] = []  # bytes of each key, -1: no key
        self.vstarts: list[np.ndarray] = []
        self.vblock: list[np.ndarray] = []
        self.kstarts: list[np.ndarray] = []

    def add(self, block: _Block) -> None:
        kpos = np.maximum(block.klens, 0).astype(np.int64)
        self.vstarts.append(block.starts)
        self.vblock.append(np.full(len(block.micros), len(self.vblocks), dtype=np.int32))
        self.kstarts.append(np.cumsum(kpos) - kpos + len(self.kbuf))
        self.vblocks.append(block.data)
        self.kbuf += block.keys
        self.n += len(block.micros)
        self.topics.append(np.full(len(block.micros), block.topic, dtype=np.uint8))
        self.hashes.append(block.hashes)
        self.micros.append(block.micros)
        self.sizes.append(block.sizes)
        self.klens.append(block.klens)

    def __len__(self) -> int:
        return self.n


def _index_of(columns: dict, at: np.ndarray) -> np.ndarray:
    """The records ``at`` of the columns, as one index array."""
    index = np.empty(len(at), dtype=_INDEX)
    for field, column in columns.items():
        index[field] = column[at]
    return index


class _Run:
    """A sorted run: in memory, or spilled to three files (index, keys, values) that are
    read back a window at a time."""

    def __init__(self, pending: _Pending, spill: Path | None = None) -> None:
        micros = np.concatenate(pending.micros)
        order = np.argsort(micros, kind="stable")  # ties keep file order
        columns = {field: np.concatenate(parts) for field, parts in (
            ("micros", [micros]), ("hash", pending.hashes), ("topic", pending.topics), ("vlen", pending.sizes),
            ("klen", pending.klens), ("vstart", pending.vstarts), ("kstart", pending.kstarts), ("vblock", pending.vblock),
        )}
        self.n, self.pos = len(order), 0
        self._files = None
        kbuf, vblocks = np.frombuffer(pending.kbuf, dtype=np.uint8), pending.vblocks
        if spill is None:  # the lines stay where they were read; window() says where, in order
            self.kbuf, self.vblocks = kbuf, vblocks
            self._order, self._columns, self._window = order, columns, None
            return
        index = _index_of(columns, order)
        paths = [spill.with_suffix(f".{part}") for part in ("index", "keys", "values")]
        with paths[1].open("wb") as kf, paths[2].open("wb") as vf:
            for start in range(0, len(order), 8192):
                picked = index[start:start + 8192]
                kf.write(_gather_bytes(kbuf, picked["kstart"], picked["klen"]).tobytes())
                vf.write(b"".join(_slices(vblocks, picked["vblock"], picked["vstart"], picked["vlen"])))
        del kbuf, vblocks
        pending.vblocks = pending.kbuf = None
        index.tofile(paths[0])
        self.kbuf = self.vblocks = None
        self._index, self._lo = np.empty(0, dtype=_INDEX), 0
        self._files = [path.open("rb") for path in paths]

    def window(self, end: int) -> np.ndarray:
        """The index of records ``pos .. end`` (loading them if spilled)."""
        if self._files is None:  # gathered in order a window at a time, after the reading
            if self._window is None or self._window[0] != (self.pos, end):
                self._window = (self.pos, end), _index_of(self._columns, self._order[self.pos:end])
            return self._window[1]
        hi = self._lo + len(self._index)
        if end > hi:
            more = np.fromfile(self._files[0], dtype=_INDEX, count=end - hi)
            self._index = np.concatenate([self._index[self.pos - self._lo:], more])
            self._lo = self.pos
        return self._index[self.pos - self._lo:end - self._lo]

    def take(self, end: int) -> tuple[np.ndarray, np.ndarray, list[bytes]]:
        """Index, key bytes and value bytes of records ``pos .. end`` (then ``pos = end``);
        the index's starts point into those bytes."""
        index = self.window(end)
        self.pos = end
        if self._files is None:
            self._window = None
            return index, self.kbuf, self.vblocks
        index = index.copy()
        _, kf, vf = self._files
        klen, vlen = np.maximum(index["klen"], 0).astype(np.int64), index["vlen"].astype(np.int64)
        kbuf, vbuf = kf.read(int(klen.sum())), vf.read(int(vlen.sum()))
        index["kstart"] = np.cumsum(klen) - klen
        index["vstart"] = np.cumsum(vlen) - vlen
        index["vblock"] = 0
        return index, np.frombuffer(kbuf, dtype=np.uint8), [vbuf]

    def close(self) -> None:
        for f in self._files or ():
            f.close()
        self._files = None


def event_order(
    files: Iterable[tuple[str, Path]], folder: Path, run_lines: int | None = None,
    merge_records: int = MERGE_RECORDS, memory_bytes: int = MEMORY_BYTES,
) -> Iterator[Chunk]:
    """The lines of ``files`` ((topic, path) pairs) in event-time order, ties in the
    order of ``files`` and of their lines: an external sort whose full runs of
    ``run_lines`` are spilled into ``folder`` (the caller removes it) and whose last run
    stays in memory. By default (``run_lines=None``) files of at most ``memory_bytes``
    are one run, sorted in memory, and larger ones go in runs of ``RUN_LINES``."""
    files = list(files)
    if run_lines is None:
        fits = sum(path.stat().st_size for _, path in files) <= memory_bytes
        run_lines = sys.maxsize if fits else RUN_LINES
    runs: list[_Run] = []
    pending = _Pending()
    try:
        for topic, path in files:
            for block in _read(topic, path):
                pending.add(block)
                if len(pending) >= run_lines:  # a full run goes to disk at once
                    runs.append(_Run(pending, spill=folder / f"run{len(runs)}"))
                    pending = _Pending()
        if len(pending):  # the last run stays in memory
            runs.append(_Run(pending))
        del pending
        window = CHUNK_RECORDS if len(runs) <= 1 else max(1000, merge_records // len(runs))
        yield from _merge(runs, window)
    finally:
        for run in runs:
            run.close()


def _merge(runs: list[_Run], window: int) -> Iterator[Chunk]:
    """k-way merge of sorted runs, vectorized a window of each run at a time (a heap
    would compare record by record): every record below the smallest last time of the
    windows of runs with more to come is final, and is emitted in (time, run, position)
    order."""
    size = {id(r): window for r in runs}
    while True:
        live = [r for r in runs if r.pos < r.n]
        if not live:
            return
        ends = {id(r): min(r.n, r.pos + size[id(r)]) for r in live}
        lasts = {id(r): int(r.window(ends[id(r)])["micros"][-1]) for r in live}
        bounded = [lasts[id(r)] for r in live if ends[id(r)] < r.n]
        cut = min(bounded) if bounded else None
        taken = []
        for r in live:
            end = ends[id(r)]
            if cut is not None:
                end = r.pos + int(np.searchsorted(r.window(end)["micros"], cut, side="left"))
            if end > r.pos:
                taken.append(r.take(end))
                shared = r._files is None
        if not taken:  # every window holds only the cut time: widen those at the cut
            for r in live:
                if ends[id(r)] < r.n and lasts[id(r)] == cut:
                    size[id(r)] *= 2
            continue
        size = dict.fromkeys(size, window)
        if len(taken) == 1:
            yield Chunk(*taken[0], shared=shared)
            continue
        # the windows' keys joined into one buffer, their blocks of lines listed in one
        keys, blocks, kat = [], [], 0
        for index, kbuf, vblocks in taken:
            klen = np.maximum(index["klen"], 0).astype(np.int64)
            keys.append(_gather_bytes(kbuf, index["kstart"], index["klen"]))
            index["kstart"] = np.cumsum(klen) - klen + kat
            index["vblock"] += len(blocks)
            kat += int(klen.sum())
            blocks += vblocks
        index = np.concatenate([t[0] for t in taken])
        index = index[np.argsort(index["micros"], kind="stable")]  # ties: earlier run first
        yield Chunk(index, np.concatenate(keys), blocks)


def replay_order(events_dir: Path, folder: Path, run_lines: int | None = None) -> list[Iterator[Chunk]]:
    """The archive in replay order: fx.rates (event-time order), then the other topics
    merged in event-time order (see the module docstring)."""
    files = topic_files(events_dir)
    rates = [(t, p) for t, p in files.items() if t == RATES]
    others = [(t, files[t]) for t in TOPICS if t != RATES and t in files]
    return [event_order(rates, folder, run_lines), event_order(others, folder, run_lines)]


def archive_order(events_dir: Path) -> list[tuple[str, Path]]:
    """Topic files: rates first, then the contract's order (the order ties are broken)."""
    files = topic_files(events_dir)
    return sorted(files.items(), key=lambda kv: (kv[0] != RATES, TOPICS.index(kv[0])))


# ---------------------------------------------------------------------- sending

def producer(bootstrap: str):
    """A kafka-python producer (the simulated feed, benchmarks)."""
    from kafka import KafkaProducer

    from streams.kafka.security import kafka_python_kwargs

    return KafkaProducer(
        **kafka_python_kwargs(),
        bootstrap_servers=bootstrap, linger_ms=20, batch_size=256 * 1024,
        max_request_size=8 * 1024 * 1024, acks=1, client_id="suitcase-replay",
    )


# ---------------------------------------------------------------------- record batches

#: Kafka's record batch v2 header (as aiokafka's builder writes it); the CRC-32C covers
#: everything from the attributes on.
_BATCH_HEADER: Final = struct.Struct(">qiibIhiqqqhii")
_CRC_AT: Final = 17
_ATTRIBUTES_AT: Final = 21


try:
    from crc32c import crc32c as _crc32c  # SSE 4.2 / ARMv8 instructions
except ImportError:  # pragma: no cover - a dependency; aiokafka's own, 30x slower
    from aiokafka.record.util import calc_crc32c as _crc32c


def _zigzag(v: np.ndarray) -> np.ndarray:
    v = v.astype(np.int64)
    return ((v << 1) ^ (v >> 63)).view(np.uint64)


_VARINT_STEPS: Final = np.array([1 << (7 * b) for b in range(1, 10)], dtype=np.uint64)


def _varint_size(z: np.ndarray) -> np.ndarray:
    """Bytes of the unsigned varint of each value: 1 + the steps of 7 bits it reaches."""
    return np.searchsorted(_VARINT_STEPS, z, side="right").astype(np.int64) + 1


def _put_varints(out: np.ndarray, at: np.ndarray, z: np.ndarray, size: np.ndarray) -> None:
    for b in range(int(size.max(initial=0))):
        m = size > b
        byte = ((z[m] >> np.uint64(7 * b)) & np.uint64(0x7F)).astype(np.uint8)
        byte[size[m] - 1 > b] |= 0x80
        out[at[m] + b] = byte


def record_batch(
    stamps: np.ndarray, keys: list, values: list, limit: int,
    klen: np.ndarray | None = None, vlen: np.ndarray | None = None,
) -> tuple[bytearray, int]:
    """The first records of ``values`` (with their ``keys`` and millisecond ``stamps``)
    that fit ``limit`` bytes (at least one) as one Kafka record batch (v2, uncompressed,
    no headers), byte for byte what aiokafka's builder makes of them one by one; and how
    many records it holds. Built from arrays: the varints of every record at once, the
    lines joined by one call, instead of a builder call per record."""
    n = len(values)
    klen = _key_lengths(keys) if klen is None else klen[:n]
    vlen = np.fromiter(map(len, values), dtype=np.int64, count=n) if vlen is None else vlen[:n]
    used = _batch_fit(stamps, klen, vlen, limit)
    kpos = np.maximum(klen[:used], 0).astype(np.int64)
    key_bytes = np.frombuffer(b"".join(filter(None, keys[:used])), dtype=np.uint8)
    return _batch_bytes(stamps[:used], klen[:used], vlen[:used], [(key_bytes, np.cumsum(kpos) - kpos)], values[:used]), used


def _batch_fit(stamps: np.ndarray, klen: np.ndarray, vlen: np.ndarray, limit: int) -> int:
    """How many of the records (at least one) fit one batch below ``limit`` bytes, as
    aiokafka's builder counts."""
    n = len(vlen)
    stamps = np.asarray(stamps, dtype=np.int64)
    klen, vlen = np.asarray(klen, dtype=np.int64), np.asarray(vlen, dtype=np.int64)
    kpos = np.maximum(klen, 0)
    zt, zo, zk, zv = _zigzag(stamps - stamps[0]), _zigzag(np.arange(n)), _zigzag(klen), _zigzag(vlen)
    body = 1 + _varint_size(zt) + _varint_size(zo) + _varint_size(zk) + kpos + _varint_size(zv) + vlen + 1
    sb = _varint_size(_zigzag(body))
    return max(1, int(np.searchsorted(_BATCH_HEADER.size + np.cumsum(sb + body), limit, side="left")))


def _byte_index(starts: np.ndarray, lens: np.ndarray) -> np.ndarray:
    """The positions of every byte of the spans (start, length >= 0), in order."""
    if len(lens) and lens[0] == lens.min() == lens.max():  # keys of one length: no repeat
        return (starts[:, None] + np.arange(int(lens[0]))).ravel()
    return np.repeat(starts - (np.cumsum(lens) - lens), lens) + np.arange(int(lens.sum()))


def _batch_bytes(stamps: np.ndarray, klen: np.ndarray, vlen: np.ndarray, keys: list, values: list) -> bytearray:
    """One record batch of these records (``klen`` -1: no key). ``keys``: (buffer,
    starts) pieces, in order, that together give every record's key start in its
    buffer; ``values``: bytes-like objects (slices of the lines, copied once, here)."""
    n = len(values)
    stamps = np.asarray(stamps, dtype=np.int64)
    klen, vlen = np.asarray(klen, dtype=np.int64), np.asarray(vlen, dtype=np.int64)
    kpos = np.maximum(klen, 0)
    zt, zo, zk, zv = _zigzag(stamps - stamps[0]), _zigzag(np.arange(n)), _zigzag(klen), _zigzag(vlen)
    st, so, sk, sv = _varint_size(zt), _varint_size(zo), _varint_size(zk), _varint_size(zv)
    body = 1 + st + so + sk + kpos + sv + vlen + 1  # attributes ... headers count
    zb = _zigzag(body)
    sb = _varint_size(zb)
    # the bytes of record i before its value: the previous record's headers count (0),
    # length, attributes (0), timestamp delta, offset delta, key length, key, value length
    lead = np.ones(n, dtype=np.int64)
    lead[0] = 0
    size = lead + sb + 1 + st + so + sk + kpos + sv
    end = np.cumsum(size)
    start = end - size
    out = np.zeros(int(end[-1]), dtype=np.uint8)
    at = start + lead
    _put_varints(out, at, zb, sb)
    at = at + sb + 1
    _put_varints(out, at, zt, st)
    at = at + st
    _put_varints(out, at, zo, so)
    at = at + so
    _put_varints(out, at, zk, sk)
    at = at + sk
    lo = 0
    for kbuf, kstart in keys:
        hi = lo + len(kstart)
        if kpos[lo:hi].any():
            out[_byte_index(at[lo:hi], kpos[lo:hi])] = kbuf[_byte_index(kstart, kpos[lo:hi])]
        lo = hi
    _put_varints(out, at + kpos, zv, sv)
    before = out.tobytes()
    parts: list = [None] * (2 * n + 2)
    parts[0] = bytes(_BATCH_HEADER.size)
    parts[1:2 * n:2] = map(before.__getitem__, map(slice, start.tolist(), end.tolist()))
    parts[2:2 * n + 1:2] = values
    parts[-1] = b"\x00"  # the last record's headers count
    batch = bytearray().join(parts)
    _BATCH_HEADER.pack_into(
        batch, 0, 0, len(batch) - 12, -1, 2, 0, 0, n - 1, int(stamps[0]), int(stamps.max()), -1, -1, 0, n,
    )
    struct.pack_into(">I", batch, _CRC_AT, _crc32c(memoryview(batch)[_ATTRIBUTES_AT:]))
    return batch


class Written:
    """The last offset written per (topic, partition): what "caught up" must reach.

    (Tansu 0.6 answers ListOffsets with the base offset of the partition's last record
    batch, so end offsets are taken from what the producer was told instead.)
    """

    def __init__(self) -> None:
        self.last: dict[tuple[str, int], int] = {}
        self._lock = threading.Lock()

    def __call__(self, metadata) -> None:
        self.record(metadata.topic, metadata.partition, metadata.offset)

    def record(self, topic: str, partition: int, offset: int) -> None:
        key = (topic, partition)
        with self._lock:
            if offset > self.last.get(key, -1):
                self.last[key] = offset


def replay_counts(
    events_dir: Path,
    bootstrap: str,
    progress: Callable[[int], None] | None = None,
    stop: threading.Event | None = None,
    written: Written | None = None,
    record_time: str = "event",
    run_lines: int | None = None,
    tmp_dir: Path | None = None,
) -> Counter:
    """Send every line of an archive in replay order; returns the lines sent per topic.

    Sorting spills into a temporary directory (under ``tmp_dir``, default the system's)
    that is removed however this ends."""
    if record_time not in RECORD_TIMES:
        raise ValueError(f"record_time must be one of {RECORD_TIMES}, not {record_time!r}")
    sent: Counter = Counter({t: 0 for t in topic_files(events_dir)})
    with tempfile.TemporaryDirectory(prefix="suitcase-replay-", dir=tmp_dir) as folder:
        streams = replay_order(events_dir, Path(folder), run_lines)
        try:
            asyncio.run(_send(streams, bootstrap, sent, progress, stop, written, record_time))
        finally:
            for stream in streams:
                stream.close()
    if progress is not None:
        progress(sum(sent.values()))
    return sent


def replay(
    events_dir: Path,
    bootstrap: str,
    progress: Callable[[int], None] | None = None,
    stop: threading.Event | None = None,
    written: Written | None = None,
    record_time: str = "event",
) -> int:
    """Send every line of an archive in replay order; returns the number of records sent."""
    return sum(replay_counts(events_dir, bootstrap, progress, stop, written, record_time).values())


_FLUSH: Final = object()  # between two streams: everything before is acknowledged first
_DONE: Final = object()


class _Held:
    """Records of one (topic, partition) not yet in a batch, in order: pieces of chunks
    (key bytes, value bytes, then stamps, key and value lengths, key and value starts)."""

    __slots__ = ("pieces", "bytes")

    def __init__(self) -> None:
        self.pieces: list[tuple] = []
        self.bytes = 0  # about the bytes of their records


def _own_piece(piece: tuple) -> tuple:
    """A held piece with its keys and values copied into buffers of its own."""
    kbuf, vblocks, stamps, klen, vlen, kstart, vstart, vblock = piece
    kpos = np.maximum(klen, 0).astype(np.int64)
    values = vlen.astype(np.int64)
    return (_gather_bytes(kbuf, kstart, klen), [b"".join(_slices(vblocks, vblock, vstart, vlen))], stamps, klen, vlen,
            np.cumsum(kpos) - kpos, np.cumsum(values) - values, np.zeros(len(vlen), dtype=np.int32))


def _build(streams, partitions: list[int], make_batch, out: queue.Queue, stop, sent, progress, record_time) -> None:
    """Cut the streams into record batches per (topic, partition), in order, and put
    each chunk's batches on ``out`` as a list of (topic, partition, batch, records);
    runs in a thread.

    A batch is built from arrays (a builder call per record cost as much as sorting),
    its values copied once, from where the lines were read, and handed to aiokafka as a
    closed batch whose bytes are ready."""
    width = max(partitions)
    spread = np.array(partitions, dtype=np.int64)
    held = [_Held() for _ in range(len(TOPICS) * width)]
    ready: list = []

    def hand_over(slot: int, everything: bool) -> None:
        h = held[slot]
        pieces = h.pieces
        stamps, klens, vlens = (np.concatenate([p[i] for p in pieces]) if len(pieces) > 1 else pieces[0][i]
                                for i in (2, 3, 4))
        total, at, first = len(vlens), 0, 0  # records; in a batch; pieces[first] holds record at
        edge = 0  # records before pieces[first]
        while at < total and (everything or h.bytes >= BATCH_BYTES):
            count = _batch_fit(stamps[at:], klens[at:], vlens[at:], BATCH_BYTES)
            keys, values, lo, hi = [], [], at, at + count
            while lo < hi:
                kbuf, vblocks, _, _, vlen, kstart, vstart, vblock = pieces[first]
                a, b = lo - edge, min(hi - edge, len(vlen))
                keys.append((kbuf, kstart[a:b]))
                values += _slices(vblocks, vblock[a:b], vstart[a:b], vlen[a:b])
                lo = edge + b
                if b == len(vlen):
                    first, edge = first + 1, edge + len(vlen)
            data = _batch_bytes(stamps[at:hi], klens[at:hi], vlens[at:hi], keys, values)
            batch = make_batch()
            batch._buffer, batch._relative_offset = data, count  # built: aiokafka sends it as is
            batch.close()
            ready.append((TOPICS[slot // width], slot % width, batch, count))
            at = hi
            h.bytes -= len(data)
        if at < total:
            rest = [p[:2] + tuple(a[at - edge:] for a in p[2:]) for p in pieces[first:first + 1]]
            h.pieces, h.bytes = rest + pieces[first + 1:], max(0, h.bytes)
        else:
            h.pieces, h.bytes = [], 0

    total = 0
    for stream in streams:
        for chunk in stream:
            if stop is not None and stop.is_set():
                return
            n = len(chunk)
            topic = chunk.topics.astype(np.int64)
            hashed = np.where(chunk.hashes >= 0, chunk.hashes, np.random.randint(0, 1 << 30, n))
            slot_of = topic * width + hashed % spread[topic]
            if record_time == "event":
                stamps = np.clip(chunk.micros // 1000, 0, _MAX_TIMESTAMP_MS)
                stamps[chunk.micros == _UNKNOWN] = int(time.time() * 1000)
            else:
                stamps = np.full(n, int(time.time() * 1000), dtype=np.int64)
            order = np.argsort(slot_of, kind="stable")  # by partition, each in stream order
            stamps, ordered = stamps[order], slot_of[order]
            klens, vlens = chunk.klens[order], chunk.vlens[order]
            kstarts, vstarts, vblock = chunk.kstarts[order], chunk.vstarts[order], chunk.vblock[order]
            sizes = np.cumsum(vlens.astype(np.int64) + np.maximum(klens, 0) + 16)
            cuts = np.r_[0, np.flatnonzero(ordered[1:] != ordered[:-1]) + 1, n].tolist()
            for a, b in zip(cuts[:-1], cuts[1:]):
                slot = int(ordered[a])
                h = held[slot]
                h.pieces.append((chunk.kbuf, chunk.vblocks, stamps[a:b], klens[a:b], vlens[a:b],
                                 kstarts[a:b], vstarts[a:b], vblock[a:b]))
                h.bytes += int(sizes[b - 1] - (sizes[a - 1] if a else 0))
                if h.bytes >= BATCH_BYTES:
                    hand_over(slot, everything=False)
            if not chunk.shared:  # what stays held is copied out of the chunk's buffers
                for slot in set(ordered[cuts[:-1]].tolist()):
                    pieces = held[slot].pieces
                    if pieces and pieces[-1][1] is chunk.vblocks:
                        pieces[-1] = _own_piece(pieces[-1])
            if ready:
                out.put(ready)
                ready = []
            tally = np.bincount(topic, minlength=len(TOPICS))
            for i in np.flatnonzero(tally).tolist():
                sent[TOPICS[i]] += int(tally[i])
            total += n
            if progress is not None:
                progress(total)
        for slot, h in enumerate(held):
            if h.pieces:
                hand_over(slot, everything=True)
        if ready:
            out.put(ready)
            ready = []
        out.put(_FLUSH)


def _flat_encode(kind, value, parts: list) -> None:
    """aiokafka's encoding of ``value`` as ``kind``, appended to ``parts`` as pieces to
    join once: its Schema, Array and Bytes types join their parts at every level (a
    produce request's record batches were copied six times)."""
    from aiokafka.protocol.types import Array, Bytes, Int32, Schema

    if type(kind) is Schema:
        if len(value) != len(kind.fields):
            raise ValueError("Item field count does not match Schema")
        for field, item in zip(kind.fields, value):
            _flat_encode(field, item, parts)
    elif type(kind) is Array and value is not None:
        parts.append(Int32.encode(len(value)))
        for item in value:
            _flat_encode(kind.array_of, item, parts)
    elif kind is Bytes and value is not None:
        parts.append(Int32.encode(len(value)))
        parts.append(value)
    else:  # any other type (and None): as aiokafka encodes it
        parts.append(kind.encode(value))


def flat_request_bytes(request_struct) -> bytes:
    """``request_struct.encode()``, the same bytes, with one copy of the data."""
    parts: list = []
    _flat_encode(request_struct.SCHEMA, [request_struct.__dict__[n] for n in request_struct.SCHEMA.names], parts)
    return b"".join(parts)


def _encode_produce_requests_flat(producer) -> None:
    """Have this producer's produce requests encoded by :func:`flat_request_bytes` (the
    same bytes; the other requests, and every other client, as before). Left as is
    where this aiokafka does not build requests this way."""
    try:
        from aiokafka.protocol.produce import ProduceRequest

        client = producer.client
        send = client.send
        ProduceRequest.build  # noqa: B018 - the hook below needs it
    except (ImportError, AttributeError):  # pragma: no cover - another aiokafka
        return

    def flat_build(build, request_struct_class):
        struct = build(request_struct_class)
        struct.encode = functools.partial(flat_request_bytes, struct)
        return struct

    async def sending(node_id, request, **kwargs):
        if isinstance(request, ProduceRequest):
            request.build = functools.partial(flat_build, request.build)
        return await send(node_id, request, **kwargs)

    client.send = sending


async def _send(streams, bootstrap, sent, progress, stop, written, record_time) -> None:
    """Sort and build batches in a thread while aiokafka sends the ones built.

    aiokafka keeps one request in flight per broker and one batch per partition queued,
    so each partition's records reach the broker in the order given; between two streams
    (rates, then the rest) everything sent is acknowledged before the next is sent.
    (Measured: the sender waits on the builder, almost never on the broker's acks, so
    more requests in flight would not help; acks=1 as always.)"""
    from aiokafka import AIOKafkaProducer

    from streams.kafka.security import aiokafka_kwargs

    client = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks=1, linger_ms=0, max_batch_size=BATCH_BYTES,
        max_request_size=16 * BATCH_BYTES, request_timeout_ms=120_000, client_id="suitcase-replay",
        **aiokafka_kwargs(),
    )
    try:
        await client.start()
    except BaseException:
        await client.stop()
        raise
    _encode_produce_requests_flat(client)
    loop = asyncio.get_running_loop()
    built: queue.Queue = queue.Queue(maxsize=64)
    halt = threading.Event()
    pending: list[asyncio.Future] = []

    def build() -> None:
        try:
            _build(streams, partitions, client.create_batch, built, _Either(stop, halt), sent, progress, record_time)
        except BaseException as err:  # noqa: BLE001 - handed to the sending side
            built.put(err)
        else:
            built.put(_DONE)

    builder = None
    try:
        partitions = [len(await client.partitions_for(t)) for t in TOPICS]
        builder = loop.run_in_executor(None, build)
        while True:
            item = built.get_nowait() if not built.empty() else await loop.run_in_executor(None, built.get)
            if item is _DONE:
                break
            if isinstance(item, BaseException):
                raise item
            if item is _FLUSH:
                await client.flush()
                await asyncio.gather(*pending)
                pending.clear()
                continue
            for topic, partition, batch, count in item:
                future = await client.send_batch(batch, topic, partition=partition)
                if written is not None:
                    def note(f, topic=topic, partition=partition, count=count):
                        if not f.cancelled() and f.exception() is None:
                            written.record(topic, partition, f.result().offset + count - 1)
                    future.add_done_callback(note)
                pending.append(future)
            if len(pending) > 256:
                for f in pending:
                    if f.done() and f.exception() is not None:
                        raise f.exception()
                pending[:] = [f for f in pending if not f.done()]
    finally:
        halt.set()
        if builder is not None:
            while not builder.done():  # let a blocked builder finish
                with contextlib.suppress(queue.Empty):
                    built.get_nowait()
                await asyncio.sleep(0.01)
        await client.stop()


class _Either:
    """Set when either event is set (the caller's stop, or the sender's halt)."""

    def __init__(self, *events) -> None:
        self.events = [e for e in events if e is not None]

    def is_set(self) -> bool:
        return any(e.is_set() for e in self.events)


# ---------------------------------------------------------------------- simulated feed

class PausedFeeds:
    """Topics whose simulated feed is held back, read from a file (one topic a line).

    A drill, not a fault model: an operator (or a test) writes a topic into the file to
    make that feed go quiet while the others flow, and removes it to let the feed resume;
    what was held back is then sent, late, so nothing is lost.
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path

    def __call__(self) -> frozenset[str]:
        if self.path is None:
            return frozenset()
        try:
            text = self.path.read_text("utf-8")
        except OSError:
            return frozenset()
        return frozenset(line.strip() for line in text.splitlines() if line.strip())


def simulated_feed(
    bootstrap: str,
    days: Iterable,
    seconds_per_day: float,
    stop: threading.Event,
    on_day: Callable[[object, int], None] | None = None,
    paused: Callable[[], frozenset[str]] = PausedFeeds(None),
) -> int:
    """Send the simulator's days, each spread over ``seconds_per_day`` of wall clock."""
    prod = producer(bootstrap)
    sent = 0
    held: list[tuple[str, bytes]] = []  # events of paused feeds, in order
    try:
        for day in days:
            started = time.monotonic()
            events = day.events
            for raw in events.get(RATES, ()):
                prod.send(RATES, key=key_of(RATES, raw), value=raw)
                sent += 1
            prod.flush()
            rest = [(t, raw) for t in TOPICS if t != RATES for raw in events.get(t, ())]
            rest.sort(key=lambda tr: _event_time(tr[1]))
            chunks = max(1, int(seconds_per_day * 10))
            size = max(1, -(-len(rest) // chunks))
            for i in range(0, len(rest), size):
                if stop.is_set():
                    return sent
                quiet = paused()
                due, held = held + rest[i:i + size], []
                for topic, raw in due:
                    if topic in quiet:
                        held.append((topic, raw))
                        continue
                    prod.send(topic, key=key_of(topic, raw), value=raw)
                    sent += 1
                prod.flush()
                target = started + seconds_per_day * min(1.0, (i + size) / max(1, len(rest)))
                _sleep_until(target, stop)
            if on_day is not None:
                on_day(day, sent)
            _sleep_until(started + seconds_per_day, stop)
            if stop.is_set():
                break
    finally:
        prod.close()
    return sent


class _EventTime(msgspec.Struct):
    event_time: str = ""


_TIME = msgspec.json.Decoder(_EventTime)


def _event_time(raw: bytes) -> str:
    try:
        return _TIME.decode(raw).event_time
    except (msgspec.DecodeError, msgspec.ValidationError):
        return ""


def _sleep_until(target: float, stop: threading.Event) -> None:
    delay = target - time.monotonic()
    if delay > 0:
        stop.wait(delay)


def iter_records(events_dir: Path) -> Iterator[tuple[str, bytes | None, bytes]]:
    for topic, path in archive_order(events_dir):
        for raw in lines(path):
            yield topic, key_of(topic, raw), raw
