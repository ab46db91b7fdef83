"""Hostile input never makes ``decode`` raise, and each kind gets its own reason, the
same through ``decode``, the block reader and ``suitcase validate``/``estimate``; the
plausibility bounds refuse absurd but contract-valid values; archive lines of any length
are read in bounded memory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.pipeline import archive
from streams.pipeline import contract as c
from tests.events import EXAMPLES, line

ITEM = EXAMPLES[c.DECLARATIONS]["items"][0]
USD_ITEM = {**ITEM, "currency": "USD"}


@pytest.fixture
def bounds():
    """Lets a test change the bounds; puts the defaults (and the environment) back."""
    before = os.environ.get("SUITCASE_BOUNDS")
    yield c.configure
    if before is None:
        os.environ.pop("SUITCASE_BOUNDS", None)
    else:
        os.environ["SUITCASE_BOUNDS"] = before
    c.configure(c.bounds_from_env())


def with_extra(topic: str, text: bytes) -> bytes:
    """The example event of ``topic`` with an unknown field ``x`` holding ``text``."""
    return line(topic)[:-1] + b', "x": ' + text + b"}"


def nested(depth: int, kind: str = "[") -> bytes:
    if kind == "[":
        return b"[" * depth + b"]" * depth
    return b'{"a":' * depth + b"1" + b"}" * depth


def at(moment: datetime) -> str:
    return moment.isoformat()


NOW = datetime.now(timezone.utc)

HOSTILE = [
    # not one UTF-8 JSON document
    (c.DEPARTURES, line(c.DEPARTURES, crossing_id="AAA").replace(b"AAA", b"A\xffA"), "not_json"),
    (c.DECLARATIONS, line(c.DECLARATIONS).replace(b"carpet", b"carp\xc3\x28t"), "not_json"),
    (c.DEPARTURES, b"\xef\xbb\xbf" + line(c.DEPARTURES), "not_json"),  # byte-order mark
    (c.DEPARTURES, line(c.DEPARTURES).decode().encode("utf-16"), "not_json"),
    (c.DEPARTURES, line(c.DEPARTURES, crossing_id="AAA").replace(b"AAA", b"\\ud800"), "not_json"),
    (c.RATES, line(c.RATES, units_per_usd=7.5).replace(b"7.5", b"Infinity"), "not_json"),
    (c.RATES, line(c.RATES, units_per_usd=7.5).replace(b"7.5", b"-Infinity"), "not_json"),
    (c.PAYMENTS, line(c.PAYMENTS, amount=7.5).replace(b"7.5", b"NaN"), "not_json"),
    (c.DEPARTURES, b"", "not_json"),
    (c.DEPARTURES, b"\x00" * 40, "not_json"),
    # nesting
    (c.DEPARTURES, with_extra(c.DEPARTURES, nested(1000)), "too_deep"),
    (c.DEPARTURES, with_extra(c.DEPARTURES, nested(5000, "{")), "too_deep"),
    (c.PAYMENTS, with_extra(c.PAYMENTS, nested(c.MAX_DEPTH)), "too_deep"),  # 257 with the event
    (c.INSPECTIONS, with_extra(c.INSPECTIONS, b"[" * 100_000), "too_deep"),  # and unterminated
    # times that date arithmetic cannot convert, and the plausibility bounds on time
    (c.DEPARTURES, line(c.DEPARTURES, event_time="9999-12-31T23:59:59+14:00"), "implausible:event_time"),
    (c.DEPARTURES, line(c.DEPARTURES, event_time="9999-12-31T23:59:59-14:00"), "implausible:event_time"),
    (c.DEPARTURES, line(c.DEPARTURES, event_time="0001-01-01T00:00:00+14:00"), "implausible:event_time"),
    (c.PAYMENTS, line(c.PAYMENTS, event_time="0001-01-01T00:00:00-14:00"), "implausible:event_time"),
    (c.DEPARTURES, line(c.DEPARTURES, event_time="2099-06-01T00:00:00+03:30"), "implausible:event_time"),
    (c.DEPARTURES, line(c.DEPARTURES, event_time="1999-12-31T23:59:59+00:00"), "implausible:event_time"),
    (c.DEPARTURES, line(c.DEPARTURES, event_time="2000-01-01T03:29:59+03:30"), "implausible:event_time"),
    (c.RATES, line(c.RATES, event_time=at(NOW + timedelta(days=3661))), "implausible:event_time"),
    # huge numbers
    (c.DECLARATIONS, line(c.DECLARATIONS, items=[{**ITEM, "value": 7}]).replace(b": 7,", b": " + b"9" * 400 + b","),
     "bad_value:items.value"),
    (c.DECLARATIONS, line(c.DECLARATIONS, items=[{**ITEM, "quantity": 10**40}]), "implausible:items.quantity"),
    (c.DECLARATIONS, line(c.DECLARATIONS, items=[{**ITEM, "value": 9.2e16}]), "implausible:items.value"),
    (c.DECLARATIONS, line(c.DECLARATIONS, items=[{**ITEM, "value": 1.7e308}]), "implausible:items.value"),
    (c.INSPECTIONS, line(c.INSPECTIONS, items=[{"category": "carpet", "quantity": 1, "assessed_value": 9.3e16,
                                                 "currency": "IRR"}]), "implausible:items.assessed_value"),
    (c.EXPORTS, line(c.EXPORTS, items=[{"hs_code": "570110", "quantity": 1, "value": 1e16, "currency": "IRR"}]),
     "implausible:items.value"),
    (c.EXPORTS, line(c.EXPORTS, items=[{"hs_code": "570110", "quantity": 1e300, "value": 1, "currency": "IRR"}]),
     "implausible:items.quantity"),
    (c.PAYMENTS, line(c.PAYMENTS, amount=9.3e16), "implausible:amount"),
    # money in US dollars, bounded as such
    (c.DECLARATIONS, line(c.DECLARATIONS, items=[{**USD_ITEM, "value": 1e12}]), "implausible:items.value"),
    (c.DECLARATIONS, line(c.DECLARATIONS, items=[{**USD_ITEM, "value": 9e6}] * 2), "implausible:items"),
    (c.DECLARATIONS, line(c.DECLARATIONS, items=[{**ITEM, "value": 6e12}] * 2), "implausible:items"),
    (c.INSPECTIONS, line(c.INSPECTIONS, items=[{"category": "carpet", "quantity": 1, "assessed_value": 1e12,
                                                 "currency": "USD"}]), "implausible:items.assessed_value"),
    (c.PAYMENTS, line(c.PAYMENTS, amount=1e12, currency="USD"), "implausible:amount"),
    (c.EXPORTS, line(c.EXPORTS, items=[{"hs_code": "570110", "quantity": 1, "value": 1e12, "currency": "USD"}]),
     "implausible:items.value"),
    # probabilities and rates
    (c.INSPECTIONS, line(c.INSPECTIONS, selection_probability=1e-300), "implausible:selection_probability"),
    (c.INSPECTIONS, line(c.INSPECTIONS, selection_probability=5e-324), "implausible:selection_probability"),
    (c.INSPECTIONS, line(c.INSPECTIONS, selection_probability=9.9e-5), "implausible:selection_probability"),
    (c.RATES, line(c.RATES, units_per_usd=1e-300), "implausible:units_per_usd"),
    (c.RATES, line(c.RATES, units_per_usd=1e300), "implausible:units_per_usd"),
    (c.RATES, line(c.RATES, units_per_usd=0.05), "implausible:units_per_usd"),
]

PLAUSIBLE = [
    # the edges of the bounds, and hostile-looking but contract-valid events
    (c.DEPARTURES, line(c.DEPARTURES, event_time="2000-01-01T03:30:00+03:30")),
    (c.DEPARTURES, line(c.DEPARTURES, event_time=at(NOW + timedelta(days=3600)))),
    (c.DEPARTURES, with_extra(c.DEPARTURES, nested(c.MAX_DEPTH - 1))),
    (c.DEPARTURES, with_extra(c.DEPARTURES, nested(c.MAX_DEPTH - 1, "{"))),
    (c.DEPARTURES, with_extra(c.DEPARTURES, json.dumps("[" * 5000 + "{" * 5000).encode())),  # inside a string
    (c.DEPARTURES, with_extra(c.DEPARTURES, json.dumps('\\"' + "[" * 5000).encode())),  # escaped quote first
    (c.DEPARTURES, with_extra(c.DEPARTURES, json.dumps(["[" * 300, "]", {"[": "{" * 300}]).encode())),
    (c.INSPECTIONS, line(c.INSPECTIONS, selection_probability=1e-4)),
    (c.DECLARATIONS, line(c.DECLARATIONS, items=[{**ITEM, "value": 1e13}])),
    (c.DECLARATIONS, line(c.DECLARATIONS, items=[{**USD_ITEM, "value": 1e7}])),
    (c.DECLARATIONS, line(c.DECLARATIONS, items=[{**ITEM, "quantity": 10**9}])),
    (c.EXPORTS, line(c.EXPORTS, items=[{"hs_code": "570110", "quantity": 1, "value": 1e15, "currency": "IRR"}])),
    (c.RATES, line(c.RATES, currency="KWD", units_per_usd=0.307)),
    (c.DEPARTURES, line(c.DEPARTURES)[:-1] + b', "border_post": "IKA", "x": null}'),  # a duplicate key
    (c.DEPARTURES, line(c.DEPARTURES, crossing_id="x\u0000y")),
    (c.DEPARTURES, line(c.DEPARTURES, crossing_id="\U0001f9f3 \u062a\u0647\u0631\u0627\u0646")),
]


@pytest.mark.parametrize(("topic", "raw", "reason"), HOSTILE)
def test_hostile_input_is_rejected_with_its_reason(topic, raw, reason):
    got = c.decode(topic, raw)
    assert type(got) is c.Rejection and got.reason == reason, got
    assert reason in c.REJECTION_REASONS


@pytest.mark.parametrize(("topic", "raw"), PLAUSIBLE)
def test_odd_but_plausible_events_are_accepted(topic, raw):
    assert type(c.decode(topic, raw)) is c.EVENT_TYPES[topic]


def test_a_duplicate_key_counts_its_last_value():
    twice = line(c.DEPARTURES)[:-1] + b', "border_post": "XXX"}'
    assert c.decode(c.DEPARTURES, twice).reason == "unknown_code:border_post"
    assert c.decode(c.DEPARTURES, line(c.DEPARTURES)[:-1] + b', "border_post": "IKA"}').border_post == "IKA"


@pytest.mark.parametrize("topic", c.TOPICS)
def test_a_tombstone_is_a_rejection(topic):
    assert c.decode(topic, None) == c.Rejection("tombstone", "a message without a value")


def test_bytes_like_values_decode_as_bytes():
    raw = line(c.DEPARTURES)
    want = c.decode(c.DEPARTURES, raw)
    assert c.decode(c.DEPARTURES, bytearray(raw)) == want
    assert c.decode(c.DEPARTURES, memoryview(raw)) == want
    assert c.decode(c.DEPARTURES, raw.decode()) == want


def test_a_message_over_the_limit_is_line_too_long_and_one_at_it_is_not():
    limit = c.BOUNDS.max_event_bytes
    prefix, suffix = line(c.DEPARTURES)[:-1] + b', "pad": "', b'"}'
    padded = prefix + b"x" * (limit - len(prefix) - len(suffix)) + suffix
    assert len(padded) == limit
    assert type(c.decode(c.DEPARTURES, padded)) is c.Departure
    longer = padded[:-2] + b'x"}'
    assert c.decode(c.DEPARTURES, longer).reason == "line_too_long"
    assert c.decode(c.DEPARTURES, b" " * (50 * limit)).reason == "line_too_long"


def test_the_depth_verdict_does_not_depend_on_the_callers_stack():
    near = with_extra(c.DEPARTURES, nested(c.MAX_DEPTH - 1))
    over = with_extra(c.DEPARTURES, nested(c.MAX_DEPTH + 1))

    def deep(n: int):
        return deep(n - 1) if n else (c.decode(c.DEPARTURES, near), c.decode(c.DEPARTURES, over))

    shallow = (c.decode(c.DEPARTURES, near), c.decode(c.DEPARTURES, over))
    assert type(shallow[0]) is c.Departure and shallow[1].reason == "too_deep"
    assert deep(sys.getrecursionlimit() - 2 * c.MAX_DEPTH - 100) == shallow
    # with almost no stack left even a shallow message cannot be parsed: refused, not raised
    raw = with_extra(c.DEPARTURES, nested(200))
    got = []

    def bottom():
        try:
            bottom()
        except RecursionError:
            if not got:
                got.append(c.decode(c.DEPARTURES, raw))

    bottom()
    assert got[0].reason == "too_deep"


def test_an_unexpected_exception_is_an_internal_error(monkeypatch):
    class Broken:
        def decode(self, raw):
            raise ZeroDivisionError("boom")

    monkeypatch.setitem(c._BY_TOPIC, c.DEPARTURES, (Broken().decode, None))
    assert c.decode(c.DEPARTURES, line(c.DEPARTURES)).reason == "internal_error:ZeroDivisionError"
    assert c.decode("no.such.topic", line(c.DEPARTURES)).reason == "internal_error:KeyError"

    def broken_rule(event):
        raise LookupError("boom")

    monkeypatch.setitem(c._BY_TOPIC, c.RATES, (c._DECODERS[c.RATES].decode, broken_rule))
    assert c.decode(c.RATES, line(c.RATES)).reason == "internal_error:LookupError"


# --- arbitrary bytes and arbitrary JSON: never raises, never an internal error ----------

def _valid_outcome(topic: str, result) -> None:
    if type(result) is c.Rejection:
        assert result.reason in c.REJECTION_REASONS, result
    else:
        assert type(result) is c.EVENT_TYPES[topic]


JSON_ANY = st.recursive(
    st.none() | st.booleans() | st.integers() | st.integers(min_value=2**63, max_value=2**300)
    | st.floats() | st.text(max_size=20) | st.sampled_from(["2026-03-14T08:15:00+03:30", "9999-12-31T23:59:59+14:00",
                                                          "0001-01-01T00:00:00-14:00", "USD", "carpet", "IKA"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=30,
)
DEEP = st.builds(
    lambda depth, kind, inner: (kind[0] * depth + inner + kind[1] * depth),
    st.integers(min_value=0, max_value=3000),
    st.sampled_from([("[", "]"), ('{"a":', "}"), ("[", ""), ('{"a":[', "]}")]),
    st.sampled_from(["1", '"x"', "null", "[]", "{}"]),
)


@settings(max_examples=300, deadline=None)
@given(topic=st.sampled_from(c.TOPICS), raw=st.binary(max_size=2000))
def test_arbitrary_bytes_never_raise(topic, raw):
    _valid_outcome(topic, c.decode(topic, raw))


@settings(max_examples=300, deadline=None)
@given(topic=st.sampled_from(c.TOPICS), value=JSON_ANY)
def test_arbitrary_json_never_raises(topic, value):
    raw = json.dumps(value).encode()  # NaN and Infinity become their (non-JSON) tokens
    _valid_outcome(topic, c.decode(topic, raw))


@settings(max_examples=400, deadline=None)
@given(topic=st.sampled_from(c.TOPICS), data=st.data())
def test_examples_with_arbitrary_or_deep_values_never_raise(topic, data):
    event = json.loads(json.dumps(EXAMPLES[topic]))
    field = data.draw(st.sampled_from([*sorted(event), "unknown"]))
    deep = data.draw(st.booleans())
    placeholder = "\u0000PLACEHOLDER\u0000"
    event[field] = placeholder if deep else data.draw(JSON_ANY)
    raw = json.dumps(event).encode()
    if deep:
        raw = raw.replace(json.dumps(placeholder).encode(), data.draw(DEEP).encode())
    result = c.decode(topic, raw)
    _valid_outcome(topic, result)
    assert archive.decode_block(topic, raw) == [result]  # the block reader agrees


@settings(max_examples=150, deadline=None)
@given(
    topic=st.sampled_from(c.TOPICS),
    pieces=st.lists(
        st.one_of(
            st.sampled_from([raw for t, raw, _ in HOSTILE] + [raw for t, raw in PLAUSIBLE]),
            st.sampled_from([line(t) for t in c.TOPICS]),
            st.binary(max_size=20),
        ),
        min_size=1, max_size=30,
    ),
)
def test_block_reader_gives_decode_of_each_hostile_line(topic, pieces):
    block = b"\n".join(p.replace(b"\n", b"") for p in pieces)
    assert archive.decode_block(topic, block) == [c.decode(topic, raw) for raw in block.split(b"\n")]


# --- the bounds: one place, from the environment or flags, in every process ----------------

def test_bounds_parse_from_text_and_refuse_nonsense():
    assert c.parse_bounds("") == c.Bounds()
    b = c.parse_bounds("max_future_days=2, min_selection_probability=1e-3,earliest_event_time=2010-01-01T00:00:00Z")
    assert (b.max_future_days, b.min_selection_probability) == (2.0, 1e-3)
    assert b.earliest_event_time == datetime(2010, 1, 1, tzinfo=timezone.utc)
    assert c.parse_bounds(["max-quantity=5"]).max_quantity == 5
    for bad in ("nonsense", "no_such_bound=1", "max_future_days=-1", "max_future_days=soon",
                "min_selection_probability=0", "min_selection_probability=2",
                "min_units_per_usd=10,max_units_per_usd=1", "min_units_per_usd=1e-6",
                "earliest_event_time=2010-01-01", "max_event_bytes=10"):
        with pytest.raises(c.BoundsError):
            c.parse_bounds(bad)
    assert c.bounds_from_env({"SUITCASE_BOUNDS": "max_quantity=7"}).max_quantity == 7


def test_configured_bounds_apply_to_decode(bounds):
    raw = line(c.INSPECTIONS, selection_probability=0.02)
    assert type(c.decode(c.INSPECTIONS, raw)) is c.Inspection
    bounds(c.parse_bounds("min_selection_probability=0.05"))
    assert c.decode(c.INSPECTIONS, raw).reason == "implausible:selection_probability"
    assert os.environ["SUITCASE_BOUNDS"] == "min_selection_probability=0.05"
    bounds(c.parse_bounds("max_future_days=0"))
    soon = line(c.DEPARTURES, event_time=at(datetime.now(timezone.utc) + timedelta(hours=1)))
    assert c.decode(c.DEPARTURES, soon).reason == "implausible:event_time"
    assert type(c.decode(c.DEPARTURES, line(c.DEPARTURES))) is c.Departure


def test_reader_processes_apply_the_configured_bounds(tmp_path, bounds):
    """The big topics are decoded in spawned processes: they must see the same bounds."""
    old = [line(c.DEPARTURES, event_id=f"d{i}", crossing_id=f"x{i}", event_time="1995-05-05T10:00:00+03:30")
           for i in range(400)]
    (tmp_path / f"{c.DEPARTURES}.ndjson").write_bytes(b"\n".join(old) + b"\n")
    report = archive.observe(tmp_path, lambda o: None, workers=2, unit_bytes=8192)
    assert report.tallies[c.DEPARTURES].rejected == {"implausible:event_time": 400}
    bounds(c.parse_bounds("earliest_event_time=1990-01-01T00:00:00Z"))
    report = archive.observe(tmp_path, lambda o: None, workers=2, unit_bytes=8192)
    assert report.tallies[c.DEPARTURES].accepted == 400


# --- the same through archives: validate and estimate -------------------------------------

def hostile_archive(path):
    """Every hostile line of each topic between valid events, tombstone-free (files have
    no null lines), and what validate must count."""
    want: dict[str, Counter] = {}
    for topic in c.TOPICS:
        lines = [line(topic, event_id=f"ok-{topic}")]
        counts = Counter()
        for t, raw, reason in HOSTILE:
            if t == topic and b"\n" not in raw:
                lines.append(raw)
                counts[reason] += 1
        lines.append(line(topic, event_id=f"ok2-{topic}", crossing_id="x-2") if topic in (
            c.DEPARTURES, c.DECLARATIONS, c.INSPECTIONS) else line(topic, event_id=f"ok2-{topic}"))
        (path / f"{topic}.ndjson").write_bytes(b"\n".join(lines) + b"\n")
        want[topic] = counts
    return want


def run_cli(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "streams.commands.cli", *args], capture_output=True, text=True, timeout=600,
        env={**os.environ, **(env or {})},
    )


def test_validate_counts_every_hostile_line_with_its_reason(tmp_path):
    want = hostile_archive(tmp_path)
    done = run_cli("validate", "--events", str(tmp_path), "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert done.stdout.count("\n") == 1  # exactly one JSON object on stdout
    for topic in c.TOPICS:
        assert report[topic]["accepted"] == 2
        assert report[topic]["rejected"] == dict(want[topic]), topic
    account = done.stderr.strip().splitlines()
    assert len(account) == 1 and account[0].startswith("suitcase validate: 12 accepted, 0 duplicates")
    assert "Traceback" not in done.stderr


def test_estimate_survives_hostile_lines_and_accounts_for_them(tmp_path):
    want = hostile_archive(tmp_path)
    out = tmp_path / "out" / "estimate.csv"
    done = run_cli("estimate", "--events", str(tmp_path), "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert out.exists() and "wrote" in done.stdout
    account = done.stderr.strip().splitlines()
    rejected = sum(sum(w.values()) for w in want.values())
    assert len(account) == 1 and f"{rejected:,} rejected" in account[0]
    assert "implausible:event_time" in account[0] and "too_deep" in account[0]


def test_bounds_from_the_environment_and_flags_reach_validate(tmp_path):
    (tmp_path / f"{c.INSPECTIONS}.ndjson").write_bytes(line(c.INSPECTIONS, selection_probability=0.02) + b"\n")
    base = ("validate", "--events", str(tmp_path), "--json")
    assert json.loads(run_cli(*base).stdout)[c.INSPECTIONS]["accepted"] == 1
    strict = {"SUITCASE_BOUNDS": "min_selection_probability=0.05"}
    assert json.loads(run_cli(*base, env=strict).stdout)[c.INSPECTIONS]["rejected"] == {
        "implausible:selection_probability": 1}
    flagged = run_cli(*base, "--bound", "min_selection_probability=0.05")
    assert json.loads(flagged.stdout)[c.INSPECTIONS]["rejected"] == {"implausible:selection_probability": 1}
    # the flag goes over the environment
    assert json.loads(run_cli(*base, "--bound", "min_selection_probability=0.01", env=strict).stdout)[
        c.INSPECTIONS]["accepted"] == 1
    for bad_env, args in (({"SUITCASE_BOUNDS": "nonsense"}, ()), ({}, ("--bound", "max_quantity=-3"))):
        done = run_cli(*base, *args, env=bad_env)
        assert done.returncode == 2 and done.stderr.count("\n") == 1
        assert done.stderr.startswith("suitcase: error:") and "Traceback" not in done.stderr


# --- long lines: linear time, bounded memory ---------------------------------------------

def test_long_lines_are_cut_the_same_by_lines_and_blocks(tmp_path, bounds):
    bounds(c.parse_bounds("max_event_bytes=1024"))
    ok = line(c.DEPARTURES)
    pieces = [b"x" * 1024, b"y" * 1025, b"z" * 5000, ok, b"{" + b" " * 3000 + b"}", b"", b"w" * 1023]
    for tail in (b"\n", b""):
        path = tmp_path / "x.ndjson"
        path.write_bytes(b"\n".join(pieces) + tail)
        want = list(archive.lines(path))
        assert [len(w) for w in want] == [1024, 1025, 1025, len(ok), 1025, 0, 1023]
        for size in (1, 7, 1000, 1 << 15):
            got = [raw for block in archive.blocks(path, size=size) for raw in block.split(b"\n")]
            assert got == want
        decoded = [r.reason if type(r) is c.Rejection else "ok" for b in archive.blocks(path)
                   for r in archive.decode_block(c.DEPARTURES, b)]
        assert decoded == ["not_json", "line_too_long", "line_too_long", "ok", "line_too_long",
                           "not_json", "not_json"]


def test_a_long_line_between_valid_ones_is_one_rejection(tmp_path):
    limit = c.BOUNDS.max_event_bytes
    big = line(c.DEPARTURES)[:-1] + b', "pad": "' + b"x" * (3 * limit) + b'"}'  # valid JSON, too long
    data = b"\n".join([line(c.DEPARTURES, event_id="a"), big, line(c.DEPARTURES, event_id="b")]) + b"\n"
    (tmp_path / f"{c.DEPARTURES}.ndjson").write_bytes(data)
    tally = archive.validate(tmp_path)[c.DEPARTURES]
    assert (tally.accepted, dict(tally.rejected)) == (2, {"line_too_long": 1})


MEASURE = """
import sys
from streams.commands.cli import main
code = main(sys.argv[1:])
# the peak resident memory of this program (ru_maxrss would include the parent's at fork)
peak = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")][0].split()[1]
print("peak_kib", peak)
sys.exit(code)
"""


@pytest.fixture(scope="module")
def no_newline_archive(tmp_path_factory):
    """An archive whose departures file is 400 MB without a single newline."""
    path = tmp_path_factory.mktemp("no_newline")
    chunk = b'{"event_id": "' + b"a" * (1 << 20)
    with open(path / f"{c.DEPARTURES}.ndjson", "wb") as f:
        for _ in range(400):
            f.write(chunk)
    yield path
    (path / f"{c.DEPARTURES}.ndjson").unlink()


def test_validate_reads_a_file_without_newlines_in_bounded_memory(no_newline_archive):
    size = (no_newline_archive / f"{c.DEPARTURES}.ndjson").stat().st_size
    done = subprocess.run([sys.executable, "-c", MEASURE, "validate", "--events", str(no_newline_archive), "--json"],
                          capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr
    report, rss = done.stdout.strip().splitlines()
    assert json.loads(report) == {c.DEPARTURES: {"accepted": 0, "duplicates": 0, "rejected": {"line_too_long": 1}}}
    assert int(rss.split()[1]) * 1024 < size / 2  # the line is never held in memory


def test_estimate_of_a_file_without_newlines_says_nothing_is_valid(no_newline_archive, tmp_path):
    done = run_cli("estimate", "--events", str(no_newline_archive), "--out", str(tmp_path / "e.csv"))
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("suitcase: error: no valid event")
    assert "line_too_long 1" in done.stderr
    assert not (tmp_path / "e.csv").exists()


# --- ordinary events are never refused by the bounds -------------------------------------

@pytest.mark.parametrize("days_ahead", [None, 3000])
def test_a_simulated_archive_with_faults_loses_only_its_malformed_lines(tmp_path, days_ahead):
    """Every rejection of a faulty simulated archive is one of its malformed twins, also for
    a window years ahead of the wall clock (the accelerated clock of ``suitcase up``)."""
    from streams.simulation.simulator import WorldConfig, simulate

    start = (datetime.now(timezone.utc) + timedelta(days=days_ahead)).date() if days_ahead else None
    config = WorldConfig(seed=11, weeks=2, scale=0.02, faults=True, **({"start": start} if start else {}))
    summary = simulate(tmp_path, config)
    tallies = archive.validate(tmp_path)
    rejected = Counter()
    for tally in tallies.values():
        rejected.update(tally.rejected)
    assert sum(rejected.values()) == summary.malformed > 0
    assert not [r for r in rejected if r.startswith(("implausible", "too_deep", "line_too_long", "internal"))]
    assert {t: tally.accepted for t, tally in tallies.items()} == summary.events
