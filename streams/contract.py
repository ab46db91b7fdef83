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

Decoding uses msgspec with the constraints declared on the types, so the happy path runs
in C; only a rejection pays for building its reason.
"""

from __future__ import annotations

import re
from datetime import datetime
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


_DECODERS: Final = {topic: msgspec.json.Decoder(t) for topic, t in EVENT_TYPES.items()}

_AMOUNT_FIELDS: Final = frozenset({"items.value", "items.assessed_value", "amount"})
_CODE_FIELDS: Final = frozenset(
    {"nationality", "destination_country", "currency", "items.currency"}
)
_INDEX: Final = re.compile(r"\[\d+\]")


def decode(topic: str, raw: bytes) -> AnyEvent | Rejection:
    """Decode and validate one message of ``topic``; never raises on any input bytes."""
    try:
        event = _DECODERS[topic].decode(raw)
    except msgspec.ValidationError as err:
        return Rejection(_reason(str(err)), str(err))
    except msgspec.DecodeError as err:
        return Rejection("not_json", str(err))
    return check(event)


def check(event: AnyEvent) -> AnyEvent | Rejection:
    """The rules across fields that the types cannot state; ``decode`` applies them last.

    Exposed for readers that decode many lines in one msgspec call (``streams.archive``):
    they must apply exactly this to every decoded event.
    """
    if type(event) is Inspection:
        if event.selection == "random" and event.selection_probability is None:
            return Rejection(
                "missing_field:selection_probability", "a random inspection needs its probability"
            )
    elif type(event) is Payment:
        if event.card_type == "tourist" and event.traveller_id is None:
            return Rejection("missing_field:traveller_id", "a tourist card names its traveller")
        if event.kind != "purchase" and event.original_event_id is None:
            return Rejection(
                "missing_field:original_event_id", f"a {event.kind} names the original purchase"
            )
    return event


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
    reasons = {"not_json", "not_object", "bad_timestamp", "unsupported_schema_version"}

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
