"""The border data contract, version 1, as code: typed events and a decoder.

``decode(topic, raw)`` turns the bytes of one Kafka message (or one NDJSON line) into a
validated event or a :class:`Rejection` with a short machine-readable reason. The reasons
form a small closed vocabulary (they become Prometheus label values and dead-letter
headers), listed in ``REJECTION_REASONS``; ``<field>`` is a dotted path such as
``items.value`` (list indices dropped, so the set of reasons stays bounded):

- ``not_json``: the bytes are not one UTF-8 JSON document.
- ``not_object``: JSON, but not an object.
- ``missing_field:<field>``: a required field is absent (or null where the contract
  requires a value in that case, e.g. ``selection_probability`` of a random inspection).
- ``bad_type:<field>``: a field has the wrong JSON type (``"1"`` for a number, ``1.5``
  for an integer, null for a string).
- ``bad_value:<field>``: right type, impossible value (empty ``event_id``, ``quantity``
  below 1, a probability outside (0, 1], a non-positive rate, a non-finite number).
- ``unknown_code:<field>``: a code outside the contract's tables (border post, category,
  selection, card type, kind, purpose) or not of the ISO form (country, currency).
- ``negative_amount:<field>``: a money amount below zero.
- ``bad_timestamp``: ``event_time`` is not RFC 3339 with an offset.
- ``unsupported_schema_version``: ``schema_version`` is not 1.
- ``tombstone``: the message has no value at all (a Kafka tombstone, ``None``).
- ``line_too_long``: more bytes than ``Bounds.max_event_bytes`` (1 MiB).
- ``too_deep``: JSON nested deeper than ``MAX_DEPTH`` (256) levels, even in an unknown
  field (the contract's events need 3).
- ``implausible:<field>``: contract-valid but outside the plausibility bounds
  (:class:`Bounds`): ``event_time``, ``selection_probability``, ``units_per_usd``,
  ``items.quantity``, an amount (``items.value``, ``items.assessed_value``, ``amount``),
  or ``items`` (the amounts of one event together).
- ``internal_error:<ExceptionType>``: a bug, not a verdict on the input: ``decode`` met an
  exception it did not expect. Not in ``REJECTION_REASONS``; it should never be seen.

Decoding uses msgspec with the constraints declared on the types, so the happy path runs
in C; only a rejection pays for building its reason. ``decode`` never raises.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Annotated, Final, Literal, NamedTuple, Union

import msgspec
from msgspec import Meta, Struct

# Topic names, as in the contract.
DEPARTURES: Final = "border.departures"
DECLARATIONS: Final = "travellers.declarations"
INSPECTIONS: Final = "customs.inspections"
EXPORTS: Final = "customs.exports"
PAYMENTS: Final = "payments.transactions"
RATES: Final = "fx.rates"
TOPICS: Final[tuple[str, ...]] = (DEPARTURES, DECLARATIONS, INSPECTIONS, EXPORTS, PAYMENTS, RATES)

# Codes of the contract. Literal types make msgspec check them while decoding; a test
# keeps them equal to the reference tables in ``data/reference.json``.
BorderPost = Literal[
    "IKA", "MHD", "SYZ", "IFN", "TBZ", "KIH", "BND", "BUZ",
    "ANZ", "AMR", "BAZ", "ASR", "NOR", "SRK", "MEH", "SHL",
]
Category = Literal[
    "carpet", "kilim", "textiles", "ceramics", "metalwork", "jewelry", "woodwork", "basketry"
]

EventId = Annotated[str, Meta(min_length=1, max_length=128)]
Id = Annotated[str, Meta(min_length=1)]
EventTime = Annotated[datetime, Meta(tz=True)]
Country = Annotated[str, Meta(pattern="^[A-Z]{2}$")]
Currency = Annotated[str, Meta(pattern="^[A-Z]{3}$")]
Amount = Annotated[float, Meta(ge=0)]
Count = Annotated[int, Meta(ge=1)]
HsCode = Annotated[str, Meta(pattern="^[0-9]{4}")]
Mcc = Annotated[str, Meta(pattern="^[0-9]{4}$")]
Probability = Annotated[float, Meta(gt=0, le=1)]
Rate = Annotated[float, Meta(gt=0)]


class Event(Struct, kw_only=True, frozen=True):
    """Fields every event carries."""

    event_id: EventId
    event_time: EventTime
    schema_version: Literal[1]


class Departure(Event, kw_only=True, frozen=True):
    """A traveller leaving the country; the departures topic is a complete count."""

    crossing_id: Id
    traveller_id: Id
    border_post: BorderPost
    nationality: Country
    resident: bool
    destination_country: Country


class DeclaredItem(Struct, kw_only=True, frozen=True):
    category: Category
    quantity: Count
    value: Amount
    currency: Currency
    purpose: Literal["personal", "resale"]
    hs_code: HsCode | None = None


class Declaration(Event, kw_only=True, frozen=True):
    """Goods a departing traveller declares (often below their true value)."""

    crossing_id: Id
    traveller_id: Id
    border_post: BorderPost
    destination_country: Country
    items: list[DeclaredItem]


class InspectedItem(Struct, kw_only=True, frozen=True):
    category: Category
    quantity: Count
    assessed_value: Amount
    currency: Currency


class Inspection(Event, kw_only=True, frozen=True):
    """A baggage inspection at exit; only random ones are a probability sample."""

    crossing_id: Id
    traveller_id: Id
    border_post: BorderPost
    selection: Literal["random", "targeted"]
    declared: bool
    items: list[InspectedItem]
    selection_probability: Probability | None = None


class ExportItem(Struct, kw_only=True, frozen=True):
    hs_code: HsCode
    quantity: Annotated[float, Meta(ge=0)]
    value: Amount
    currency: Currency


class FormalExport(Event, kw_only=True, frozen=True):
    """A formal export declaration: the recorded channel, shown beside the estimate."""

    declaration_id: Id
    exporter_id: Id
    border_post: BorderPost
    destination_country: Country
    items: list[ExportItem]


class Payment(Event, kw_only=True, frozen=True):
    """A card payment at a merchant; tourist cards are linked to a traveller."""

    card_id: Id
    card_type: Literal["tourist", "domestic"]
    merchant_id: Id
    mcc: Mcc
    merchant_city: str
    amount: Amount
    currency: Currency
    kind: Literal["purchase", "refund", "reversal"]
    traveller_id: Id | None = None
    original_event_id: EventId | None = None


class FxRate(Event, kw_only=True, frozen=True):
    """Market rate of one currency: units of it per US dollar."""

    currency: Currency
    units_per_usd: Rate


AnyEvent = Union[Departure, Declaration, Inspection, FormalExport, Payment, FxRate]

EVENT_TYPES: Final[dict[str, type]] = {
    DEPARTURES: Departure,
    DECLARATIONS: Declaration,
    INSPECTIONS: Inspection,
    EXPORTS: FormalExport,
    PAYMENTS: Payment,
    RATES: FxRate,
}

#: Message key of each topic (it decides the partition).
TOPIC_KEYS: Final[dict[str, str]] = {
    DEPARTURES: "crossing_id",
    DECLARATIONS: "crossing_id",
    INSPECTIONS: "crossing_id",
    EXPORTS: "declaration_id",
    PAYMENTS: "card_id",
    RATES: "currency",
}


class Rejection(NamedTuple):
    """Why an event was refused; ``reason`` is from the closed vocabulary above."""

    reason: str
    detail: str



# --- plausibility bounds -----------------------------------------------------------

#: JSON nested deeper than this is refused (``too_deep``) before msgspec sees it, so the
#: verdict does not depend on how deep the caller's stack is (msgspec recurses).
MAX_DEPTH: Final = 256
_DEEP_BYTES: Final = 2 * MAX_DEPTH  # a shorter message cannot nest deeper
_UTC = timezone.utc
_EPOCH_ORDINAL: Final = 719_163  # date(1970, 1, 1).toordinal()
_DAY_S: Final = 86_400


class BoundsError(ValueError):
    """Plausibility bounds that cannot be used (bad name, value or syntax)."""


class Bounds(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Plausibility bounds: contract-valid values that no real border produces.

    Applied inside :func:`decode`, so the live worker and the batch path refuse the same
    events, each with its own ``implausible:<field>`` reason. They keep absurd values from
    poisoning shared state: every priced amount stays far inside int64 cents, no
    Horvitz-Thompson weight exceeds ``1 / min_selection_probability``, no event time is
    one that later date arithmetic cannot represent. Defaults are generous on purpose:
    they never refuse an ordinary event, simulated ones included (the simulator's clock
    runs ahead of the wall clock: ``suitcase up`` simulates up to 520 weeks from its
    ``--start``). Override in ``SUITCASE_BOUNDS`` or with ``--bound NAME=VALUE``.

    Money cannot be bounded in US dollars before it is priced (a rate may arrive later),
    so amounts are bounded in their own currency (``max_amount``, the same for every
    currency: 1e13 rials are about $10M) and, for amounts in US dollars, which need no
    rate, in dollars as well; rates are bounded too, so one accepted event is worth at
    most ``max_amount * 100 / min_units_per_usd`` cents: 1e16 for a traveller's event and
    1e18 for a formal export by default, below int64 (9.2e18).
    """

    #: Longest message or archive line, bytes (``line_too_long``).
    max_event_bytes: Annotated[int, Meta(ge=1024, le=1 << 30)] = 1 << 20
    #: Earliest plausible ``event_time`` (``implausible:event_time``).
    earliest_event_time: Annotated[datetime, Meta(tz=True)] = datetime(2000, 1, 1, tzinfo=_UTC)
    #: How far ``event_time`` may lie after the wall clock, days (``implausible:event_time``).
    max_future_days: Annotated[float, Meta(ge=0, le=1e6)] = 3660.0
    #: Smallest plausible ``selection_probability`` (weights up to 1/p; ``implausible:``).
    min_selection_probability: Annotated[float, Meta(gt=0, le=1)] = 1e-4
    #: Largest ``quantity`` of an item line (``implausible:items.quantity``).
    max_quantity: Annotated[float, Meta(gt=0)] = 1e9
    #: Largest amount, and sum of one event's amounts, in major units of any currency, of a
    #: declaration, an inspection or a card payment.
    max_amount: Annotated[float, Meta(gt=0)] = 1e13
    #: The same for a formal export declaration (a container, not a suitcase).
    max_export_amount: Annotated[float, Meta(gt=0)] = 1e15
    #: Largest US-dollar amount, and sum of one event's US-dollar amounts, of a
    #: declaration, an inspection or a card payment.
    max_traveller_usd: Annotated[float, Meta(gt=0)] = 1e7
    #: The same for a formal export declaration.
    max_export_usd: Annotated[float, Meta(gt=0)] = 1e10
    #: Range of ``units_per_usd`` (the strongest currency, the Kuwaiti dinar, is ~0.3;
    #: metals such as XAU, ~0.0004, are outside it).
    min_units_per_usd: Annotated[float, Meta(gt=0)] = 0.1
    max_units_per_usd: Annotated[float, Meta(gt=0)] = 1e15

    def __post_init__(self) -> None:
        if self.min_units_per_usd >= self.max_units_per_usd:
            raise ValueError("min_units_per_usd must be below max_units_per_usd")
        if max(self.max_amount, self.max_export_amount) * 100 / self.min_units_per_usd >= 2.0**62:
            raise ValueError("max_amount / min_units_per_usd would let cents overflow int64")

    def changed(self) -> dict[str, str]:
        """The fields that differ from the defaults, as NAME -> VALUE text."""
        default = Bounds()
        out = {}
        for name in self.__struct_fields__:
            value = getattr(self, name)
            if value != getattr(default, name):
                out[name] = value.isoformat() if isinstance(value, datetime) else repr(value)
        return out


def parse_bounds(text: str | Iterable[str], base: Bounds | None = None) -> Bounds:
    """``base`` (default: the defaults) with ``NAME=VALUE`` settings applied.

    ``text`` is one string of comma-separated settings (as in ``SUITCASE_BOUNDS``) or an
    iterable of single settings (as from repeated ``--bound`` flags). Raises BoundsError.
    """
    items = text.split(",") if isinstance(text, str) else list(text)
    values = msgspec.structs.asdict(base or Bounds())
    for item in items:
        item = item.strip()
        if not item:
            continue
        name, eq, value = item.partition("=")
        name = name.strip().replace("-", "_")
        if not eq or not value.strip():
            raise BoundsError(f"bound {item!r} is not NAME=VALUE")
        if name not in values:
            raise BoundsError(f"unknown bound {name!r}; known: {', '.join(Bounds.__struct_fields__)}")
        values[name] = value.strip()
    try:
        return msgspec.convert(values, Bounds, strict=False)
    except msgspec.ValidationError as err:
        raise BoundsError(f"bad bound: {err}") from None


def bounds_from_env(environ=os.environ) -> Bounds:
    """The bounds ``SUITCASE_BOUNDS`` sets (``NAME=VALUE,...``), else the defaults."""
    return parse_bounds(environ.get("SUITCASE_BOUNDS", ""))


def configure(bounds: Bounds) -> None:
    """Make ``bounds`` the ones :func:`decode` applies in this process and in the
    processes it starts from now on (they read ``SUITCASE_BOUNDS``)."""
    global BOUNDS, _lo_ts, _lo_ord, _hi_ord, _max_amount, _max_traveller_usd, _max_export_usd
    global _max_quantity, _min_p, _min_rate, _max_rate, _max_bytes, _max_export_amount
    changed = bounds.changed()
    if changed:
        os.environ["SUITCASE_BOUNDS"] = ",".join(f"{k}={v}" for k, v in changed.items())
    else:
        os.environ.pop("SUITCASE_BOUNDS", None)
    BOUNDS = bounds
    _lo_ts = bounds.earliest_event_time.timestamp()
    _lo_ord = _EPOCH_ORDINAL + int(_lo_ts // _DAY_S) + 1
    _hi_ord = 0  # set from the wall clock by the first event that reaches it
    _max_amount = bounds.max_amount
    _max_export_amount = bounds.max_export_amount
    _max_traveller_usd = bounds.max_traveller_usd
    _max_export_usd = bounds.max_export_usd
    _max_quantity = bounds.max_quantity
    _min_p = bounds.min_selection_probability
    _min_rate, _max_rate = bounds.min_units_per_usd, bounds.max_units_per_usd
    _max_bytes = bounds.max_event_bytes


BOUNDS: Bounds
configure(bounds_from_env())  # an unusable SUITCASE_BOUNDS stops the import, loudly


# --- decoding ----------------------------------------------------------------------

_DECODERS: Final = {topic: msgspec.json.Decoder(t) for topic, t in EVENT_TYPES.items()}

_AMOUNT_FIELDS: Final = frozenset({"items.value", "items.assessed_value", "amount"})
_CODE_FIELDS: Final = frozenset(
    {"nationality", "destination_country", "currency", "items.currency"}
)
_INDEX: Final = re.compile(r"\[\d+\]")


def decode(topic: str, raw: bytes | None) -> AnyEvent | Rejection:
    """Decode and validate one message of ``topic``; never raises, whatever ``raw`` is."""
    try:
        if type(raw) is not bytes:
            if raw is None:
                return Rejection("tombstone", "a message without a value")
            raw = raw.encode("utf-8") if isinstance(raw, str) else memoryview(raw).tobytes()
        if len(raw) > _DEEP_BYTES:  # only long messages can be too long or too deep
            if len(raw) > _max_bytes:
                return Rejection("line_too_long", f"longer than {_max_bytes} bytes")
            if too_deep(raw):
                return Rejection("too_deep", f"JSON nested deeper than {MAX_DEPTH} levels")
        parse, rule = _BY_TOPIC[topic]
        event = parse(raw)
    except msgspec.ValidationError as err:
        return Rejection(_reason(str(err)), str(err))
    except (msgspec.DecodeError, UnicodeError) as err:
        return Rejection("not_json", str(err))
    except RecursionError:  # within MAX_DEPTH, but the caller's stack left too little room
        return Rejection("too_deep", "JSON nested deeper than the stack allows here")
    except Exception as err:  # noqa: BLE001 - decode never raises
        return Rejection(f"internal_error:{type(err).__name__}", str(err)[:200])
    try:
        if _lo_ord < event.event_time.toordinal() < _hi_ord:  # check(), inlined
            return event if rule is None else rule(event)
        return check(event)
    except Exception as err:  # noqa: BLE001
        return Rejection(f"internal_error:{type(err).__name__}", str(err)[:200])


def too_deep(raw: bytes) -> bool:
    """Whether ``raw``'s arrays and objects nest deeper than ``MAX_DEPTH`` (brackets inside
    strings do not count), in linear time; exact for JSON. Cheap when ``raw`` holds few
    brackets, as every contract event does."""
    if raw.count(b"{") + raw.count(b"[") <= MAX_DEPTH:
        return False
    import numpy as np

    data = np.frombuffer(bytes(raw), dtype=np.uint8)
    index = np.arange(len(data))
    # a character is escaped when an odd run of backslashes precedes it
    last_other = np.maximum.accumulate(np.where(data == 92, -1, index))
    run = np.zeros(len(data), dtype=np.int64)
    run[1:] = index[:-1] - last_other[:-1]
    quote = (data == 34) & (run % 2 == 0)
    outside = np.cumsum(quote) % 2 == 0  # wrong only at quotes, which are no brackets
    step = (outside & ((data == 123) | (data == 91))).astype(np.int64)
    step -= outside & ((data == 125) | (data == 93))
    return int(np.cumsum(step).max(initial=0)) > MAX_DEPTH


def check(event: AnyEvent) -> AnyEvent | Rejection:
    """The rules across fields that the types cannot state, and the plausibility bounds;
    ``decode`` applies them last.

    Exposed for readers that decode many lines in one msgspec call (``streams.pipeline.archive``):
    they must apply exactly this to every decoded event (or :func:`check_many`).
    """
    day = event.event_time.toordinal()  # local date: within a day of the UTC one
    if not _lo_ord < day < _hi_ord and not _plausible_time(event.event_time):
        return Rejection(
            "implausible:event_time",
            f"before {BOUNDS.earliest_event_time.isoformat()} or more than "
            f"{BOUNDS.max_future_days:g} days after the wall clock",
        )
    rule = _RULES.get(type(event))
    return event if rule is None else rule(event)


def check_many(events: list) -> list:
    """``[check(e) for e in events]``, cheaper when no event needs more than the time check."""
    if not events:
        return events
    if type(events[0]) is Departure:
        days = [e.event_time.toordinal() for e in events]
        if _lo_ord < min(days) and max(days) < _hi_ord:
            return events
    return [check(e) for e in events]


def _plausible_time(at: datetime) -> bool:
    """The exact test of ``event_time`` against the bounds (the wall clock read now)."""
    global _hi_ord
    latest = time.time() + BOUNDS.max_future_days * _DAY_S
    _hi_ord = _EPOCH_ORDINAL + int(latest // _DAY_S) - 1
    stamp = at.timestamp()  # exact arithmetic on timedeltas: no overflow at year 1 or 9999
    return _lo_ts <= stamp <= latest


def _implausible(field: str, bound: str, value: float) -> Rejection:
    return Rejection(f"implausible:{field}", f"above the plausibility bound {bound}={value:g}")


def _check_inspection(event: Inspection) -> AnyEvent | Rejection:
    p = event.selection_probability
    if p is None:
        if event.selection == "random":
            return Rejection(
                "missing_field:selection_probability", "a random inspection needs its probability"
            )
    elif p < _min_p:
        return Rejection(
            "implausible:selection_probability",
            f"below the plausibility bound min_selection_probability={_min_p:g}",
        )
    if not _items_plausible(event.items, "assessed_value", _max_amount, _max_traveller_usd):
        return _items_rejection(event, "assessed_value", "max_traveller_usd")
    return event


def _check_declaration(event: Declaration) -> AnyEvent | Rejection:
    if not _items_plausible(event.items, "value", _max_amount, _max_traveller_usd):
        return _items_rejection(event, "value", "max_traveller_usd")
    return event


def _check_export(event: FormalExport) -> AnyEvent | Rejection:
    if not _items_plausible(event.items, "value", _max_export_amount, _max_export_usd):
        return _items_rejection(event, "value", "max_export_usd", "max_export_amount")
    return event


def _items_plausible(items, name: str, max_amount: float, max_usd: float) -> bool:
    """Every item's ``name`` value and quantity within the bounds, and their sums too
    (USD items also against ``max_usd``); :func:`_items_rejection` says which broke."""
    total = usd = 0.0
    for item in items:
        value = getattr(item, name)
        if value > max_amount or item.quantity > _max_quantity:
            return False
        total += value
        if item.currency == "USD":
            usd += value
    return not (total > max_amount or usd > max_usd)


def _items_rejection(event, name: str, usd_bound: str, amount_bound: str = "max_amount") -> Rejection:
    """The reason an event's items broke a bound (the first item that does, else the sum)."""
    max_usd = getattr(BOUNDS, usd_bound)
    max_amount = getattr(BOUNDS, amount_bound)
    field = f"items.{name}"
    total = usd = 0.0
    for item in event.items:
        value = getattr(item, name)
        if item.quantity > _max_quantity:
            return _implausible("items.quantity", "max_quantity", _max_quantity)
        if value > max_amount:
            return _implausible(field, amount_bound, max_amount)
        if item.currency == "USD" and value > max_usd:
            return _implausible(field, usd_bound, max_usd)
        total += value
        usd += value if item.currency == "USD" else 0.0
    if total > max_amount:
        return _implausible("items", amount_bound, max_amount)
    return _implausible("items", usd_bound, max_usd)


def _check_payment(event: Payment) -> AnyEvent | Rejection:
    if event.card_type == "tourist" and event.traveller_id is None:
        return Rejection("missing_field:traveller_id", "a tourist card names its traveller")
    if event.kind != "purchase" and event.original_event_id is None:
        return Rejection(
            "missing_field:original_event_id", f"a {event.kind} names the original purchase"
        )
    if event.amount > _max_amount:
        return _implausible("amount", "max_amount", _max_amount)
    if event.currency == "USD" and event.amount > _max_traveller_usd:
        return _implausible("amount", "max_traveller_usd", _max_traveller_usd)
    return event


def _check_rate(event: FxRate) -> AnyEvent | Rejection:
    if not _min_rate <= event.units_per_usd <= _max_rate:
        return Rejection(
            "implausible:units_per_usd",
            f"outside the plausibility bounds min_units_per_usd={_min_rate:g}, "
            f"max_units_per_usd={_max_rate:g}",
        )
    return event


_RULES: Final = {
    Inspection: _check_inspection,
    Declaration: _check_declaration,
    FormalExport: _check_export,
    Payment: _check_payment,
    FxRate: _check_rate,
}
#: Per topic: the msgspec decode function and the event type's rule (None: time only).
_BY_TOPIC: Final = {
    topic: (_DECODERS[topic].decode, _RULES.get(tp)) for topic, tp in EVENT_TYPES.items()
}


def _reason(message: str) -> str:
    """Map a msgspec validation message to a reason of the closed vocabulary."""
    text, _, at = message.partition(" - at `")
    field = _INDEX.sub("", at.rstrip("`"))[2:]  # "$.items[0].value" -> "items.value"
    if text.startswith("Object missing required field `"):
        name = text.split("`")[1]
        return f"missing_field:{field + '.' if field else ''}{name}"
    if not field:
        return "not_object" if text.startswith("Expected `object`") else "not_json"
    if field == "event_time":
        return "bad_timestamp"
    if field == "schema_version":
        return "unsupported_schema_version"
    if text.startswith("Invalid enum value"):
        return f"unknown_code:{field}"
    if ", got `" in text:
        return f"bad_type:{field}"
    if field in _AMOUNT_FIELDS and text.endswith(">= 0.0"):
        return f"negative_amount:{field}"
    if field in _CODE_FIELDS and "matching regex" in text:
        return f"unknown_code:{field}"
    return f"bad_value:{field}"


def _closed_vocabulary() -> frozenset[str]:
    """Every reason ``decode`` can return, derived from the types (for docs and tests)."""
    reasons = {
        "not_json", "not_object", "bad_timestamp", "unsupported_schema_version",
        "tombstone", "line_too_long", "too_deep",
        "implausible:event_time", "implausible:selection_probability",
        "implausible:units_per_usd", "implausible:items.quantity", "implausible:items",
        "implausible:items.value", "implausible:items.assessed_value", "implausible:amount",
    }

    def walk(tp: type, prefix: str) -> None:
        for field in msgspec.structs.fields(tp):
            path = prefix + field.name
            if field.required:
                reasons.add(f"missing_field:{path}")
            reasons.add(f"bad_type:{path}")
            reasons.add(f"bad_value:{path}")
            reasons.add(f"unknown_code:{path}")
            if path in _AMOUNT_FIELDS:
                reasons.add(f"negative_amount:{path}")
            inner = getattr(field.type, "__args__", ())
            for arg in inner:
                if isinstance(arg, type) and issubclass(arg, Struct):
                    walk(arg, path + ".")

    for tp in EVENT_TYPES.values():
        walk(tp, "")
    reasons |= {
        "missing_field:selection_probability",
        "missing_field:traveller_id",
        "missing_field:original_event_id",
    }
    return frozenset(reasons)


#: Every reason ``decode`` can return (a superset: not every field can fail every way).
REJECTION_REASONS: Final[frozenset[str]] = _closed_vocabulary()
