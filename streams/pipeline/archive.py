"""Archives: one ``<topic>.ndjson`` file per topic, one event per line, in any order.

Reading an archive runs every line through the same decoder and the same event-id
deduplication as the stream, so a line is exactly one of accepted, duplicate (of an
accepted ``event_id`` earlier in the file) or rejected (with its reason).

A line longer than the bound ``max_event_bytes`` (1 MiB) is read only that far and
refused as ``line_too_long``: reading takes time linear in the file and bounded memory
whatever it holds. A ``<topic>.ndjson`` that is no regular file (a directory, a FIFO) or
that cannot be read is an :class:`ArchiveError`.

Reading is fast without doing different work:

- Lines of the small topics (and of every topic in :func:`validate`) are decoded a block
  (32 KB) at a time with one msgspec ``decode_lines`` call
  and the same typed decoder as :func:`streams.pipeline.contract.decode`, then
  :func:`streams.pipeline.contract.check` on every event. The block path is taken only when it
  must give what line-by-line decoding gives: every line starts with ``{`` and ends with
  ``}`` (so no JSON value can run over a line end, and no line is blank), the call
  succeeds and returns one event per line; lines too long, or with more opening brackets
  than ``MAX_DEPTH``, always go line by line. Otherwise the block is cut around the line
  msgspec's error names (or in halves), that line goes through
  :func:`~streams.pipeline.contract.decode` and the rest through the block path again; so
  rejection reasons are always those of ``decode`` on the line.
- The two big topics (departures and card payments) are read in columns, in chunks of
  whole lines (:func:`read_unit`): lines in the layout producers write are checked by one
  regular expression and their fields taken from their byte positions
  (:mod:`streams.pipeline.canonical`, which accepts nothing ``decode`` refuses and gives
  the values it gives); every other line goes through
  :func:`~streams.pipeline.contract.decode`, so its verdict and reason are ``decode``'s.
  Byte ranges of the files are read by threads (polars and numpy release the GIL) while
  the calling thread reads the small topics; the ranges are kept in file order, so
  "first occurrence of an ``event_id`` wins" is decided over the whole file exactly as
  line by line.
- The Tehran ISO week is computed once per half hour of epoch time (per local date and
  offset for events that went through ``decode``), not per event; a day or half hour that
  holds a Tehran midnight or offset change, and times within a millisecond of a half
  hour, get :func:`streams.pipeline.crossings.week_of` itself.
- :func:`observe` reads declarations and inspections first, so it knows the few crossings
  that need the :class:`~streams.pipeline.crossings.Crossing` join; every other departure only
  counts towards N of its (stratum, region), and these counts (and the payments summed
  per week, card type and merchant kind) can go to the states in bulk. The join releases
  the same observations whatever the order its events arrive in.
"""

from __future__ import annotations

import gc
import os
import re
import typing
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from datetime import time as dtime
from pathlib import Path

import numpy as np

from streams.pipeline.contract import (
    _DECODERS,
    DEPARTURES,
    INSPECTIONS,
    PAYMENTS,
    TOPICS,
    AnyEvent,
    BorderPost,
    Rejection,
    check_many,
    decode,
)
from estimators.reference import DESTINATION_REGIONS, HANDICRAFT_MCCS, destination_region


class ArchiveError(ValueError):
    """The archive cannot be read at all (no directory, no topic files)."""


@dataclass
class TopicTally:
    """What became of one topic's lines."""

    accepted: int = 0
    duplicates: int = 0
    rejected: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict:
        return {
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "rejected": dict(sorted(self.rejected.items())),
        }


def topic_files(events_dir: Path) -> dict[str, Path]:
    """The archive's topic files; raises ArchiveError if there is nothing to read, or if
    a ``<topic>.ndjson`` is there but is no regular file (a directory, a FIFO: reading
    one could block for ever)."""
    import stat

    try:
        if not events_dir.is_dir():
            raise ArchiveError(f"{events_dir} is not a directory")
        found = {}
        for t in TOPICS:
            path = events_dir / f"{t}.ndjson"
            try:
                mode = path.stat().st_mode
            except FileNotFoundError:
                continue
            if not stat.S_ISREG(mode):
                raise ArchiveError(f"{path} is not a regular file")
            found[t] = path
    except OSError as err:
        raise ArchiveError(f"cannot read {events_dir}: {err.strerror or err}") from None
    if not found:
        raise ArchiveError(f"{events_dir} holds no <topic>.ndjson file of the contract's topics")
    return found


class _reading:
    """Turn an OSError while reading ``path`` into an ArchiveError that names it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self):
        return self

    def __exit__(self, kind, err, tb):
        if isinstance(err, OSError):
            raise ArchiveError(f"cannot read {self.path}: {err.strerror or err}") from None
        return False


def lines(path: Path) -> Iterator[bytes]:
    """The lines of an NDJSON file without their line ends; a final newline ends a line.

    A line longer than ``Bounds.max_event_bytes`` is given as its first
    ``max_event_bytes + 1`` bytes (``decode`` refuses it as ``line_too_long``) and the rest
    of it is skipped unread into memory: time linear in the file, memory bounded.
    """
    keep = _keep()
    with _reading(path), path.open("rb") as f:
        while True:
            line = f.readline(keep)
            if not line:
                return
            if line.endswith(b"\n"):
                yield line[:-1]
                continue
            if len(line) == keep:  # too long: skip to its end
                while True:
                    rest = f.readline(1 << 16)
                    if not rest or rest.endswith(b"\n"):
                        break
            yield line


def _keep() -> int:
    """Bytes kept of a line: one more than the longest that ``decode`` accepts."""
    from streams.pipeline import contract

    return contract.BOUNDS.max_event_bytes + 1


#: Bytes decoded per msgspec call (small, so a refused line costs a re-decode of little),
#: and bytes per task of a reader thread (or worker process).
BLOCK_BYTES = 1 << 15
UNIT_BYTES = 1 << 25
#: Below this many bytes of departures and payments, they are read in the calling thread.
THREADED_BYTES = 1 << 24
_LINE_BY_LINE = 8  # blocks of at most this many lines are decoded line by line


def blocks(path: Path, start: int = 0, end: int | None = None, size: int | None = None) -> Iterator[bytes]:
    """The lines of ``path[start:end]`` in blocks of whole lines joined by ``b"\\n"``.

    ``block.split(b"\\n")`` over the blocks gives exactly what :func:`lines` yields, when
    ``start`` and ``end`` are at line starts (or the end of the file): a line over the
    limit is cut to its first ``max_event_bytes + 1`` bytes, so reading takes linear time
    and bounded memory whatever the file holds (a 2 GB file without a newline too).
    """
    keep = _keep()
    size = min(size or BLOCK_BYTES, keep)  # a line inside one read is never too long
    with _reading(path), path.open("rb") as f:
        f.seek(start)
        left = None if end is None else end - start
        head: list[bytes] = []  # the start of a line that runs past the last read
        held = 0  # bytes in head, at most keep
        while True:
            n = size if left is None else min(size, left)
            data = f.read(n) if n > 0 else b""
            if not data:
                if head:
                    yield b"".join(head)  # a last line without its newline
                return
            if left is not None:
                left -= len(data)
            cut = data.rfind(b"\n")
            if cut < 0:
                if held < keep:
                    head.append(data[: keep - held])
                    held += len(head[-1])
                continue
            if head:
                first = data.find(b"\n")
                if held < keep:
                    head.append(data[: min(first, keep - held)])
                head.append(data[first:cut])
                yield b"".join(head)
            else:
                yield data[:cut]
            tail = data[cut + 1 :]
            head, held = ([tail], len(tail)) if tail else ([], 0)


_AT_VALUE = re.compile(r"`\$\[(\d+)\]")
_AT_BYTE = re.compile(r"\(byte (\d+)\)")


def _odd_line(block: bytes) -> int | None:
    """A byte of the first line that does not start with "{" or end with "}" (a block
    that starts with "{" and ends with "}"), or None."""
    import numpy as np

    data = np.frombuffer(block, dtype=np.uint8)
    ends = np.flatnonzero(data == 10)  # newlines; never the first or last byte here
    odd = np.flatnonzero((data[ends - 1] != 125) | (data[ends + 1] != 123))
    if not len(odd):
        return None
    at = int(ends[odd[0]])
    return at if data[at - 1] != 125 else at + 1  # the line ending here, else the next one


def _long_or_deep_line(block: bytes, n: int) -> int | None:
    """The start of a line that ``decode`` refuses before parsing (``line_too_long``), or
    that holds more than ``MAX_DEPTH`` brackets (it may be ``too_deep``), or None.
    ``block``: ``n`` lines, each starting with "{"."""
    import numpy as np

    from streams.pipeline.contract import BOUNDS, MAX_DEPTH

    # Each line holds one "{" at least, so no line can hold more than MAX_DEPTH brackets
    # unless the block holds more than n - 1 + MAX_DEPTH (counted in C, no array).
    shallow = block.count(b"{") + block.count(b"[") <= n - 1 + MAX_DEPTH
    if shallow and len(block) <= BOUNDS.max_event_bytes:
        return None
    data = np.frombuffer(block, dtype=np.uint8)
    starts = np.r_[0, np.flatnonzero(data == 10) + 1]
    ends = np.r_[starts[1:] - 1, len(data)]
    odd = ends - starts > BOUNDS.max_event_bytes
    if not shallow:
        brackets = np.r_[0, np.cumsum((data | 32) == 123)]  # "{" or "[", and no other byte
        odd |= brackets[ends] - brackets[starts] > MAX_DEPTH
    hit = np.flatnonzero(odd)
    return int(starts[hit[0]]) if len(hit) else None


def _fast(topic: str, block: bytes, n: int) -> tuple[list | None, int | None]:
    """(the n lines' results from one decode_lines call, or None; and if None, a byte of a
    line that is probably refused, or None)."""
    if block[:1] != b"{":
        return None, 0
    if block[-1:] != b"}":
        return None, len(block) - 1
    if block.count(b"}\n{") != n - 1:
        return None, _odd_line(block)
    if (odd := _long_or_deep_line(block, n)) is not None:
        return None, odd
    # Every line starts with "{" and ends with "}": a value cannot run over a line end
    # (after a nested "}" only "," "}" "]" may follow, and strings hold no raw newline),
    # so each line starts one value; n values means one value per line.
    try:
        events = _DECODERS[topic].decode_lines(block)
    except Exception as err:  # noqa: BLE001 - some line is refused: guess which
        text = str(err)
        if (found := _AT_BYTE.search(text)) is not None:
            return None, min(int(found.group(1)), len(block) - 1)
        if (found := _AT_VALUE.search(text)) is not None:
            rest = block.split(b"\n", int(found.group(1)))  # value i is line i here
            return None, len(block) - len(rest[-1]) if len(rest) > int(found.group(1)) else None
        return None, None
    if len(events) != n:
        return None, None
    return check_many(events), None


def decode_block(topic: str, block: bytes, _depth: int = 0) -> list[AnyEvent | Rejection]:
    """``[decode(topic, line) for line in block.split(b"\\n")]``, in fewer msgspec calls.

    A block that does not decode in one call is cut around a line that is probably
    refused (from msgspec's error, else in halves); the cut line goes through ``decode``
    and both sides through this function again. Any cut gives the same result; a good
    guess only makes it cheaper.
    """
    out: list = []
    while True:
        n = block.count(b"\n") + 1
        events, bad = _fast(topic, block, n)
        if events is not None:
            out += events
            return out
        if n <= _LINE_BY_LINE:
            out += [decode(topic, raw) for raw in block.split(b"\n")]
            return out
        if bad is None or _depth > 8:  # halve
            mid = block.find(b"\n", len(block) // 2)
            if mid < 0:
                mid = block.rfind(b"\n", 0, len(block) // 2)
            out += decode_block(topic, block[:mid], _depth + 1)
            block = block[mid + 1 :]
            continue
        start = block.rfind(b"\n", 0, bad) + 1
        end = block.find(b"\n", bad)
        end = len(block) if end < 0 else end
        if start > 0:
            out += decode_block(topic, block[: start - 1], _depth + 1)
        out.append(decode(topic, block[start:end]))
        if end >= len(block):
            return out
        block = block[end + 1 :]


def read_topic(
    path: Path, topic: str, tally: TopicTally | None = None
) -> Iterator[AnyEvent]:
    """Accepted events of one topic file, first occurrence of each ``event_id`` only."""
    tally = tally if tally is not None else TopicTally()
    seen: set[str] = set()
    for block in blocks(path):
        for event in decode_block(topic, block):
            if type(event) is Rejection:
                tally.rejected[event.reason] += 1
            elif event.event_id in seen:
                tally.duplicates += 1
            else:
                seen.add(event.event_id)
                tally.accepted += 1
                yield event


def validate(events_dir: Path) -> dict[str, TopicTally]:
    """Count accepted, duplicate and rejected lines per topic file of an archive."""
    tallies: dict[str, TopicTally] = {}
    for topic, path in topic_files(events_dir).items():
        tally = tallies[topic] = TopicTally()
        for _ in read_topic(path, topic, tally):
            pass
    return tallies


# --- the two big topics, in columns -------------------------------------------------

_HALF_HOUR = 1800
_EDGE = 1e-3  # seconds; event times this close to a half hour get week_of itself
_UTC_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_half_hour_days: dict[int, tuple[str, int] | None] = {}


def _half_hour_day(k: int) -> tuple[str, int] | None:
    """The Tehran ISO week and day of the week (0 = Monday) of every instant of the
    ``k``-th half hour since the epoch, or None when the half hour holds a local midnight
    or an offset change (or is out of range)."""
    try:
        return _half_hour_days[k]
    except KeyError:
        pass
    from streams.pipeline.crossings import TEHRAN, week_of

    try:
        first = _UTC_EPOCH + timedelta(seconds=k * _HALF_HOUR)
        last = first + timedelta(seconds=_HALF_HOUR, microseconds=-1)
        a, b = first.astimezone(TEHRAN), last.astimezone(TEHRAN)
        day = (week_of(first), a.weekday()) if a.utcoffset() == b.utcoffset() and a.date() == b.date() else None
    except (OverflowError, ValueError):
        day = None
    _half_hour_days[k] = day
    return day


def _week_codes(events: list, stamps: list[float], labels: dict[str, int]):
    """The ``week_of`` label of each event's time (``stamps``: its epoch seconds), as an
    index into ``labels`` (label -> index, extended as labels appear)."""
    import numpy as np

    from streams.pipeline.crossings import week_of

    ts = np.asarray(stamps, dtype=float)
    k = np.floor(ts / _HALF_HOUR)
    into = ts - k * _HALF_HOUR
    sure = (into > _EDGE) & (into < _HALF_HOUR - _EDGE) & (np.abs(ts) < 1e11)
    halves, where = np.unique(np.where(sure, k, 0).astype(np.int64), return_inverse=True)
    of_half = []
    for h in halves:
        day = _half_hour_day(int(h))
        of_half.append(-1 if day is None else labels.setdefault(day[0], len(labels)))
    codes = np.asarray(of_half, dtype=np.int64)[where.ravel()]
    for i in np.flatnonzero(~sure | (codes < 0)):
        codes[i] = labels.setdefault(week_of(events[i].event_time), len(labels))
    return codes


_day_weeks: dict[tuple, str | None] = {}


def _day_week(day: int, zone) -> str | None:
    """The Tehran ISO week of every instant whose local date in the fixed-offset ``zone``
    is the ``day``-th (proleptic ordinal), or None when those 24 hours hold a Tehran
    midnight or offset change (Tehran changes its offset at most once in any 24 hours)."""
    try:
        return _day_weeks[day, zone]
    except KeyError:
        pass
    from streams.pipeline.crossings import TEHRAN, week_of

    week = None
    if type(zone) is timezone:
        try:
            first = datetime.combine(date.fromordinal(day), dtime(0), tzinfo=zone)
            last = first + timedelta(days=1, microseconds=-1)
            a, b = first.astimezone(TEHRAN), last.astimezone(TEHRAN)
            if a.utcoffset() == b.utcoffset() and a.date() == b.date():
                week = week_of(first)
        except (OverflowError, ValueError):
            week = None
    _day_weeks[day, zone] = week
    return week


def _week_codes_by_day(events: list, labels: dict[str, int]):
    """As :func:`_week_codes`, from each time's local date and offset (cheaper than a
    timestamp per event); times whose day is not all one Tehran week go the long way."""
    import numpy as np

    times = [e.event_time for e in events]
    days = np.fromiter(map(datetime.toordinal, times), dtype=np.int64, count=len(times))
    zone_index: dict = {}
    zones = np.fromiter(
        (zone_index.setdefault(t.tzinfo, len(zone_index)) for t in times), dtype=np.int64, count=len(times)
    )
    zone_of = list(zone_index)
    pairs, where = np.unique(days * len(zone_of) + zones, return_inverse=True)
    of_pair = []
    for pair in pairs.tolist():
        week = _day_week(pair // len(zone_of), zone_of[pair % len(zone_of)])
        of_pair.append(-1 if week is None else labels.setdefault(week, len(labels)))
    codes = np.asarray(of_pair, dtype=np.int64)[where.ravel()]
    odd = np.flatnonzero(codes < 0)
    if len(odd):
        rest = [events[i] for i in odd]
        codes[odd] = _week_codes(rest, [e.event_time.timestamp() for e in rest], labels)
    return codes


#: Departure cells: (week, day of the week, border post, resident, destination region) in
#: one integer.
_POSTS = tuple(typing.get_args(BorderPost))
_POST_INDEX = {p: i for i, p in enumerate(_POSTS)}
_REGIONS = tuple(DESTINATION_REGIONS)
_REGION_INDEX = {r: i for i, r in enumerate(_REGIONS)}
_DAY_CELLS = len(_POSTS) * 2 * len(_REGIONS)  # cells per day
_DEPARTURE_CELLS = 7 * _DAY_CELLS  # cells per week
_PAYMENT_CELLS = 4  # (tourist, handicraft) per week
_CARD_TYPES = ("domestic", "tourist")


#: A departure cell plus ``(k + 1) * _CLASS_STRIDE``: the same cell in frequency class k.
_CLASS_STRIDE = 1 << 40


def _departure_cell(cell: int, weeks: list[str]) -> tuple:
    """(Stratum, region, day) of a departure cell, as ``departure_stratum`` gives them
    (with a frequency class, the group ``"<group>|<class>"``)."""
    from estimators.observations import Stratum

    cls, cell = divmod(cell, _CLASS_STRIDE)
    week, rest = divmod(cell, _DEPARTURE_CELLS)
    day, rest = divmod(rest, _DAY_CELLS)
    post, rest = divmod(rest, 2 * len(_REGIONS))
    resident, region = divmod(rest, len(_REGIONS))
    group = "resident" if resident else "visitor"
    if cls:
        from streams.pipeline.travellers import CLASSES

        group = f"{group}|{CLASSES[cls - 1]}"
    return Stratum(weeks[week], _POSTS[post], group), _REGIONS[region], day


def _payment_cell(cell: int, weeks: list[str]) -> tuple[str, str, bool]:
    """(week, card_type, handicraft) of a payment cell, as ``payment_seen`` gives them."""
    week, rest = divmod(cell, _PAYMENT_CELLS)
    tourist, handicraft = divmod(rest, 2)
    return weeks[week], _CARD_TYPES[tourist], bool(handicraft)


def _departure_cells(weeks, days, post, resident, region):
    """The departure cell of each row's (week code, day, post, resident, region index)."""
    return (((weeks * 7 + days) * len(_POSTS) + post) * 2 + resident) * len(_REGIONS) + region


def _departure_columns(events: list, weeks) -> dict:
    import numpy as np

    from streams.pipeline.crossings import tehran_date

    regions: dict[str, int] = {}

    def region(country: str) -> int:
        found = regions.get(country)
        if found is None:
            found = regions[country] = _REGION_INDEX[destination_region(country)]
        return found

    post = np.array([_POST_INDEX[e.border_post] for e in events], dtype=np.int64)
    resident = np.array([e.resident for e in events], dtype=np.int64)
    dest = np.array([region(e.destination_country) for e in events], dtype=np.int64)
    days = np.array([tehran_date(e.event_time).weekday() for e in events], dtype=np.int64)
    return {
        "event_id": [e.event_id for e in events],
        "crossing_id": [e.crossing_id for e in events],
        "cell": _departure_cells(weeks, days, post, resident, dest),
    }


def _payment_columns(events: list, weeks) -> dict:
    import numpy as np

    tourist = np.array([e.card_type == "tourist" for e in events], dtype=np.int64)
    handicraft = np.array([e.mcc in HANDICRAFT_MCCS for e in events], dtype=np.int64)
    return {
        "event_id": [e.event_id for e in events],
        "cell": (weeks * 2 + tourist) * 2 + handicraft,
        "amount": np.array([e.amount for e in events], dtype=float),
        "currency": [e.currency for e in events],
        "purchase": np.array([e.kind == "purchase" for e in events], dtype=bool),
    }


_COLUMNS = {DEPARTURES: _departure_columns, PAYMENTS: _payment_columns}


_SCHEMAS = {
    DEPARTURES: {"event_id": "String", "crossing_id": "String", "cell": "Int64"},
    PAYMENTS: {"event_id": "String", "cell": "Int64", "amount": "Float64", "currency": "String",
               "purchase": "Boolean", "at": "Float64"},
}
#: Bytes of whole lines that one pass of the canonical reader takes (bounded memory).
CHUNK_BYTES = 1 << 22


def read_unit(topic: str, path: str, start: int, end: int | None, travellers: bool = False):
    """Valid events of ``path[start:end]`` (whole lines) in columns, and rejections by reason.

    Returns ``(frame, weeks, rejected)``: one row per line that decodes and passes the
    checks, in file order, duplicates included (the caller removes them over the whole
    file); ``weeks`` lists the week labels that the rows' cells index. Departures:
    event_id, crossing_id, cell (week, post, resident, region; see ``_departure_cell``).
    Payments: event_id, cell (week, card type, handicraft MCC), amount, currency,
    purchase (kind), at (event time in epoch seconds). With ``travellers`` also
    ``traveller_id`` (both topics) and ``at`` (departures), for
    :mod:`streams.pipeline.travellers`.

    Lines in the canonical layout are taken in columns (:mod:`streams.pipeline.canonical`);
    every other line goes through :func:`~streams.pipeline.contract.decode`, which gives
    its verdict and reason.
    """
    import polars as pl

    from streams.pipeline import canonical

    schema = {name: getattr(pl, kind) for name, kind in _SCHEMAS[topic].items()}
    if travellers:
        schema.update(traveller_id=pl.String, at=pl.Float64)
    rejected: Counter[str] = Counter()
    labels: dict[str, int] = {}
    parts = []
    for chunk in _chunks(Path(path), start, end):
        starts, ends = canonical.lines_of(chunk)
        fast, ok = canonical.read(topic, chunk, starts, ends, travellers)
        part = _canonical_columns(topic, fast, labels, travellers)
        slow = np.flatnonzero(~ok)
        if len(slow):
            events = [decode(topic, chunk[starts[i] : ends[i]]) for i in slow.tolist()]
            keep = [i for i, e in enumerate(events) if type(e) is not Rejection]
            if len(keep) != len(events):
                rejected.update(e.reason for e in events if type(e) is Rejection)
            if keep:
                valid = [events[i] for i in keep]
                if topic == PAYMENTS:
                    stamps = [e.event_time.timestamp() for e in valid]
                    cols = _COLUMNS[topic](valid, _week_codes(valid, stamps, labels))
                    cols["at"] = np.asarray(stamps, dtype=float)
                else:
                    cols = _COLUMNS[topic](valid, _week_codes_by_day(valid, labels))
                    if travellers:
                        cols["at"] = np.asarray([e.event_time.timestamp() for e in valid], dtype=float)
                if travellers:
                    cols["traveller_id"] = [e.traveller_id for e in valid]
                other = pl.DataFrame(cols, schema=schema).with_columns(
                    line=pl.Series(slow[keep], dtype=pl.Int64))
                part = pl.concat([part, other.select(part.columns)]).sort("line")
        parts.append(part.drop("line"))
    frame = pl.concat(parts) if parts else pl.DataFrame(schema=schema)
    return frame, list(labels), rejected


def _chunks(path: Path, start: int, end: int | None) -> Iterator[bytes]:
    """``path[start:end]`` as whole lines joined by ``\\n``, about ``CHUNK_BYTES`` each, as
    :func:`blocks` gives them (a line over the limit cut short)."""
    held: list[bytes] = []
    size = 0
    for block in blocks(path, start, end, size=_keep()):
        held.append(block)
        size += len(block) + 1
        if size >= CHUNK_BYTES:
            yield b"\n".join(held)
            held, size = [], 0
    if held:
        yield b"\n".join(held)


def _canonical_columns(topic: str, fast, labels: dict[str, int], travellers: bool = False):
    """The frame of :func:`read_unit` (and ``line``) from :func:`canonical.read`'s columns."""
    import polars as pl

    at = fast["at"].to_numpy()
    weeks, days = _week_codes_of_seconds(at, labels)
    if topic == DEPARTURES:
        country = fast["country"].to_numpy()
        keys, where = np.unique(country, return_inverse=True)
        regions = np.array(
            [_REGION_INDEX[destination_region(int(k).to_bytes(2, "big").decode("ascii"))] for k in keys],
            dtype=np.int64,
        )[where.ravel()] if len(keys) else country
        post = fast["post"].to_numpy()
        resident = fast["resident"].to_numpy().astype(np.int64)
        cell = _departure_cells(weeks, days, post, resident, regions)
        out = pl.DataFrame({
            "event_id": fast["event_id"], "crossing_id": fast["crossing_id"],
            "cell": pl.Series(cell, dtype=pl.Int64), "line": fast["line"],
        })
        if travellers:
            out = out.with_columns(traveller_id=fast["traveller_id"], at=pl.Series(at.astype(float)))
        return out
    tourist = fast["tourist"].to_numpy().astype(np.int64)
    handicraft = np.isin(fast["mcc"].to_numpy(), _HANDICRAFT_MCC_NUMBERS).astype(np.int64)
    out = pl.DataFrame({
        "event_id": fast["event_id"], "cell": pl.Series((weeks * 2 + tourist) * 2 + handicraft, dtype=pl.Int64),
        "amount": fast["amount"], "currency": fast["currency"], "purchase": fast["purchase"],
        "at": pl.Series(at.astype(float)), "line": fast["line"],
    })
    if travellers:
        out = out.with_columns(traveller_id=fast["traveller_id"])
    return out


_HANDICRAFT_MCC_NUMBERS = np.array(
    sorted(int(m) for m in HANDICRAFT_MCCS if len(m) == 4 and m.isdigit()), dtype=np.int64)


def _week_codes_of_seconds(at, labels: dict[str, int]):
    """The ``week_of`` label index and the Tehran day of the week (0 = Monday) of each
    whole epoch second in ``at`` (int64), as two arrays."""
    from streams.pipeline.crossings import tehran_date, week_of

    halves, where = np.unique(at // _HALF_HOUR, return_inverse=True)
    of_half, day_of_half = [], []
    for h in halves.tolist():
        day = _half_hour_day(h)
        of_half.append(-1 if day is None else labels.setdefault(day[0], len(labels)))
        day_of_half.append(-1 if day is None else day[1])
    codes = np.asarray(of_half, dtype=np.int64)[where.ravel()]
    days = np.asarray(day_of_half, dtype=np.int64)[where.ravel()]
    for i in np.flatnonzero(codes < 0).tolist():
        at_i = datetime.fromtimestamp(int(at[i]), timezone.utc)
        codes[i] = labels.setdefault(week_of(at_i), len(labels))
        days[i] = tehran_date(at_i).weekday()
    return codes, days


def _units(path: Path, size: int) -> list[tuple[int, int | None]]:
    """Byte ranges of whole lines, about ``size`` bytes each, covering the file."""
    with _reading(path):
        total = path.stat().st_size
    cuts = [0]
    with _reading(path), path.open("rb") as f:
        at = size
        while at < total:
            f.seek(at - 1)
            while True:
                chunk = f.read(1 << 16)
                if not chunk:
                    at = total
                    break
                i = chunk.find(b"\n")
                if i >= 0:
                    at = f.tell() - len(chunk) + i + 1
                    break
            if at >= total:
                break
            cuts.append(at)
            at += size
    return [(a, b) for a, b in zip(cuts, cuts[1:])] + [(cuts[-1], None)]


class _ColumnReader:
    """The big topics read into columns while the caller reads the small ones.

    By default in threads, one per core when there is a lot to read: the columnar
    reading runs in polars and numpy, which release the GIL. ``workers`` > 1 asks for
    that many worker processes instead.
    """

    def __init__(self, files: dict[str, Path], topics: list[str], workers: int | None, unit_bytes: int,
                 travellers: bool = False):
        self.files = files
        self.travellers = travellers
        self.units = {t: _units(files[t], unit_bytes) for t in topics}
        size = sum(files[t].stat().st_size for t in topics)
        self.pool = None
        self.broken = False
        self.futures: dict[str, list] = {}
        if workers is None:
            if size < THREADED_BYTES or (os.cpu_count() or 1) < 2:
                return
            from concurrent.futures import ThreadPoolExecutor

            self.pool = ThreadPoolExecutor(os.cpu_count() or 1, thread_name_prefix="archive-reader")
        elif workers > 1:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            self.pool = ProcessPoolExecutor(
                workers, mp_context=multiprocessing.get_context("spawn"), initializer=gc.disable
            )
        else:
            return
        for t in topics:  # in order: departures first, their join is the longer tail
            self.futures[t] = [self.pool.submit(read_unit, t, str(files[t]), a, b, travellers)
                               for a, b in self.units[t]]

    def read(self, topic: str):
        """(frame of the whole file in file order, week labels of its cells, rejections)."""
        import numpy as np
        import polars as pl

        if self.pool is not None:
            from concurrent.futures.process import BrokenProcessPool

            parts = []
            for (a, b), future in zip(self.units[topic], self.futures.pop(topic)):
                try:
                    parts.append(future.result())
                except BrokenProcessPool:  # a worker was killed: read its part here
                    if not self.broken:
                        import warnings

                        warnings.warn("a reader process died; reading the rest in this one", stacklevel=2)
                        self.broken = True
                    with _gc_paused():
                        parts.append(read_unit(topic, str(self.files[topic]), a, b, self.travellers))
        else:
            with _gc_paused():
                parts = [read_unit(topic, str(self.files[topic]), a, b, self.travellers) for a, b in self.units[topic]]
        per_week = _DEPARTURE_CELLS if topic == DEPARTURES else _PAYMENT_CELLS
        labels: dict[str, int] = {}
        rejected: Counter[str] = Counter()
        frames = []
        for frame, weeks, r in parts:
            rejected.update(r)
            remap = np.array([labels.setdefault(w, len(labels)) for w in weeks] or [0], dtype=np.int64)
            cell = frame["cell"].to_numpy()
            frames.append(frame.with_columns(
                pl.Series("cell", remap[cell // per_week] * per_week + cell % per_week, dtype=pl.Int64)
            ))
        return pl.concat(frames, rechunk=False), list(labels), rejected

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None


class _gc_paused:
    """No cyclic garbage collection while millions of acyclic objects are made."""

    def __enter__(self):
        self.was = gc.isenabled()
        gc.disable()

    def __exit__(self, *exc):
        if self.was:
            gc.enable()


@dataclass
class ArchiveReport:
    """What reading an archive into observations counted, beside the observations."""

    tallies: dict[str, TopicTally]
    unpriced: Counter[str]  # topic -> events whose currency had no rate at their time
    open_inspections: int  # inspections whose departure or declaration never arrived
    #: With ``traveller_strata``: per frequency class, (departures, departures with net
    #: tourist-card handicraft spend in the 14 days before, that spend in cents). Counts
    #: only; no traveller id.
    traveller_classes: dict[str, tuple[int, int, int]] | None = None


def observe(
    events_dir: Path,
    sink: Callable[[object], None],
    *,
    departures: Callable[[object, str, int], None] | None = None,
    payments: Callable[[str, str, bool, int, int], None] | None = None,
    workers: int | None = None,
    unit_bytes: int = UNIT_BYTES,
    traveller_strata: bool = False,
    traveller_window: str = "past",
) -> ArchiveReport:
    """Validate, deduplicate, price and join an archive, as the live worker does.

    Every observation (:mod:`estimators.observations`) goes to ``sink`` once, except that
    two kinds may go in bulk instead, if the caller takes them so:

    - ``departures(stratum, region, day, count)``: ``count`` departures of one cell, the
      first of their crossings (each would be one ``DepartureSeen(stratum, region, day)``);
    - ``payments(week, card_type, handicraft, count, amount_cents)``: ``count`` payments
      with these three fields and these summed signed cents (each would be a
      ``PaymentSeen``).

    Rates are read first, so every amount meets the rate in force at its time whatever the
    file order; declarations and inspections then wait in :class:`Crossing` objects for
    their departures, exactly as live. ``workers``: who reads the two big topics
    (None: threads, one per core, when they hold over ``THREADED_BYTES``; 0 or 1: this thread;
    more: that many processes).

    ``traveller_strata``: every departure's stratum group carries its traveller's trip
    frequency class (``"visitor"`` -> ``"visitor|5+"``; :mod:`streams.pipeline.travellers`),
    so its declaration and inspection land in that post-stratum too; ``traveller_window``
    names the trip-count window (:data:`streams.pipeline.travellers.WINDOWS`). Off by
    default: the live worker has no traveller lane, and live must equal batch.
    """
    from streams.pipeline.contract import DECLARATIONS, EXPORTS, RATES
    from streams.pipeline.crossings import (
        Crossing,
        formal_exports_seen,
        priced_declarations,
        priced_inspections,
    )
    from streams.pipeline.fx import RateBook

    files = topic_files(events_dir)
    tallies = {topic: TopicTally() for topic in files}
    unpriced: Counter[str] = Counter()
    rates = RateBook()
    if RATES in files:
        for rate in read_topic(files[RATES], RATES, tallies[RATES]):
            rates.add(rate.currency, rate.event_time.timestamp(), rate.event_id, rate.units_per_usd)

    reader = _ColumnReader(files, [t for t in (DEPARTURES, PAYMENTS) if t in files], workers, unit_bytes,
                           traveller_strata)
    classes = None
    try:
        crossings: dict[str, Crossing] = {}
        with _gc_paused():  # tens of thousands of acyclic events held at once
            for topic, price, add in (
                (DECLARATIONS, priced_declarations, Crossing.add_declaration),
                (INSPECTIONS, priced_inspections, Crossing.add_inspection),
            ):
                if topic not in files:
                    continue
                events = list(read_topic(files[topic], topic, tallies[topic]))
                for event, priced in zip(events, price(events, rates)):
                    if priced is None:
                        unpriced[topic] += 1
                        continue
                    found = crossings.get(event.crossing_id)
                    if found is None:
                        found = crossings[event.crossing_id] = Crossing()
                    for observation in add(found, priced):
                        sink(observation)
            if EXPORTS in files:
                exports = list(read_topic(files[EXPORTS], EXPORTS, tallies[EXPORTS]))
                for seen in formal_exports_seen(exports, rates):
                    if seen is None:
                        unpriced[EXPORTS] += 1
                    else:
                        sink(seen)
        spend: list | None = [] if traveller_strata else None

        def observe_payments() -> None:
            frame, weeks, rejected = reader.read(PAYMENTS)
            unpriced[PAYMENTS] += _observe_payments(frame, weeks, rates, sink, payments, tallies[PAYMENTS], spend)
            tallies[PAYMENTS].rejected.update(rejected)

        # Payments after departures (their reading is the shorter tail), unless the
        # departures' classes need the card spend first.
        if traveller_strata and PAYMENTS in files:
            observe_payments()
        if DEPARTURES in files:
            frame, weeks, rejected = reader.read(DEPARTURES)
            classes = _observe_departures(frame, weeks, crossings, sink, departures, tallies[DEPARTURES], spend,
                                          traveller_window)
            tallies[DEPARTURES].rejected.update(rejected)
            del frame  # the departures' columns, before the payments' are taken
        if PAYMENTS in files and not traveller_strata:
            observe_payments()
    finally:
        reader.close()
    if not unpriced[PAYMENTS]:
        del unpriced[PAYMENTS]
    return ArchiveReport(
        tallies=tallies,
        unpriced=unpriced,
        open_inspections=sum(c.open_inspections for c in crossings.values()),
        traveller_classes=classes,
    )


def _first_distinct(values):
    """``values.is_first_distinct()`` (a String Series without nulls), cheaper: rows
    compare by 64-bit hashes first (one sort of the hashes finds the repeated ones), and
    only rows whose hash repeats (duplicates, and the rare collision) compare their text.
    An earlier equal value has the same hash, so among the rows sharing a hash the answer
    is the whole column's."""
    import polars as pl

    hashes = values.hash().to_numpy()
    ordered = np.sort(hashes)
    repeated = np.unique(ordered[1:][ordered[1:] == ordered[:-1]])
    out = np.ones(len(values), dtype=bool)
    if len(repeated):
        at = np.minimum(np.searchsorted(repeated, hashes), len(repeated) - 1)
        rows = np.flatnonzero(repeated[at] == hashes)
        out[rows] = values.gather(rows).is_first_distinct().to_numpy()
    return pl.Series(out)


def _observe_departures(frame, weeks: list[str], crossings: dict, sink, bulk, tally: TopicTally,
                        spend: list | None = None, window: str = "past"):
    """Departures after event-id dedup, counted per cell; a joined one also releases its
    Crossing's declaration and inspections.

    A crossing takes only its first departure (``Crossing.add_departure`` ignores later
    ones), so only the first departure of each ``crossing_id`` counts here either.

    With ``spend`` (a list of tourist-card handicraft payment frames, see
    :func:`_observe_payments`) each departure's stratum group carries its trip frequency
    class, computed over these same departures; returns the per-class counts of
    :attr:`ArchiveReport.traveller_classes` (None without).
    """
    import polars as pl

    from estimators.observations import DepartureSeen

    first = _first_distinct(frame["event_id"])
    accepted = int(first.sum())
    tally.accepted += accepted
    tally.duplicates += frame.height - accepted
    firsts = frame.select("crossing_id", "cell", *(("traveller_id", "at") if spend is not None else ())).filter(first)
    # first departure of its crossing among the first occurrences of event ids
    kept = firsts.filter(_first_distinct(firsts["crossing_id"]))
    summary = None
    if spend is not None:
        kept, summary = _with_classes(kept, spend, window)
    # Every departure is counted per cell in bulk; those whose crossing holds a
    # declaration or inspection then release them through the Crossing.
    counts = kept.group_by("cell").len()
    cells: dict[int, tuple] = {}
    for cell, n in sorted(counts.iter_rows()):
        stratum, region, day = cells[cell] = _departure_cell(cell, weeks)
        if bulk is not None:
            bulk(stratum, region, day, n)
        else:
            for _ in range(n):
                sink(DepartureSeen(stratum, region, day))
    joined = kept["crossing_id"].is_in(pl.Series(list(crossings), dtype=pl.String).implode())
    rows = kept.filter(joined)
    for crossing_id, cell in zip(rows["crossing_id"].to_list(), rows["cell"].to_list()):
        for observation in crossings[crossing_id].add_departure(*cells[cell], counted=True):
            sink(observation)
    return summary


def _with_classes(kept, spend: list, window: str = "past"):
    """``kept`` departures with their frequency class folded into ``cell`` (cells past
    ``_DEPARTURE_CELLS * weeks``, see :func:`_departure_cell`), and the per-class counts."""
    import polars as pl

    from streams.pipeline.travellers import CLASSES, WINDOWS, card_cents, traveller_codes, trip_class, trips_90d

    pay = pl.concat(spend) if spend else pl.DataFrame(
        schema={"traveller_id": pl.String, "at": pl.Float64, "cents": pl.Int64})
    code, pay_code = traveller_codes(kept["traveller_id"], pay["traveller_id"])
    at = kept["at"].to_numpy()
    cls = trip_class(trips_90d(code, at, WINDOWS[window]))
    card = card_cents(code, at, pay_code, pay["at"].to_numpy(), pay["cents"].to_numpy())
    summary = {name: (int((cls == k).sum()), int(((cls == k) & (card != 0)).sum()), int(card[cls == k].sum()))
               for k, name in enumerate(CLASSES)}
    cell = kept["cell"].to_numpy()
    kept = kept.select("crossing_id").with_columns(cell=pl.Series(cell + (cls + 1) * _CLASS_STRIDE, dtype=pl.Int64))
    return kept, summary


def _observe_payments(frame, weeks: list[str], rates, sink, bulk, tally: TopicTally, spend: list | None = None) -> int:
    """Payments after event-id dedup, priced like ``payment_seen``; returns the unpriced.

    ``spend``: if a list, a frame (traveller_id, at, cents) of the priced tourist-card
    payments at handicraft merchants is appended to it (signed cents, the same as reach
    the states)."""
    import numpy as np
    import polars as pl

    from estimators.observations import PaymentSeen

    first = _first_distinct(frame["event_id"])
    if not first.all():
        frame = frame.filter(first)
    frame = frame.drop("event_id")
    tally.accepted += frame.height
    tally.duplicates += len(first) - frame.height
    cents = np.zeros(frame.height, dtype=np.int64)
    priced = np.zeros(frame.height, dtype=bool)
    amount, at = frame["amount"].to_numpy(), frame["at"].to_numpy()
    exact = True
    for currency in frame["currency"].unique().to_list():
        rows = (frame["currency"] == currency).arg_true().to_numpy()
        got = rates.to_cents_array(currency, amount[rows], at[rows])
        if got is None:
            exact = False
            break
        cents[rows], priced[rows] = got
    purchase = frame["purchase"].to_numpy()
    if not exact or np.abs(cents).astype(float).sum() >= 2.0**62:
        # Beyond what int64 holds exactly: one Python int at a time, like payment_seen.
        rows = []
        mine = []
        for i, (cell, a, currency, is_purchase, t) in enumerate(frame.select(
            "cell", "amount", "currency", "purchase", "at"
        ).iter_rows()):
            value = rates.to_cents(a, currency, t)
            if value is not None:
                rows.append((cell, value if is_purchase else -value))
                if spend is not None and cell % 4 == 3:  # tourist, handicraft
                    mine.append((i, rows[-1][1]))
        if spend is not None:
            at_rows = [i for i, _ in mine]
            spend.append(pl.DataFrame({
                "traveller_id": frame["traveller_id"].gather(at_rows), "at": frame["at"].gather(at_rows),
                "cents": pl.Series([v for _, v in mine], dtype=pl.Int64),
            }))
        if bulk is None:
            for cell, value in rows:
                sink(PaymentSeen(*_payment_cell(cell, weeks), value))
        else:
            sums: dict = {}
            for cell, value in rows:
                n, total = sums.get(cell, (0, 0))
                sums[cell] = (n + 1, total + value)
            for cell, (n, total) in sorted(sums.items()):
                bulk(*_payment_cell(cell, weeks), n, total)
        return frame.height - len(rows)
    priced_frame = pl.DataFrame({
        "cell": frame["cell"], "cents": np.where(purchase, cents, -cents), "priced": priced,
    }).filter("priced")
    if spend is not None:
        mine = priced & (frame["cell"].to_numpy() % 4 == 3)  # tourist, handicraft
        spend.append(pl.DataFrame({
            "traveller_id": frame["traveller_id"].filter(pl.Series(mine)), "at": frame["at"].filter(pl.Series(mine)),
            "cents": pl.Series(np.where(purchase, cents, -cents)[mine], dtype=pl.Int64),
        }))
    if bulk is None:
        for cell, value, _ in priced_frame.iter_rows():
            sink(PaymentSeen(*_payment_cell(cell, weeks), value))
    else:
        sums = priced_frame.group_by("cell").agg(pl.len().alias("n"), pl.col("cents").sum())
        for cell, n, total in sorted(sums.iter_rows()):
            bulk(*_payment_cell(cell, weeks), n, total)
    return int((~priced).sum())
