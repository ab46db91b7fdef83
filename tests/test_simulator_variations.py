"""World variations of the simulator (few declarers, thin posts, a tourist-card-share drop,
heavy and correlated repeat traders): each does what it says, and the defaults leave the
calibrated world unchanged."""

from __future__ import annotations

import json

import pytest

from streams.simulation.simulator import DECLARATIONS, DEPARTURES, INSPECTIONS, PAYMENTS, WorldConfig, simulate

BASE = dict(seed=5, weeks=2, scale=0.02)


def _events(tmp_path, name, **kw):
    out = tmp_path / name
    simulate(out, WorldConfig(**BASE, **kw))
    return {t: [json.loads(x) for x in (out / f"{t}.ndjson").read_bytes().splitlines()]
            for t in (DEPARTURES, DECLARATIONS, INSPECTIONS, PAYMENTS)}, out


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return _events(tmp_path_factory.mktemp("base"), "w")


def test_explicit_defaults_are_the_calibrated_world(base, tmp_path):
    _, out = base
    _, again = _events(tmp_path, "d", declare_factor=1.0, trader_load_factor=1.0, trader_load_sd=0.0,
                       card_drop_week=None, card_share_factor=1.0, inspection_factor=1.0,
                       thin_posts=(), thin_factor=1.0)
    for f in out.iterdir():
        assert (again / f.name).read_bytes() == f.read_bytes(), f.name


def test_few_declarers_declare_less_with_the_same_departures(base, tmp_path):
    ev, _ = base
    few, _ = _events(tmp_path, "few", declare_factor=0.3)
    assert len(few[DEPARTURES]) == len(ev[DEPARTURES])
    assert len(few[DECLARATIONS]) < 0.5 * len(ev[DECLARATIONS])


def test_thin_posts_lose_their_random_inspections(base, tmp_path):
    ev, _ = base
    thin, _ = _events(tmp_path, "thin", thin_posts=("IKA",), thin_factor=0.0)
    random_at = lambda e, post: sum(1 for i in e[INSPECTIONS] if i["border_post"] == post and i["selection"] == "random")  # noqa: E731
    assert random_at(ev, "IKA") > 0 and random_at(thin, "IKA") == 0
    assert random_at(thin, "MEH") + random_at(thin, "BAZ") > 0


def test_card_share_drop_removes_tourist_cards_of_later_departures(base, tmp_path):
    ev, _ = base
    drop, _ = _events(tmp_path, "drop", card_drop_week=1, card_share_factor=0.0)
    tourist = lambda e, day: sum(1 for p in e[PAYMENTS] if p["card_type"] == "tourist" and p["event_time"][:10] >= day)  # noqa: E731
    assert tourist(ev, "2026-03-12") > 0
    assert tourist(drop, "2026-03-12") == 0  # a week after the drop (purchases are < 7 days before leaving)
    assert len(drop[DEPARTURES]) == len(ev[DEPARTURES])


def test_heavy_correlated_traders_carry_more(tmp_path):
    import polars as pl

    _, light = _events(tmp_path, "light")
    _, heavy = _events(tmp_path, "heavy", trader_load_factor=3.0, trader_load_sd=0.8)
    total = lambda d: pl.read_parquet(d / "truth.parquet").filter(domain="total")["value_usd"].sum()  # noqa: E731
    assert total(heavy) > 1.3 * total(light)
