"""Departure and payment lines in the canonical layout, decoded in columns without a
Python object per line.

Nearly every line of an archive is written the one way producers (and the simulator)
write it: compact JSON, the contract's fields in the contract's order, ASCII ids without
escapes, ``event_time`` as ``YYYY-MM-DDTHH:MM:SS+HH:MM``. :func:`read` tests each line
against a regular expression of that layout (one pass in Rust, through polars) and takes
the fields of the lines that match from their byte positions, with numpy. The layout is
strictly narrower than the contract: a line that matches is one that
:func:`streams.pipeline.contract.decode` accepts with the same values, once the checks
that a pattern cannot state (a real calendar date, the plausibility bounds) are applied
here as well. Every other line, and every line those checks refuse, is left to
``decode`` by the caller, so rejections and their reasons are always ``decode``'s.
``tests/test_archive_canonical.py`` pins the two against each other.
"""

from __future__ import annotations

import time
import typing

import numpy as np

from streams.pipeline import contract
from streams.pipeline.contract import DEPARTURES, PAYMENTS, BorderPost

_EVENT_ID = r'[A-Za-z0-9_.:\-]{1,128}'
_ID = r'[A-Za-z0-9_.:\-]+'
_TIME = (r'[0-9]{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]'
         r'[+\-](?:[01][0-9]|2[0-3]):[0-5][0-9]')
_HEAD = r'^\{"event_id":"' + _EVENT_ID + r'","event_time":"' + _TIME + r'","schema_version":1,'
_POSTS = tuple(typing.get_args(BorderPost))
_TEXT = r'[ !#-\[\]-~]*'  # printable ASCII but '"' and '\'
_NUMBER = r'(?:0|[1-9][0-9]{0,14})(?:\.[0-9]{1,6})?'  # below 2**53, at most 6 decimals

PATTERNS: typing.Final = {
    DEPARTURES: _HEAD + r'"crossing_id":"' + _ID + r'","traveller_id":"' + _ID + r'","border_post":"(?:'
    + "|".join(_POSTS) + r')","nationality":"[A-Z]{2}","resident":(?:true|false),'
    r'"destination_country":"[A-Z]{2}"\}\n?$',
    # the rules across fields are in the pattern: a tourist card names its traveller, a
    # refund or reversal its original purchase
    PAYMENTS: _HEAD + r'"card_id":"' + _ID + r'","card_type":"(?:tourist","traveller_id":"' + _ID
    + r'"|domestic","traveller_id":(?:"' + _ID + r'"|null)),"merchant_id":"' + _ID
    + r'","mcc":"[0-9]{4}","merchant_city":"' + _TEXT + r'","amount":' + _NUMBER
    + r',"currency":"[A-Z]{3}","kind":"(?:purchase","original_event_id":(?:"' + _EVENT_ID
    + r'"|null)|(?:refund|reversal)","original_event_id":"' + _EVENT_ID + r'")\}\n?$',
}

_ID_START = len('{"event_id":"')
_AFTER_ID = len('","event_time":"')
_TIME_BYTES = len("2026-03-02T10:53:21+03:30")
_DAYS = np.array([31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], dtype=np.int64)


def lines_of(chunk: bytes):
    """(line starts, line ends) of ``chunk`` split at ``\\n``, as int64 arrays."""
    data = np.frombuffer(chunk, dtype=np.uint8)
    cuts = np.flatnonzero(data == 10)
    return np.r_[0, cuts + 1].astype(np.int64), np.r_[cuts, len(data)].astype(np.int64)


def read(topic: str, chunk: bytes, starts: np.ndarray, ends: np.ndarray, travellers: bool = False):
    """(columns of the canonical lines that ``decode`` accepts, whether each line is one).

    ``chunk``: lines joined by ``\\n`` (``starts``, ``ends`` from :func:`lines_of`). Columns
    (a polars DataFrame, one row per True in the mask, in line order): ``line``,
    ``event_id``, ``at`` (epoch seconds, int64), and for departures ``crossing_id``,
    ``post`` (index in ``BorderPost``), ``resident``, ``country``; for payments
    ``tourist``, ``mcc`` (int), ``amount``, ``currency``, ``purchase``. With ``travellers``
    also ``traveller_id`` (null for a domestic card without one).
    """
    import polars as pl
    import pyarrow as pa

    data = np.frombuffer(chunk, dtype=np.uint8)
    n = len(starts)
    text = chunk
    if len(data) and int(data.max()) >= 128:  # keep the strings ASCII: such lines never match
        copy = data.copy()
        copy[copy >= 128] = 1
        text = copy.tobytes()
    offsets = np.r_[starts, len(data)].astype(np.int64)
    lines = pl.Series(pl.from_arrow(pa.LargeStringArray.from_buffers(
        n, pa.py_buffer(offsets), pa.py_buffer(text))))
    ok = lines.str.contains(PATTERNS[topic]).to_numpy(allow_copy=True).astype(bool)
    ok &= (ends - starts) <= contract._max_bytes
    rows = np.flatnonzero(ok)
    if len(rows) < n:
        lines = lines.filter(pl.Series(ok))
    s = starts[rows]
    id_end = lines.str.find('","event_time":"', literal=True).to_numpy().astype(np.int64)
    t0 = s + id_end + _AFTER_ID
    at, good = _epoch(data, t0)
    frame = {"line": rows, "event_id": lines.str.slice(_ID_START, pl.Series(id_end - _ID_START))}
    if topic == DEPARTURES:
        c0 = id_end + _AFTER_ID + _TIME_BYTES + len('","schema_version":1,"crossing_id":"')
        c1 = lines.str.find('","traveller_id":"', literal=True).to_numpy().astype(np.int64)
        post_at = s + lines.str.find('","border_post":"', literal=True).to_numpy().astype(np.int64) + 17
        post = _code(data, post_at, 3)
        e = ends[rows]
        frame.update(
            crossing_id=lines.str.slice(pl.Series(c0), pl.Series(c1 - c0)),
            post=_lookup(post, {_code_of(p): i for i, p in enumerate(_POSTS)}),
            resident=data[post_at + 3 + len('","nationality":"XX","resident":')] == ord("t"),
            country=_code(data, e - 4, 2),
        )
        if travellers:
            t0 = c1 + len('","traveller_id":"')
            t1 = lines.str.find('","border_post":"', literal=True).to_numpy().astype(np.int64)
            frame["traveller_id"] = lines.str.slice(pl.Series(t0), pl.Series(t1 - t0))
    else:
        card = s + lines.str.find('","card_type":"', literal=True).to_numpy().astype(np.int64) + 15
        mcc = s + lines.str.find('","mcc":"', literal=True).to_numpy().astype(np.int64) + 9
        a0 = lines.str.find('","amount":', literal=True).to_numpy().astype(np.int64) + 11
        a1 = lines.str.find(',"currency":"', literal=True).to_numpy().astype(np.int64)
        cur = s + a1 + 13
        amount = lines.str.slice(pl.Series(a0), pl.Series(a1 - a0)).cast(pl.Float64).to_numpy()
        digits = data[mcc[:, None] + np.arange(4)].astype(np.int64) - 48
        currency = lines.str.slice(pl.Series(a1 + 13), 3)
        usd = (currency == "USD").to_numpy()
        good &= (amount <= contract._max_amount) & ~(usd & (amount > contract._max_traveller_usd))
        frame.update(
            tourist=data[card] == ord("t"),
            mcc=digits @ np.array([1000, 100, 10, 1]),
            amount=amount,
            currency=currency,
            purchase=data[cur + 3 + len('","kind":"')] == ord("p"),
        )
        if travellers:  # a null traveller_id is not found: null
            t0 = lines.str.find('","traveller_id":"', literal=True) + len('","traveller_id":"')
            t1 = lines.str.find('","merchant_id":"', literal=True)
            frame["traveller_id"] = lines.str.slice(t0, t1 - t0)
    frame["at"] = at
    out = pl.DataFrame(frame)
    if not good.all():
        out = out.filter(pl.Series(good))
        ok[rows[~good]] = False
    return out, ok


def _code_of(text: str) -> int:
    return int.from_bytes(text.encode("ascii"), "big")


def _code(data: np.ndarray, at: np.ndarray, width: int) -> np.ndarray:
    """The ``width`` bytes at each of ``at`` as one big-endian integer each."""
    out = np.zeros(len(at), dtype=np.int64)
    for i in range(width):
        out = out * 256 + data[at + i]
    return out


def _lookup(codes: np.ndarray, table: dict[int, int]) -> np.ndarray:
    keys, where = np.unique(codes, return_inverse=True)
    return np.array([table[int(k)] for k in keys], dtype=np.int64)[where.ravel()] if len(keys) else codes


def _epoch(data: np.ndarray, at: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(epoch seconds of the ``YYYY-MM-DDTHH:MM:SS+HH:MM`` at each of ``at``, whether it is
    a real date within the plausibility bounds). The pattern made the digits digits.

    The 25 characters are read as three little-endian 8-byte words per time (an
    unaligned view of the buffer, no copy; the third overlaps the second by its ":"), and
    their digits taken by shifts."""
    words = np.ndarray(shape=(max(len(data) - 7, 0),), dtype="<u8", buffer=data, strides=(1,))
    w0, w1, w2 = words[at], words[at + 8], words[at + 17]  # YYYY-MM- DDTHH:MM SS+HH:MM

    def digit(word: np.ndarray, i: int) -> np.ndarray:
        return ((word >> np.uint64(8 * i)) & np.uint64(0xFF)).astype(np.int64) - 48

    def two(word: np.ndarray, i: int) -> np.ndarray:
        return digit(word, i) * 10 + digit(word, i + 1)

    y = two(w0, 0) * 100 + two(w0, 2)
    m, day = two(w0, 5), two(w1, 0)
    seconds = two(w1, 3) * 3600 + two(w1, 6) * 60 + two(w2, 0)
    sign = np.where(digit(w2, 2) == ord("-") - 48, -1, 1)
    offset = sign * (two(w2, 3) * 3600 + two(w2, 6) * 60)
    leap = (y % 4 == 0) & ((y % 100 != 0) | (y % 400 == 0))
    real = (y >= 1) & (day <= _DAYS[m - 1] + (leap & (m == 2)))
    # days from 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil)
    yy = (y - (m <= 2)).astype(np.int64)
    era = yy // 400
    yoe = yy - era * 400
    doy = (153 * (m + np.where(m > 2, -3, 9)) + 2) // 5 + day - 1
    days = era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468
    epoch = days * 86400 + seconds - offset
    latest = time.time() + contract.BOUNDS.max_future_days * 86400
    return epoch, real & (epoch >= contract._lo_ts) & (epoch <= latest)
