"""Valid example events of every topic, written straight from the contract's text."""

from __future__ import annotations

import json

from streams.pipeline import contract as c

BASE = {"event_time": "2026-03-14T08:15:00+03:30", "schema_version": 1}

EXAMPLES: dict[str, dict] = {
    c.DEPARTURES: {
        "event_id": "dep-1", **BASE, "crossing_id": "x-1", "traveller_id": "t-1",
        "border_post": "MEH", "nationality": "IQ", "resident": False, "destination_country": "IQ",
    },
    c.DECLARATIONS: {
        "event_id": "dec-1", **BASE, "crossing_id": "x-1", "traveller_id": "t-1",
        "border_post": "MEH", "destination_country": "IQ",
        "items": [
            {"category": "carpet", "hs_code": "570110", "quantity": 2, "value": 90000000,
             "currency": "IRR", "purpose": "resale"},
            {"category": "ceramics", "quantity": 1, "value": 20.5, "currency": "USD",
             "purpose": "personal"},
        ],
    },
    c.INSPECTIONS: {
        "event_id": "ins-1", **BASE, "crossing_id": "x-1", "traveller_id": "t-1",
        "border_post": "MEH", "selection": "random", "selection_probability": 0.02,
        "declared": True,
        "items": [{"category": "carpet", "quantity": 2, "assessed_value": 150000000, "currency": "IRR"}],
    },
    c.EXPORTS: {
        "event_id": "exp-1", **BASE, "declaration_id": "d-1", "exporter_id": "e-1",
        "border_post": "BND", "destination_country": "AE",
        "items": [
            {"hs_code": "570110", "quantity": 12, "value": 30000, "currency": "USD"},
            {"hs_code": "080251", "quantity": 1000.5, "value": 9000, "currency": "USD"},
        ],
    },
    c.PAYMENTS: {
        "event_id": "pay-1", **BASE, "card_id": "k-1", "card_type": "tourist",
        "traveller_id": "t-1", "merchant_id": "m-1", "mcc": "5971", "merchant_city": "Isfahan",
        "amount": 5000000, "currency": "IRR", "kind": "purchase", "original_event_id": None,
    },
    c.RATES: {"event_id": "fx-1", **BASE, "currency": "IRR", "units_per_usd": 1000000},
}


def line(topic: str, **changes) -> bytes:
    """The example event of ``topic`` with fields changed (a value of ... deletes it)."""
    event = json.loads(json.dumps(EXAMPLES[topic]))
    for name, value in changes.items():
        if value is ...:
            event.pop(name)
        else:
            event[name] = value
    return json.dumps(event).encode()
