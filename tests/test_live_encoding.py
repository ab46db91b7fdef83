"""The live path's internal records: versioned MessagePack, never pickle; a record that
does not decode is refused with a reason, never executed, and the decoder never raises."""

from __future__ import annotations

import pickle
from pathlib import Path

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.pipeline import pseudonym
from streams.pipeline.encoding import VERSION, Invalid, Segment, _mac, decode_segment, encode_segment

FIXTURE = Path(__file__).parent / "fixtures" / "segment-v1.bin"
FIXTURE_V2 = Path(__file__).parent / "fixtures" / "segment-v2.bin"


@pytest.fixture(autouse=True)
def no_key(monkeypatch):
    """The fixture was recorded without a pseudonym key."""
    monkeypatch.setattr(pseudonym, "_key", b"")


def framed(body: bytes, version: int = VERSION) -> bytes:
    """A record with a valid header and MAC around an arbitrary body."""
    return b"SC" + bytes((version,)) + _mac(version, body) + body


def test_a_recorded_version_1_record_still_decodes():
    segment = decode_segment(FIXTURE.read_bytes())
    assert type(segment) is Segment
    assert (segment.lane, segment.partition, segment.seq, segment.attempt) == ("crossings", 2, 7, 424242)
    assert segment.offsets == {"border.departures": 41, "customs.inspections": 3}
    assert [type(o).__name__ for o in segment.observations] == [
        "DepartureSeen", "DeclarationSeen", "InspectionSeen", "FormalExportSeen", "PaymentSeen"]
    inspection = segment.observations.inspections[0]
    assert inspection.selection_probability == 0.05 and inspection.assessed_cents[-1] == 250
    assert segment.crossings[0].declared.declared_cents[0] == 100
    assert segment.held_added[0].value == b'{"event_id": "x"}'
    # version 1 knew no unjoined counts or crossing posts: upgraded, they start empty
    assert segment.tally.unjoined == [] and segment.crossings[0].post is None
    assert decode_segment(encode_segment(segment)) == segment  # and it is written as version 2


def test_a_recorded_version_2_record_decodes_and_encodes_to_the_same_bytes():
    raw = FIXTURE_V2.read_bytes()
    assert raw[2] == VERSION == 2
    segment = decode_segment(raw)
    assert segment.tally.unjoined == [("customs.inspections", "IKA", 2)]
    assert segment.crossings[0].post == "IKA"
    assert encode_segment(segment) == raw  # the schema did not drift


class Boom:
    def __reduce__(self):
        return (exec, ("raise SystemExit('pickle ran')",))


@pytest.mark.parametrize("raw, reason", [
    (b"", "not_ours"),
    (b"\x00" * 64, "not_ours"),
    (pickle.dumps(Boom()), "not_ours"),  # a pickle is never loaded
    (b"SC\x09" + b"\x00" * 40, "unknown_version:9"),
    (b"SC\x01" + b"\x00" * 40, "bad_mac"),
    (framed(msgspec.msgpack.encode({"kind": "segment"})), "bad_shape"),
    (framed(msgspec.msgpack.encode(["segment", "crossings", 0])), "bad_shape"),
    (framed(b"\xdd\xff\xff\xff\xff"), "bad_shape"),  # an array claiming 4 billion items
    (framed(b"\xdb\xff\xff\xff\xff"), "bad_shape"),  # a 4 GB string
    (framed(b"\x91" * 100_000 + b"\xc0"), "bad_shape"),  # nested 100,000 deep
    (framed(pickle.dumps(Boom())), "bad_shape"),
])
def test_crafted_records_are_refused_with_a_reason(raw, reason):
    assert decode_segment(raw) == Invalid(reason)


def test_an_observation_a_state_would_refuse_makes_the_record_invalid():
    segment = decode_segment(FIXTURE.read_bytes())
    bad = segment.observations.payments[0]._replace(amount_cents=10**18)
    segment.observations.payments[0] = bad
    assert decode_segment(encode_segment(segment)) == Invalid("bad_observation")
    segment = decode_segment(FIXTURE.read_bytes())
    segment.observations.declarations[0] = segment.observations.declarations[0]._replace(declared_cents=(1, 2))
    assert decode_segment(encode_segment(segment)) == Invalid("bad_observation")


def test_a_record_signed_with_another_key_is_refused(monkeypatch):
    raw = FIXTURE.read_bytes()
    monkeypatch.setattr(pseudonym, "_key", b"the app's secret")
    assert decode_segment(raw) == Invalid("bad_mac")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_arbitrary_bytes_never_raise(raw):
    assert type(decode_segment(raw)) is Invalid
    assert type(decode_segment(framed(raw))) in (Invalid, Segment)
