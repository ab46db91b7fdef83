"""Versioned, schema'd encoding of the live path's internal records (msgspec MessagePack).

Nothing read from Kafka or disk is unpickled: a record decodes into the Structs below or
is refused. One record on the wire is::

    b"SC" | version (1 byte) | MAC (16 bytes) | MessagePack body

- ``version`` selects the body's schema; a reader of version N keeps the decoder of
  version N-1 (``_DECODERS``), so records written before an upgrade still read
  (``tests/fixtures/segment-v1.bin`` is a recorded version-1 record the tests decode).
- ``MAC``: keyed BLAKE2b over version and body with ``SUITCASE_PSEUDONYM_KEY``, the key
  every worker of an app shares. With a key, a record forged by someone who can write
  the topic but does not hold the key is refused; without one it is a checksum.
- the body of version 2 is a :class:`Segment` (a tagged array: ``segment`` or ``base``); version 1
  (before unjoined counts and crossing posts) is read and upgraded (:func:`_upgrade`).
  Version 3 is version 2 plus ``weeks``, the lane partition's mergeable estimator states
  of each week the step touched (:class:`estimators.encoding.WeekStates`); a record
  without them is still written as version 2, byte for byte, so older readers read it.

:func:`decode_segment` never raises: it returns a :class:`Segment` or an
:class:`Invalid` with a short, bounded reason (``not_ours``, ``unknown_version:<n>``,
``bad_mac``, ``bad_shape``, ``bad_observation``), which the worker counts in
``suitcase_internal_records_invalid_total{topic}``, logs once per reason, and skips.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import Final, NamedTuple

import msgspec

from estimators.encoding import Observations, WeekStates, invalid

from estimators.observations import GROUPS, Stratum
from estimators.state import POST_INDEX
from streams.pipeline.crossings import PricedDeclaration, PricedInspection

__all__ = [
    "VERSION", "Segment", "TallyRecord", "CrossingRecord", "HeldRecord", "Invalid",
    "encode_segment", "decode_segment", "WeekStates",
]

#: Version of a record without week states (see above); with them: STATES_VERSION.
VERSION: Final = 2
STATES_VERSION: Final = 3
_MAGIC: Final = b"SC"
_MAC_BYTES: Final = 16
#: Longest string or list a record may hold (refused beyond: no huge allocations).
_MAX_ITEMS: Final = 1 << 22
_WEEK: Final = re.compile(r"\A\d{4}-W\d{2}\Z")


class TallyRecord(msgspec.Struct, array_like=True, forbid_unknown_fields=True):
    """A :class:`streams.pipeline.partition.Tally` (counts per topic; rejected per topic and reason;
    unjoined per topic and border post, since version 2)."""

    accepted: dict[str, int]
    duplicates: dict[str, int]
    rejected: list[tuple[str, str, int]]
    late: dict[str, int]
    unjoined: list[tuple[str, str | None, int]]


class CrossingRecord(msgspec.Struct, array_like=True, forbid_unknown_fields=True):
    """An open crossing join, keyed by the keyed digest of its crossing id; ``post`` (since
    version 2) is the border post of its first piece, for the unjoined-crossings count."""

    key: bytes
    stratum: Stratum | None
    region: str | None
    declared: PricedDeclaration | None
    waiting: list[PricedInspection]
    expiry: float
    post: str | None


class HeldRecord(msgspec.Struct, array_like=True, forbid_unknown_fields=True):
    """An accepted event waiting for an exchange rate (its original bytes)."""

    topic: str
    offset: int
    value: bytes
    timestamp: float
    event_time: float


class _SegmentV2(msgspec.Struct, array_like=True, forbid_unknown_fields=True, tag_field="kind", tag="segment"):
    """Version 2's layout: a :class:`Segment` without ``weeks`` (written for steps without week states)."""

    lane: str
    partition: int
    seq: int
    attempt: int
    part: int
    parts: int
    offsets: dict[str, int]
    watermark: dict[str, list[float]]  # topic -> the newest accepted event times (see live.WATERMARK_RANK)
    tally: TallyRecord
    seen: list[tuple[str, bytes, float]]  # (topic, keyed digest of event id, expiry)
    crossings: list[CrossingRecord]
    closed: list[bytes]  # crossing keys dropped
    held_added: list[HeldRecord]
    held_removed: list[tuple[str, int]]
    observations: Observations
    stamps: list[float] | None = None  # benchmarks: record timestamps of the step
    base: bool = False  # a snapshot: replaces everything before ``seq`` (no observations)


class Segment(_SegmentV2):
    """One changelog record of a lane partition: what one step changed *and* the
    observations it released, in one write (see :mod:`streams.pipeline.partition`).

    A step too large for one Kafka record is written as ``parts`` records sharing
    ``seq`` and ``attempt`` (a random id per write); it counts only once every part of
    one attempt is there, so a writer killed half-way leaves nothing applied.
    """

    #: Since version 3: the partition's estimator states of every week this step touched,
    #: whole (each supersedes the one before for its week); a step in parts spreads a
    #: week's strata over its parts.
    weeks: list[WeekStates] = []


# ---------------------------------------------------------------------- version 1 (read only)


class _TallyRecordV1(msgspec.Struct, array_like=True, forbid_unknown_fields=True):
    accepted: dict[str, int]
    duplicates: dict[str, int]
    rejected: list[tuple[str, str, int]]
    late: dict[str, int]


class _CrossingRecordV1(msgspec.Struct, array_like=True, forbid_unknown_fields=True):
    key: bytes
    stratum: Stratum | None
    region: str | None
    declared: PricedDeclaration | None
    waiting: list[PricedInspection]
    expiry: float


class _SegmentV1(msgspec.Struct, array_like=True, forbid_unknown_fields=True, tag_field="kind", tag="segment"):
    lane: str
    partition: int
    seq: int
    attempt: int
    part: int
    parts: int
    offsets: dict[str, int]
    watermark: dict[str, list[float]]
    tally: _TallyRecordV1
    seen: list[tuple[str, bytes, float]]
    crossings: list[_CrossingRecordV1]
    closed: list[bytes]
    held_added: list[HeldRecord]
    held_removed: list[tuple[str, int]]
    observations: Observations
    stamps: list[float] | None = None
    base: bool = False


def _from_v1(old: _SegmentV1) -> "Segment":
    """Version 1 had no unjoined counts and no crossing posts: they start empty."""
    fields = {f: getattr(old, f) for f in old.__struct_fields__}
    fields["tally"] = TallyRecord(*msgspec.structs.astuple(old.tally), [])
    fields["crossings"] = [CrossingRecord(*msgspec.structs.astuple(c), None) for c in old.crossings]
    return Segment(**fields)


class Invalid(NamedTuple):
    """A record that did not decode, and why (a bounded vocabulary)."""

    reason: str


def _key() -> bytes:
    from streams.pipeline import pseudonym

    return pseudonym.key()


def _mac(version: int, body: bytes) -> bytes:
    return hashlib.blake2b(bytes((version,)) + body, digest_size=_MAC_BYTES, key=_key()).digest()


_encoder = msgspec.msgpack.Encoder()
_DECODERS: Final = {1: msgspec.msgpack.Decoder(_SegmentV1), 2: msgspec.msgpack.Decoder(Segment),
                     3: msgspec.msgpack.Decoder(Segment)}


def encode_segment(segment: Segment) -> bytes:
    if segment.weeks:
        version, body = STATES_VERSION, _encoder.encode(segment)
    else:
        version = VERSION
        body = _encoder.encode(_SegmentV2(*msgspec.structs.astuple(segment)[:-1]))
    return _MAGIC + bytes((version,)) + _mac(version, body) + body


def _upgrade(version: int, segment):
    """Bring a decoded record of an older version to the current :class:`Segment`."""
    return _from_v1(segment) if version == 1 else segment


def decode_segment(raw: bytes | None) -> Segment | Invalid:
    """A :class:`Segment`, or why not. Never raises, never runs code from the record."""
    if not isinstance(raw, (bytes, bytearray, memoryview)) or len(raw) < 3 + _MAC_BYTES:
        return Invalid("not_ours")
    raw = bytes(raw)
    if raw[:2] != _MAGIC:
        return Invalid("not_ours")
    version = raw[2]
    decoder = _DECODERS.get(version)
    if decoder is None:
        return Invalid(f"unknown_version:{min(version, 999)}")
    mac, body = raw[3:3 + _MAC_BYTES], raw[3 + _MAC_BYTES:]
    if not hmac.compare_digest(mac, _mac(version, body)):
        return Invalid("bad_mac")
    try:
        segment = _upgrade(version, decoder.decode(body))
    except Exception:  # msgspec.ValidationError, DecodeError, RecursionError, ...
        return Invalid("bad_shape")
    if (segment.parts < 1 or not 0 <= segment.part < segment.parts or segment.seq < 0
            or segment.partition < 0):
        return Invalid("bad_shape")
    for observation in segment.observations:
        if invalid(observation) is not None:
            return Invalid("bad_observation")
    for week in segment.weeks:  # the states themselves are checked when decoded
        if not _WEEK.match(week.week) or any(
                post not in POST_INDEX or group not in GROUPS for post, group, _ in week.strata):
            return Invalid("bad_week_states")
    return segment
