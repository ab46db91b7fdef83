"""The simulator writes the contract exactly, its truth adds up, and it is reproducible.

Worlds here are small (scale 0.01 to 0.05, two weeks); the annual calibration is checked
on one week out of every four of a year, which works because every day of the world is
drawn from its own (seed, date) stream whatever window it is simulated in.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
from bisect import bisect_right
from collections import Counter, defaultdict
from pathlib import Path

import polars as pl
import pytest

from estimators.reference import (
    BORDER_POSTS,
    CATEGORIES,
    CATEGORY_HS_HEADINGS,
    DESTINATION_REGIONS,
    DOMAINS,
    HANDICRAFT_MCCS,
    destination_region,
)
from streams.simulation.simulator import TOPICS, WorldConfig, iter_days, simulate

SMALL = WorldConfig(seed=7, weeks=2, scale=0.05)
FAULTY = dataclasses.replace(SMALL, scale=0.01, faults=True, malformed_rate=0.01)

TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\+03:30$")
COUNTRY = re.compile(r"^[A-Z]{2}$")
CURRENCY = {"IRR", "USD", "EUR", "AED", "IQD", "TRY"}
NEIGHBOUR = {"BAZ": "TR", "ASR": "AZ", "NOR": "AM", "SRK": "TM", "MEH": "IQ", "SHL": "IQ"}
COMMON = {"event_id": str, "event_time": str, "schema_version": int}
FIELDS = {
    "border.departures": {"crossing_id": str, "traveller_id": str, "border_post": str,
                          "nationality": str, "resident": bool, "destination_country": str},
    "travellers.declarations": {"crossing_id": str, "traveller_id": str, "border_post": str,
                                "destination_country": str, "items": list},
    "customs.inspections": {"crossing_id": str, "traveller_id": str, "border_post": str,
                            "selection": str, "selection_probability": (float, type(None)),
                            "declared": bool, "items": list},
    "customs.exports": {"declaration_id": str, "exporter_id": str, "border_post": str,
                        "destination_country": str, "items": list},
    "payments.transactions": {"card_id": str, "card_type": str, "traveller_id": (str, type(None)),
                              "merchant_id": str, "mcc": str, "merchant_city": str,
                              "amount": (int, float), "currency": str, "kind": str,
                              "original_event_id": (str, type(None))},
    "fx.rates": {"currency": str, "units_per_usd": (int, float)},
}
ITEM_FIELDS = {
    "travellers.declarations": {"category": str, "quantity": int, "value": (int, float),
                                "currency": str, "purpose": str},
    "customs.inspections": {"category": str, "quantity": int, "assessed_value": (int, float),
                            "currency": str},
    "customs.exports": {"hs_code": str, "quantity": int, "value": (int, float), "currency": str},
}


def _when(event: dict) -> dt.datetime:
    return dt.datetime.fromisoformat(event["event_time"])


def _read(out: Path) -> dict[str, list[bytes]]:
    return {t: (out / f"{t}.ndjson").read_bytes().splitlines() for t in TOPICS}


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> tuple[Path, object, dict[str, list[dict]]]:
    out = tmp_path_factory.mktemp("world")
    summary = simulate(out, SMALL)
    events = {t: [json.loads(raw) for raw in lines] for t, lines in _read(out).items()}
    return out, summary, events


@pytest.fixture(scope="module")
def days() -> list:
    return list(iter_days(SMALL))


class Rates:
    """The contract's FX rule over the archive's fx.rates."""

    def __init__(self, rates: list[dict]) -> None:
        book = defaultdict(list)
        for r in rates:
            book[r["currency"]].append((_when(r), r["units_per_usd"]))
        self.book = {c: sorted(v) for c, v in book.items()}

    def usd(self, amount: float, currency: str, at: dt.datetime) -> float:
        rows = self.book[currency]
        i = bisect_right(rows, (at, float("inf"))) - 1
        assert i >= 0, f"no {currency} rate before {at}"
        return amount / rows[i][1]


# --------------------------------------------------------------------------- truth


def test_truth_table_has_the_contract_columns_and_keys(world):
    out, _, _ = world
    truth = pl.read_parquet(out / "truth.parquet")
    assert truth.columns == ["week", "domain", "key", "value_usd"]
    assert truth["value_usd"].dtype == pl.Float64
    assert truth["week"].unique().sort().to_list() == ["2026-W10", "2026-W11"]
    keys = {d: set(truth.filter(pl.col("domain") == d)["key"]) for d in DOMAINS}
    assert keys == {"total": {"all"}, "category": set(CATEGORIES), "border_post": set(BORDER_POSTS),
                    "destination_region": set(DESTINATION_REGIONS)}


def test_truth_total_is_the_sum_of_the_carried_items(world, days):
    out, summary, _ = world
    truth = pl.read_parquet(out / "truth.parquet")
    carried = sum(day.truth["value_usd"].sum() for day in days)
    total = truth.filter(pl.col("domain") == "total")["value_usd"].sum()
    assert carried > 0
    assert total == pytest.approx(carried, rel=1e-12)
    assert summary.truth_total_usd == pytest.approx(carried, rel=1e-12)
    for week, rows in pl.concat([d.truth for d in days]).group_by("week"):
        assert truth.filter(week=week[0], domain="total")["value_usd"].item() == pytest.approx(
            rows["value_usd"].sum(), rel=1e-12)


def test_each_domain_sums_to_the_total(world):
    out, _, _ = world
    truth = pl.read_parquet(out / "truth.parquet").with_columns(
        cents=(pl.col("value_usd") * 100).round().cast(pl.Int64))
    sums = truth.group_by("week", "domain").agg(pl.col("cents").sum())
    for (week,), rows in sums.group_by("week"):
        assert rows["cents"].n_unique() == 1, (week, rows)


def test_truth_is_by_the_week_of_the_departure(days):
    for day in days:
        departures = {e["crossing_id"]: e for e in map(json.loads, day.events["border.departures"])}
        for row in day.truth.iter_rows(named=True):
            dep = departures[row["crossing_id"]]
            y, w, _ = _when(dep).isocalendar()
            assert row["week"] == f"{y}-W{w:02d}"
            assert row["border_post"] == dep["border_post"]
            assert row["destination_region"] == destination_region(dep["destination_country"])
            assert row["category"] in CATEGORIES and row["quantity"] >= 1 and row["value_usd"] > 0


# --------------------------------------------------------------------------- reproducibility


def test_same_seed_gives_byte_identical_files(world, tmp_path):
    out, _, _ = world
    simulate(tmp_path, SMALL)
    for name in [f"{t}.ndjson" for t in TOPICS] + ["truth.parquet"]:
        assert (tmp_path / name).read_bytes() == (out / name).read_bytes(), name


def test_different_seeds_give_different_worlds(world, tmp_path):
    out, _, _ = world
    simulate(tmp_path, dataclasses.replace(SMALL, seed=8))
    for t in TOPICS[:-1]:  # rates are a random walk too, but check the people
        assert (tmp_path / f"{t}.ndjson").read_bytes() != (out / f"{t}.ndjson").read_bytes(), t
    assert (tmp_path / "truth.parquet").read_bytes() != (out / "truth.parquet").read_bytes()


def test_files_are_the_days_of_iter_days(world, days):
    out, _, _ = world
    files = _read(out)
    for t in TOPICS:
        assert [line for day in days for line in day.events[t]] == files[t], t
    assert [d.date for d in days] == [SMALL.start + dt.timedelta(i) for i in range(SMALL.days)]


def test_a_day_is_the_same_whatever_window_it_is_simulated_in(days):
    later = list(iter_days(dataclasses.replace(SMALL, start=SMALL.start + dt.timedelta(days=7),
                                               weeks=1)))
    for topic in ("border.departures", "customs.exports", "fx.rates"):
        assert later[1].events[topic] == days[8].events[topic], topic
    assert later[1].truth.equals(days[8].truth)


def test_progress_is_reported_per_day(tmp_path):
    calls = []
    simulate(tmp_path, dataclasses.replace(SMALL, weeks=1, scale=0.01),
             progress=lambda done, total: calls.append((done, total)))
    assert calls == [(i, 7) for i in range(1, 8)]


# --------------------------------------------------------------------------- the contract


def _check_fields(obj: dict, spec: dict) -> None:
    assert set(obj) == set(spec), sorted(set(obj) ^ set(spec))
    for name, kind in spec.items():
        assert isinstance(obj[name], kind), (name, obj[name])
        if kind is int or kind == (int, float):
            assert not isinstance(obj[name], bool), name


def test_every_line_follows_the_contract(world):
    _, _, events = world
    for topic, rows in events.items():
        assert rows, topic
        ids = Counter(e["event_id"] for e in rows)
        assert max(ids.values()) == 1, topic
        for e in rows:
            spec = {**COMMON, **FIELDS[topic]}
            optional = {"hs_code"} if topic == "travellers.declarations" else set()
            _check_fields(e, spec)
            assert 1 <= len(e["event_id"]) <= 128
            assert TIME.match(e["event_time"]), e["event_time"]
            assert e["schema_version"] == 1
            if "border_post" in e:
                assert e["border_post"] in BORDER_POSTS
            for name in ("nationality", "destination_country"):
                if name in e:
                    assert COUNTRY.match(e[name])
            for item in e.get("items", []):
                spec = ITEM_FIELDS[topic]
                _check_fields({k: v for k, v in item.items() if k not in optional}, spec)
                assert item["quantity"] >= 1 and item["currency"] in CURRENCY
                if "category" in item:
                    assert item["category"] in CATEGORIES
                amount = item.get("value", item.get("assessed_value"))
                assert amount > 0
                if "hs_code" in item:
                    assert re.fullmatch(r"\d{6}", item["hs_code"])
                    if topic == "travellers.declarations":
                        assert item["hs_code"][:4] in CATEGORY_HS_HEADINGS[item["category"]]
                if topic == "travellers.declarations":
                    assert item["purpose"] in ("personal", "resale")


def test_codes_and_links_are_consistent(world):
    _, _, ev = world
    departures = {e["crossing_id"]: e for e in ev["border.departures"]}
    assert len(departures) == len(ev["border.departures"])
    for e in ev["border.departures"]:
        post = e["border_post"]
        if post in NEIGHBOUR:
            assert e["destination_country"] == NEIGHBOUR[post]
        elif post in ("ANZ", "AMR"):
            assert destination_region(e["destination_country"]) == "caspian"
        elif post in ("BND", "BUZ"):
            assert destination_region(e["destination_country"]) == "gulf"
    assert {e["nationality"] for e in ev["border.departures"] if not e["resident"]} >= {"IQ", "TR", "AF"}
    assert all(e["nationality"] in ("IR", "AF", "IQ") for e in ev["border.departures"] if e["resident"])
    for topic in ("travellers.declarations", "customs.inspections"):
        for e in ev[topic]:
            dep = departures[e["crossing_id"]]
            assert (e["traveller_id"], e["border_post"]) == (dep["traveller_id"], dep["border_post"])
            gap = (_when(dep) - _when(e)).total_seconds()
            assert 0 < gap <= 12 * 3600, (topic, gap)
    for e in ev["travellers.declarations"]:
        assert e["items"] and e["destination_country"] == departures[e["crossing_id"]]["destination_country"]
    declared = {e["crossing_id"] for e in ev["travellers.declarations"]}
    for e in ev["customs.inspections"]:
        assert e["declared"] == (e["crossing_id"] in declared)
        if e["selection"] == "random":
            assert 0 < e["selection_probability"] <= 1
        else:
            assert e["selection"] == "targeted" and e["selection_probability"] is None
    assert {e["selection"] for e in ev["customs.inspections"]} == {"random", "targeted"}
    # the randomiser's probability differs by post and, on some days, within a post
    p_used = defaultdict(set)
    for e in ev["customs.inspections"]:
        if e["selection"] == "random":
            p_used[e["border_post"]].add(e["selection_probability"])
    assert len(set.union(*p_used.values())) > 2 and max(map(len, p_used.values())) > 1


def test_payments_link_cards_travellers_and_originals(world):
    _, _, ev = world
    pays = ev["payments.transactions"]
    by_id = {e["event_id"]: e for e in pays}
    travellers = {e["traveller_id"] for e in ev["border.departures"]}
    tourists_seen = Counter()
    for e in pays:
        assert e["card_type"] in ("tourist", "domestic") and e["kind"] in ("purchase", "refund", "reversal")
        assert re.fullmatch(r"\d{4}", e["mcc"]) and e["amount"] > 0 and e["currency"] in CURRENCY
        if e["card_type"] == "tourist":
            tourists_seen[e["traveller_id"] in travellers] += 1
        else:
            assert e["traveller_id"] is None
        if e["kind"] == "purchase":
            assert e["original_event_id"] is None
        else:
            orig = by_id[e["original_event_id"]]
            assert orig["kind"] == "purchase" and orig["card_id"] == e["card_id"]
            assert _when(orig) <= _when(e) and e["amount"] <= orig["amount"]
    # tourist cards belong to departing visitors (some leave after the window ends)
    assert tourists_seen[True] > tourists_seen[False] > 0
    kinds = Counter(e["kind"] for e in pays)
    assert kinds["refund"] and kinds["reversal"]
    assert {e["card_type"] for e in pays if e["mcc"] in HANDICRAFT_MCCS} == {"tourist", "domestic"}


def test_exports_carry_handicraft_and_other_lines(world):
    _, summary, ev = world
    headings = {h for hs in CATEGORY_HS_HEADINGS.values() for h in hs}
    codes = [i["hs_code"][:4] for e in ev["customs.exports"] for i in e["items"]]
    assert any(c in headings for c in codes) and any(c not in headings for c in codes)
    assert {"0802", "0910"} & set(codes)
    assert 0 < summary.formal_handicraft_usd < summary.formal_total_usd


def test_every_amount_has_a_rate_and_inspections_assess_the_true_value(world, days):
    _, _, ev = world
    rates = Rates(ev["fx.rates"])
    assert {r["currency"] for r in ev["fx.rates"]} == CURRENCY
    first = min(_when(e) for t in TOPICS[:-1] for e in ev[t])
    assert all(min(v)[0] <= first for v in rates.book.values())
    for e in ev["payments.transactions"]:
        rates.usd(e["amount"], e["currency"], _when(e))
    truth = defaultdict(float)
    for day in days:
        for row in day.truth.iter_rows(named=True):
            truth[row["crossing_id"]] += row["value_usd"]
    assessed = 0
    for e in ev["customs.inspections"]:
        usd = sum(rates.usd(i["assessed_value"], i["currency"], _when(e)) for i in e["items"])
        assert usd == pytest.approx(truth.get(e["crossing_id"], 0.0), rel=1e-6, abs=0.01)
        assessed += bool(e["items"])
    assert assessed >= 5
    declared = true = 0.0
    for e in ev["travellers.declarations"]:
        declared += sum(rates.usd(i["value"], i["currency"], _when(e)) for i in e["items"])
        true += truth[e["crossing_id"]]
    assert 0.3 < declared / true < 0.95  # declarers under-declare


def test_traders_cross_often_with_large_bounded_loads(world, days):
    _, _, ev = world
    trips = Counter(e["traveller_id"] for e in ev["border.departures"])
    frequent = {t for t, n in trips.items() if n >= 2}
    assert frequent
    per_trip = pl.concat([d.truth for d in days]).group_by("crossing_id").agg(pl.col("value_usd").sum())
    assert per_trip["value_usd"].max() < 500_000
    traders = {e["crossing_id"] for e in ev["border.departures"] if e["traveller_id"] in frequent}
    mean_trader = per_trip.filter(pl.col("crossing_id").is_in(traders))["value_usd"].mean()
    mean_other = per_trip.filter(~pl.col("crossing_id").is_in(traders))["value_usd"].mean()
    assert mean_trader > 5 * mean_other


def test_the_contract_decoder_accepts_every_line(world):
    contract = pytest.importorskip("streams.pipeline.contract")
    out, _, _ = world
    for topic, lines in _read(out).items():
        for raw in lines:
            event = contract.decode(topic, raw)
            assert not isinstance(event, contract.Rejection), (topic, event, raw)


# --------------------------------------------------------------------------- faults


@pytest.fixture(scope="module")
def faulty(tmp_path_factory):
    clean, bad = tmp_path_factory.mktemp("clean"), tmp_path_factory.mktemp("faulty")
    clean_summary = simulate(clean, dataclasses.replace(FAULTY, faults=False))
    bad_summary = simulate(bad, FAULTY)
    return clean, clean_summary, bad, bad_summary


def _parses(raw: bytes) -> bool:
    try:
        return isinstance(json.loads(raw), dict)
    except ValueError:
        return False


def test_faults_add_duplicates_and_malformed_lines_but_never_change_truth(faulty):
    clean, clean_summary, bad, summary = faulty
    assert (clean / "truth.parquet").read_bytes() == (bad / "truth.parquet").read_bytes()
    assert summary.events == clean_summary.events
    assert summary.duplicates and summary.late and summary.malformed
    clean_lines, bad_lines = _read(clean), _read(bad)
    duplicated = malformed = 0
    for t in TOPICS:
        counts = Counter(bad_lines[t])
        duplicated += sum(n - 1 for n in counts.values())
        # every clean line survives; what is new is duplicates or malformed twins
        assert set(clean_lines[t]) <= set(counts)
        extra = set(counts) - set(clean_lines[t])
        malformed += len(extra)
        assert len(bad_lines[t]) == len(clean_lines[t]) + sum(n - 1 for n in counts.values()) + sum(
            counts[x] for x in extra)
    assert duplicated == summary.duplicates
    assert malformed == summary.malformed
    assert any(not _parses(raw) for t in TOPICS for raw in bad_lines[t])


def test_malformed_lines_are_rejected_by_the_contract_decoder(faulty):
    contract = pytest.importorskip("streams.pipeline.contract")
    clean, _, bad, summary = faulty
    clean_lines, reasons = _read(clean), Counter()
    for t, lines in _read(bad).items():
        known = set(clean_lines[t])
        for raw in lines:
            event = contract.decode(t, raw)
            if raw in known:
                assert not isinstance(event, contract.Rejection), raw
            else:
                assert isinstance(event, contract.Rejection), (t, raw)
                reasons[event.reason.split(":")[0]] += 1
    assert sum(reasons.values()) == summary.malformed
    assert {"not_json", "missing_field", "unknown_code", "bad_timestamp"} <= set(reasons)


def test_late_and_out_of_order_lines(faulty):
    _, _, bad, _ = faulty
    late = 0
    for day in iter_days(FAULTY):
        for raw in day.events["border.departures"]:
            if _parses(raw):
                event = json.loads(raw)
                if "event_time" in event and TIME.match(event["event_time"]):
                    late += (day.date - _when(event).date()).days >= 1
    assert late > 0
    times = [json.loads(raw)["event_time"] for raw in _read(bad)["border.departures"]
             if _parses(raw) and TIME.match(json.loads(raw).get("event_time", ""))]
    assert times != sorted(times)


def test_no_faults_means_no_duplicates_and_ordered_days(world):
    out, summary, ev = world
    assert summary.duplicates == summary.late == summary.malformed == 0
    assert summary.lines == summary.events
    for t in TOPICS:
        assert len({e["event_id"] for e in ev[t]}) == len(ev[t])


# --------------------------------------------------------------------------- calibration


def test_scale_one_calibration_over_a_sampled_year(tmp_path):
    """One week in four of 2026-27 at scale 0.02, blown up to a year at scale 1."""
    scale, every = 0.02, 4
    departures = informal = formal = 0.0
    for k in range(52 // every):
        config = WorldConfig(seed=3, start=dt.date(2026, 3, 2) + dt.timedelta(weeks=every * k),
                             weeks=1, scale=scale)
        summary = simulate(tmp_path / str(k), config)
        departures += summary.departures
        informal += summary.truth_total_usd
        formal += summary.formal_handicraft_usd
    per_year = every / scale
    assert departures * per_year == pytest.approx(12e6, rel=0.25)
    assert 150e6 < informal * per_year < 400e6
    assert 150e6 < formal * per_year < 400e6
