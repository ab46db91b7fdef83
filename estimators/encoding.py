"""Schema'd MessagePack encoding of the estimators' observations (msgspec), and their check.

The live path carries each processing step's observations inside its changelog record
(see :mod:`streams.pipeline.encoding`); this module says how they look on the wire. The public
observation classes (:mod:`estimators.observations`) are NamedTuples, which msgspec
encodes as arrays and decodes with type validation, so the wire shape *is* the class:

- :class:`Observations` holds one list per kind (the states' sums do not depend on the
  order of updates, so grouping by kind loses nothing);
- :func:`invalid` says why a decoded observation would make a state refuse it (an
  unknown region, a category tuple of the wrong length, a negative or absurd amount, a
  probability outside (0, 1]), so a reader can refuse a whole record *before* adding
  any of it: a record is applied completely or not at all.

No pickle: decoding builds only these types, never runs code.

>>> from estimators.observations import Stratum, DepartureSeen
>>> o = Observations.of([DepartureSeen(Stratum("2026-W07", "IKA", "visitor"), "gulf")])
>>> decoded = msgspec.msgpack.decode(msgspec.msgpack.encode(o), type=Observations)
>>> list(decoded) == list(o)
True
"""

from __future__ import annotations

import copy
import re
import zlib
from collections.abc import Iterable, Iterator
from typing import NamedTuple

import msgspec
import numpy as np

from estimators.disclosure import DistinctSketch
from estimators.observations import (
    DeclarationSeen,
    DepartureSeen,
    FormalExportSeen,
    InspectionSeen,
    PaymentSeen,
    Stratum,
)
from estimators.replicates import N_REPLICATES
from estimators.state import (
    CARD_TYPES, K_ALL, POST_INDEX, REGION_INDEX, C, CensusState, FormalExports, SampleState, StratumState, TopLoads,
    WeekPayments,
)
from estimators.tables import Tables

__all__ = ["Observations", "invalid", "WeekStates", "encode_state", "decode_state", "encode_tables", "decode_tables"]

#: Largest absolute amount (US cents) an observation may carry on an internal topic:
#: far above any real crossing, far below int64 overflow of a week's sums.
MAX_CENTS = 10**15
_WEEK = re.compile(r"\A\d{4}-W\d{2}\Z")


class _DepartureV2(NamedTuple):
    """A departure as version-2 records carry it: before departures had a day of the week."""

    stratum: Stratum
    region: str


class Observations(msgspec.Struct, array_like=True, forbid_unknown_fields=True):
    """The observations a step released, one list per kind: the body of version-2 records
    only (since version 3 steps carry their week states instead), so its layout stays that
    of version 2, departures without their day (they read as Monday's)."""

    departures: list[_DepartureV2] = []
    declarations: list[DeclarationSeen] = []
    inspections: list[InspectionSeen] = []
    formal: list[FormalExportSeen] = []
    payments: list[PaymentSeen] = []

    @classmethod
    def of(cls, observations: Iterable) -> "Observations":
        out = cls([], [], [], [], [])
        lists = {
            DepartureSeen: out.departures, DeclarationSeen: out.declarations,
            InspectionSeen: out.inspections, FormalExportSeen: out.formal, PaymentSeen: out.payments,
        }
        for o in observations:
            lists[type(o)].append(_DepartureV2(o.stratum, o.region) if type(o) is DepartureSeen else o)
        return out

    def __iter__(self) -> Iterator:
        for d in self.departures:
            yield DepartureSeen(d.stratum, d.region)
        yield from self.declarations
        yield from self.inspections
        yield from self.formal
        yield from self.payments

    def __len__(self) -> int:
        return (len(self.departures) + len(self.declarations) + len(self.inspections)
                + len(self.formal) + len(self.payments))

    def split(self, parts: int) -> list["Observations"]:
        """``parts`` pieces whose union is this (for records below Kafka's size limit)."""
        return [
            Observations(self.departures[k::parts], self.declarations[k::parts],
                         self.inspections[k::parts], self.formal[k::parts], self.payments[k::parts])
            for k in range(parts)
        ]


def _cents_bad(values, signed: bool = False) -> bool:
    if len(values) != C:
        return True
    return any((v < 0 and not signed) or abs(v) > MAX_CENTS for v in values)


def _stratum_bad(s) -> bool:
    return not _WEEK.match(s.week) or s.border_post not in POST_INDEX or s.group not in ("resident", "visitor")


def invalid(obs) -> str | None:
    """Why a state would refuse this observation (None: it takes it)."""
    kind = type(obs)
    if kind is DepartureSeen:
        bad = _stratum_bad(obs.stratum) or obs.region not in REGION_INDEX or obs.day not in range(7)
    elif kind is DeclarationSeen:
        bad = (_stratum_bad(obs.stratum) or obs.region not in REGION_INDEX
               or _cents_bad(obs.declared_cents) or not 0 <= obs.traveller_key < 2**64)
    elif kind is InspectionSeen:
        p = obs.selection_probability
        bad = (_stratum_bad(obs.stratum) or obs.region not in REGION_INDEX
               or _cents_bad(obs.assessed_cents) or _cents_bad(obs.declared_cents)
               or not 0 <= obs.unit_key < 2**64 or not 0 <= obs.traveller_key < 2**64
               or (obs.random and (p is None or not 1e-6 <= p <= 1.0)))
    elif kind is FormalExportSeen:
        bad = (not _WEEK.match(obs.week) or obs.border_post not in POST_INDEX
               or obs.region not in REGION_INDEX or _cents_bad(obs.cents_by_category))
    elif kind is PaymentSeen:
        bad = (not _WEEK.match(obs.week) or obs.card_type not in CARD_TYPES
               or abs(obs.amount_cents) > MAX_CENTS)
    else:
        return "not_an_observation"
    return f"bad_{kind.__name__}" if bad else None


# ---------------------------------------------------------------------- mergeable states

#: Version of the state encoding below (a stratum's, a week's formal exports or payments):
#: 1 the MessagePack body as is, 2 the same body deflated (zlib level 1: the sparse
#: replicate sums and exact sums are mostly small numbers, ~12x smaller), 3 (written) as 2
#: with the census's departures by day of the week (read from 1 and 2 as zeros).
STATE_VERSION = 3
#: Fields a state gained after version 1, with the version that added them: an older body
#: ends before them, and they are read as their empty value.
_ADDED = {"departures_by_day": 3}
#: Largest inflated state body read (a stratum's is ~6 KB; refused beyond: no bombs).
_MAX_STATE_BYTES = 1 << 22
_INT64 = np.dtype("<i8")
_I64_MIN, _I64_MAX = -(2**63), 2**63 - 1


class WeekStates(msgspec.Struct, array_like=True, forbid_unknown_fields=True):
    """The mergeable states of one week of one lane partition: every stratum's
    (``(border_post, group, encoded StratumState)``), the formal exports' and the card
    payments' (encoded, or None). Its size grows with the week's strata, never with its
    events; each state is encoded apart, so a writer re-encodes only those a step changed
    and a reader decodes only those whose bytes changed."""

    week: str
    strata: list[tuple[str, str, bytes]] = []
    formal: bytes | None = None
    payments: bytes | None = None


def _big(values) -> list:
    """Exact integers as msgpack integers, those beyond int64 as decimal strings."""
    return [v if _I64_MIN <= v <= _I64_MAX else str(v) for v in (int(x) for x in values)]


def _unbig(values, n: int) -> list[int]:
    if not isinstance(values, list) or len(values) != n:
        raise ValueError("bad length")
    kinds = set(map(type, values))
    if kinds <= {int}:
        return values
    if not kinds <= {int, str}:
        raise ValueError("not an integer")
    out = []
    for v in values:
        if type(v) is str:
            if len(v) > 80:
                raise ValueError("integer too long")
            v = int(v)
        elif type(v) is not int:
            raise ValueError("not an integer")
        out.append(v)
    return out


def _encode_field(value):
    if isinstance(value, np.ndarray):
        if value.dtype == object:  # exact sums: int64 bytes while they fit, else integers
            try:
                return np.asarray(value, dtype=_INT64).tobytes()
            except OverflowError:
                return _big(value.ravel())
        return np.ascontiguousarray(value, dtype=_INT64).tobytes()
    if isinstance(value, tuple):  # the traveller sketches: their hashes only (never their key)
        return [list(s.hashes()) for s in value]
    if isinstance(value, TopLoads):
        return [value.k, value.w_max, [[*_big(e[:3]), list(e[3])] for e in value.entries]]
    return _big([value])[0]


def _decode_field(raw, template):
    if isinstance(template, np.ndarray):
        if template.dtype == object:
            if type(raw) is bytes:
                if len(raw) != template.size * 8:
                    raise ValueError("bad array")
                return np.frombuffer(raw, dtype=_INT64).astype(object).reshape(template.shape)
            out = np.empty(template.size, dtype=object)
            out[:] = _unbig(raw, template.size)
            return out.reshape(template.shape)
        if type(raw) is not bytes or len(raw) != template.size * 8:
            raise ValueError("bad array")
        return np.frombuffer(raw, dtype=_INT64).astype(np.int64).reshape(template.shape)
    if isinstance(template, tuple):
        if not isinstance(raw, list) or len(raw) != len(template):
            raise ValueError("bad sketches")
        sketches = []
        for hashes, t in zip(raw, template):
            if not isinstance(hashes, list) or len(hashes) > t.k or any(
                    type(h) is not int or not 0 <= h < 2**64 for h in hashes):
                raise ValueError("bad sketch")
            sketches.append(DistinctSketch.from_hashes(hashes, t.k, t.key))
        return tuple(sketches)
    if isinstance(template, TopLoads):
        k, w_max, entries = raw
        if k != template.k or type(w_max) is not int or not isinstance(entries, list) or len(entries) > k:
            raise ValueError("bad top loads")
        out = []
        for e in entries:
            score, unit, w = _unbig(e[:3], 3)
            a = e[3]
            if not isinstance(a, list) or len(a) != C or any(type(v) is not int for v in a):
                raise ValueError("bad top load")
            out.append((score, unit, w, tuple(a)))
        return TopLoads(k, out, w_max)
    return _unbig([raw], 1)[0]


_state_encoder = msgspec.msgpack.Encoder()
_state_decoder = msgspec.msgpack.Decoder(list)


def _fields(state) -> list:
    out = []
    for f in state._FIELDS:
        if f == "replicates":
            rows, values = state.replicate_rows()
            out.append([rows.tolist(), np.ascontiguousarray(values, dtype=_INT64).tobytes()])
        else:
            out.append(_encode_field(getattr(state, f)))
    return out


_TEMPLATES: dict = {}


def _unfields(raw, cls, version: int = STATE_VERSION):
    template = _TEMPLATES.get(cls)
    if template is None:
        template = _TEMPLATES[cls] = cls()
    state = cls.__new__(cls)
    fields = [f for f in cls._FIELDS if _ADDED.get(f, 1) <= version]
    if not isinstance(raw, list) or len(raw) != len(fields):
        raise ValueError("bad field count")
    for f in cls._FIELDS[len(fields):]:
        setattr(state, f, copy.deepcopy(getattr(template, f)))
    for f, value in zip(fields, raw):
        if f == "replicates":
            rows, values = value
            if (not isinstance(rows, list) or any(type(r) is not int or not 0 <= r < K_ALL for r in rows)
                    or rows != sorted(set(rows)) or type(values) is not bytes
                    or len(values) != len(rows) * N_REPLICATES * 8):
                raise ValueError("bad replicate rows")
            values = np.frombuffer(values, dtype=_INT64).astype(np.int64).reshape(len(rows), N_REPLICATES)
            values.flags.writeable = False
            state._rep_rows, state._rep_values, state._rep_index = np.asarray(rows, dtype=np.intp), values, None
        else:
            setattr(state, f, _decode_field(value, getattr(template, f)))
    return state


def encode_state(state) -> bytes:
    """A :class:`StratumState`, :class:`FormalExports` or :class:`WeekPayments` as bytes
    (``STATE_VERSION``, then MessagePack of its fields; integers exact, no pickle)."""
    if isinstance(state, StratumState):
        body = [_fields(state.census), _fields(state.sample)]
    else:
        body = _fields(state)
    return bytes((STATE_VERSION,)) + zlib.compress(_state_encoder.encode(body), 1)


def decode_state(raw: bytes, cls):
    """The state ``encode_state`` wrote, of class ``cls``; ValueError when it is not one."""
    if not raw or raw[0] not in (1, 2, 3):
        raise ValueError("unknown state version")
    version = raw[0]
    try:
        body = raw[1:]
        if version >= 2:
            inflate = zlib.decompressobj()
            body = inflate.decompress(body, _MAX_STATE_BYTES)
            if inflate.unconsumed_tail or not inflate.eof:
                raise ValueError("state too large or cut")
        body = _state_decoder.decode(body)
        if cls is StratumState:
            if not isinstance(body, list) or len(body) != 2:
                raise ValueError("bad stratum")
            state = StratumState.__new__(StratumState)
            state.census = _unfields(body[0], CensusState, version)
            state.sample = _unfields(body[1], SampleState, version)
            state.sample._check()
            return state
        return _unfields(body, cls, version)
    except (ValueError, TypeError, KeyError, IndexError, OverflowError, msgspec.DecodeError, zlib.error) as error:
        raise ValueError(f"bad state: {error}") from None


# ---------------------------------------------------------------------- state keys
# A state lives under its stratum, or under ``("formal"|"payments", week)``.

_STATE_CLASSES = {"formal": FormalExports, "payments": WeekPayments}


def state_slot(tables: Tables, key) -> tuple[dict, object]:
    """The dict of ``tables`` that holds ``key``'s state, and its key in that dict."""
    if isinstance(key, Stratum):
        return tables.strata, key
    return (tables.formal if key[0] == "formal" else tables.payments), key[1]


def state_class(key) -> type:
    """The class of the state under ``key``."""
    return StratumState if isinstance(key, Stratum) else _STATE_CLASSES[key[0]]


def week_items(part: WeekStates):
    """(state key, encoded state) of every state a week part carries."""
    for post, group, raw in part.strata:
        yield Stratum(part.week, post, group), raw
    if part.formal is not None:
        yield ("formal", part.week), part.formal
    if part.payments is not None:
        yield ("payments", part.week), part.payments


_tables_encoder = msgspec.msgpack.Encoder()
_tables_decoder = msgspec.msgpack.Decoder(list[WeekStates])


def encode_tables(tables) -> bytes:
    """Whole :class:`~estimators.tables.Tables` as bytes: one :class:`WeekStates` per week,
    each state in the versioned state encoding (a cache on disk, never a pickle)."""
    weeks: dict[str, WeekStates] = {}

    def week(label: str) -> WeekStates:
        part = weeks.get(label)
        if part is None:
            part = weeks[label] = WeekStates(label, [], None, None)
        return part

    for key, state in tables.strata.items():
        week(key.week).strata.append((key.border_post, key.group, encode_state(state)))
    for label, state in tables.formal.items():
        week(label).formal = encode_state(state)
    for label, state in tables.payments.items():
        week(label).payments = encode_state(state)
    return _tables_encoder.encode([weeks[w] for w in sorted(weeks)])


def decode_tables(raw: bytes):
    """The tables :func:`encode_tables` wrote; ValueError when the bytes are not that."""
    try:
        parts = _tables_decoder.decode(raw)
    except msgspec.DecodeError as error:
        raise ValueError(f"bad tables: {error}") from None
    tables = Tables()
    for part in parts:
        for key, raw in week_items(part):
            table, at = state_slot(tables, key)
            table[at] = decode_state(raw, state_class(key))
    return tables
