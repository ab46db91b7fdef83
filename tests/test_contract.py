"""The decoder accepts exactly the contract and names a reason for everything else."""

from __future__ import annotations

import json
import typing

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.pipeline import contract as c
from estimators import reference
from tests.events import EXAMPLES, line


def test_code_types_match_the_reference_tables():
    assert set(typing.get_args(c.BorderPost)) == set(reference.BORDER_POSTS)
    assert typing.get_args(c.Category) == reference.CATEGORIES


@pytest.mark.parametrize("topic", c.TOPICS)
def test_every_example_event_is_accepted(topic):
    event = c.decode(topic, line(topic))
    assert isinstance(event, c.EVENT_TYPES[topic]), event


def test_unknown_extra_fields_are_ignored():
    assert isinstance(c.decode(c.DEPARTURES, line(c.DEPARTURES, note="x", extra={"a": 1})), c.Departure)


def test_payment_without_optional_nulls_is_accepted():
    domestic = line(c.PAYMENTS, card_type="domestic", traveller_id=..., original_event_id=...)
    assert isinstance(c.decode(c.PAYMENTS, domestic), c.Payment)


def test_targeted_inspection_has_no_probability():
    raw = line(c.INSPECTIONS, selection="targeted", selection_probability=None)
    assert c.decode(c.INSPECTIONS, raw).selection_probability is None


ITEM = EXAMPLES[c.DECLARATIONS]["items"][0]

REJECTIONS = [
    (c.DEPARTURES, b"{not json", "not_json"),
    (c.DEPARTURES, b"\xff\xfe\x00", "not_json"),
    (c.DEPARTURES, b"", "not_json"),
    (c.DEPARTURES, b"[1, 2]", "not_object"),
    (c.DEPARTURES, b'"text"', "not_object"),
    (c.DEPARTURES, line(c.DEPARTURES, event_id=...), "missing_field:event_id"),
    (c.DEPARTURES, line(c.DEPARTURES, crossing_id=...), "missing_field:crossing_id"),
    (c.DEPARTURES, line(c.DEPARTURES, resident="yes"), "bad_type:resident"),
    (c.DEPARTURES, line(c.DEPARTURES, event_id=7), "bad_type:event_id"),
    (c.DEPARTURES, line(c.DEPARTURES, event_id=""), "bad_value:event_id"),
    (c.DEPARTURES, line(c.DEPARTURES, event_id="x" * 129), "bad_value:event_id"),
    (c.DEPARTURES, line(c.DEPARTURES, border_post="XYZ"), "unknown_code:border_post"),
    (c.DEPARTURES, line(c.DEPARTURES, nationality="Iraq"), "unknown_code:nationality"),
    (c.DEPARTURES, line(c.DEPARTURES, destination_country="iq"), "unknown_code:destination_country"),
    (c.DEPARTURES, line(c.DEPARTURES, event_time="2026-03-14T08:15:00"), "bad_timestamp"),
    (c.DEPARTURES, line(c.DEPARTURES, event_time="14/03/2026"), "bad_timestamp"),
    (c.DEPARTURES, line(c.DEPARTURES, event_time=1773462300), "bad_timestamp"),
    (c.DEPARTURES, line(c.DEPARTURES, schema_version=2), "unsupported_schema_version"),
    (c.DECLARATIONS, line(c.DECLARATIONS, items=[{**ITEM, "value": -1}]), "negative_amount:items.value"),
    (c.DECLARATIONS, line(c.DECLARATIONS, items=[{**ITEM, "category": "rugs"}]), "unknown_code:items.category"),
    (c.DECLARATIONS, line(c.DECLARATIONS, items=[{**ITEM, "quantity": 0}]), "bad_value:items.quantity"),
    (c.DECLARATIONS, line(c.DECLARATIONS, items=[{**ITEM, "quantity": 1.5}]), "bad_type:items.quantity"),
    (c.DECLARATIONS, line(c.DECLARATIONS, items=[{**ITEM, "purpose": "gift"}]), "unknown_code:items.purpose"),
    (c.DECLARATIONS, line(c.DECLARATIONS, items=[{**ITEM, "currency": "rial"}]), "unknown_code:items.currency"),
    (c.DECLARATIONS, line(c.DECLARATIONS, items=[{**ITEM, "value": "10"}]), "bad_type:items.value"),
    (c.DECLARATIONS, line(c.DECLARATIONS, items=[{k: v for k, v in ITEM.items() if k != "value"}]),
     "missing_field:items.value"),
    (c.DECLARATIONS, line(c.DECLARATIONS, items={"category": "carpet"}), "bad_type:items"),
    (c.DECLARATIONS, b'{"event_id":"a","items":[{"value":1e999}]}', "bad_value:items.value"),
    (c.DECLARATIONS, b'{"event_id":"a"}', "missing_field:event_time"),
    (c.INSPECTIONS, line(c.INSPECTIONS, selection="suspicion"), "unknown_code:selection"),
    (c.INSPECTIONS, line(c.INSPECTIONS, selection_probability=None), "missing_field:selection_probability"),
    (c.INSPECTIONS, line(c.INSPECTIONS, selection_probability=...), "missing_field:selection_probability"),
    (c.INSPECTIONS, line(c.INSPECTIONS, selection_probability=0), "bad_value:selection_probability"),
    (c.INSPECTIONS, line(c.INSPECTIONS, selection_probability=1.5), "bad_value:selection_probability"),
    (c.INSPECTIONS, line(c.INSPECTIONS, declared=1), "bad_type:declared"),
    (c.INSPECTIONS, line(c.INSPECTIONS, items=[{"category": "carpet", "quantity": 1,
                                                 "assessed_value": -5, "currency": "IRR"}]),
     "negative_amount:items.assessed_value"),
    (c.EXPORTS, line(c.EXPORTS, items=[{"quantity": 1, "value": 1, "currency": "USD"}]), "missing_field:items.hs_code"),
    (c.EXPORTS, line(c.EXPORTS, items=[{"hs_code": "57", "quantity": 1, "value": 1, "currency": "USD"}]),
     "bad_value:items.hs_code"),
    (c.PAYMENTS, line(c.PAYMENTS, amount=-10), "negative_amount:amount"),
    (c.PAYMENTS, line(c.PAYMENTS, card_type="visa"), "unknown_code:card_type"),
    (c.PAYMENTS, line(c.PAYMENTS, kind="chargeback"), "unknown_code:kind"),
    (c.PAYMENTS, line(c.PAYMENTS, mcc="597"), "bad_value:mcc"),
    (c.PAYMENTS, line(c.PAYMENTS, traveller_id=None), "missing_field:traveller_id"),
    (c.PAYMENTS, line(c.PAYMENTS, kind="refund"), "missing_field:original_event_id"),
    (c.RATES, line(c.RATES, units_per_usd=0), "bad_value:units_per_usd"),
    (c.RATES, line(c.RATES, units_per_usd=7.5).replace(b"7.5", b"1e999"), "bad_value:units_per_usd"),
    (c.RATES, line(c.RATES, units_per_usd=7.5).replace(b"7.5", b"NaN"), "not_json"),
    (c.RATES, line(c.RATES, currency=...), "missing_field:currency"),
]


@pytest.mark.parametrize(("topic", "raw", "reason"), REJECTIONS)
def test_rejection_reason(topic, raw, reason):
    rejection = c.decode(topic, raw)
    assert rejection == c.Rejection(reason, rejection.detail)
    assert reason in c.REJECTION_REASONS


def test_reasons_hold_no_values_only_field_paths():
    rejection = c.decode(c.DEPARTURES, line(c.DEPARTURES, traveller_id=12345, resident="t-secret"))
    assert "t-secret" not in rejection.reason and "12345" not in rejection.reason


@settings(max_examples=400, deadline=None)
@given(topic=st.sampled_from(c.TOPICS), raw=st.binary(max_size=300))
def test_any_bytes_decode_to_an_event_or_a_known_reason(topic, raw):
    result = c.decode(topic, raw)
    assert isinstance(result, (c.Rejection, *c.EVENT_TYPES.values()))
    if isinstance(result, c.Rejection):
        assert result.reason in c.REJECTION_REASONS


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=400, deadline=None)
@given(topic=st.sampled_from(c.TOPICS), data=st.data())
def test_mutated_examples_decode_to_an_event_or_a_known_reason(topic, data):
    event = json.loads(json.dumps(EXAMPLES[topic]))
    field = data.draw(st.sampled_from(sorted(event)))
    event[field] = data.draw(JSON)
    result = c.decode(topic, json.dumps(event).encode())
    if isinstance(result, c.Rejection):
        assert result.reason in c.REJECTION_REASONS
    else:
        assert isinstance(result, c.EVENT_TYPES[topic])
