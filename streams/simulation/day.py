"""One simulated day: its departures and what they carry, declare, have inspected and pay
by card, plus that day's formal exports, as event lines and the carried items (the truth).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from streams.pipeline.contract import DECLARATIONS, DEPARTURES, EXPORTS, INSPECTIONS, PAYMENTS
from estimators.reference import CATEGORIES, DESTINATION_REGIONS
from streams.simulation import world
from streams.simulation.draws import (
    NS_CARD,
    NS_CROSSING,
    NS_DOMESTIC_CARD,
    NS_EV_DECL,
    NS_EV_DEP,
    NS_EV_EXP,
    NS_EV_INSP,
    NS_EV_PAY,
    NS_EXPORT,
    NS_EXPORTER,
    NS_MERCHANT,
    NS_TRADER,
    NS_TRADER_CARD,
    NS_TRAVELLER,
    STREAM_DAY,
    STREAM_EXPORTERS,
    STREAM_TRADERS,
    cdf_of,
    cdf_of_weights,
    cdf_rows,
    draw,
    id_key,
    lognormal_cents,
    pseudonyms,
    random_stream,
    splitmix,
)
from streams.simulation.fx import FxPath, fx_path
from streams.simulation.render import (
    amount_json,
    codes_of,
    event_time_json,
    join_items,
    json_line,
    quoted,
)

if TYPE_CHECKING:
    from streams.simulation.simulator import WorldConfig


@dataclass
class World:
    """Everything fixed for a whole simulation: rates, pools, fx path, window."""

    config: WorldConfig
    first_day: int  # epoch day of config.start
    salt: np.uint64
    base_res: np.ndarray
    base_vis: np.ndarray
    pilgrims: float
    trader_post: np.ndarray
    trader_nat: np.ndarray
    trader_dest: np.ndarray
    trader_rate: np.ndarray
    trader_ids: np.ndarray
    trader_load: np.ndarray
    exporter_post: np.ndarray
    exporter_house: np.ndarray
    exporter_cdf: np.ndarray
    exporter_ids: np.ndarray
    fx: FxPath

    @property
    def window(self) -> tuple[int, int]:
        """Local-seconds bounds [start, end) of the simulated days."""
        return self.first_day * world.DAY_S, (self.first_day + self.config.days) * world.DAY_S


def build_world(config: WorldConfig) -> World:
    if config.seed < 0 or config.weeks < 1 or config.scale <= 0:
        raise ValueError("seed must be >= 0, weeks >= 1 and scale > 0")
    first = world.epoch_day(config.start)
    lookahead = world.PURCHASE_DAYS_BEFORE + 1
    for d in range(-1, config.days + lookahead + 4):
        day = config.start + dt.timedelta(d)
        for hour in (0, 23):
            off = dt.datetime(day.year, day.month, day.day, hour, tzinfo=world.TEHRAN).utcoffset()
            if off != dt.timedelta(hours=3, minutes=30):
                raise ValueError(f"{day}: Asia/Tehran is not +03:30 then; simulate from 2023 on")
    s = config.scale
    mean_res, mean_vis = world.mean_season()
    trader_trips = config.traders * config.trader_trips_per_year
    others = max(config.departures_per_year - config.arbaeen_pilgrims - trader_trips, 0.0)
    share = np.diff(cdf_of_weights(world.POST_SHARE, world.P), prepend=0.0)
    vis = np.array([world.VISITOR_SHARE[p] for p in world.POSTS])
    per_day = others * s / 365 * share
    rng = random_stream(config.seed, STREAM_TRADERS, 0)
    n_traders = max(1, round(config.traders * s))
    t_post = draw(rng, cdf_of_weights(world.TRADER_POST, world.P), n=n_traders)
    nat_rows = cdf_rows([world.TRADER_NATIONALITY.get(p, world.TRADER_OTHER_NATIONALITY)
                         for p in world.POSTS], world.C)
    t_nat = draw(rng, nat_rows, t_post)
    dest_rows = cdf_rows([world.TRADER_AIR_DEST if world.MODE[i] == world.AIR
                          else world.DEST_BY_POST[p] for i, p in enumerate(world.POSTS)], world.C)
    t_dest = draw(rng, dest_rows, t_post)
    mean_rate = config.trader_trips_per_year / 365
    t_rate = np.minimum(rng.gamma(2.0, mean_rate / 2, n_traders), 0.4)
    if config.trader_load_sd > 0:  # drawn after the calibrated world's draws, so they stay
        sd = config.trader_load_sd
        t_load = np.exp(sd * rng.standard_normal(n_traders) - sd * sd / 2)
    else:
        t_load = np.ones(n_traders)
    salt = splitmix(np.array([config.seed], dtype=np.uint64) ^ np.uint64(0x5EED5EED5EED5EED))[0]
    erng = random_stream(config.seed, STREAM_EXPORTERS, 0)
    n_exp = max(3, round(world.EXPORTERS * s))
    e_post = draw(erng, cdf_of_weights(world.EXPORT_POST, world.P), n=n_exp)
    e_house = (erng.random(n_exp) < world.P_HANDICRAFT_HOUSE).astype(int)
    e_weight = erng.exponential(1.0, n_exp)  # some exporters file more than others
    e_cdf = np.cumsum(e_weight / e_weight.sum())
    e_cdf[-1] = 1.0
    return World(
        config=config, first_day=first, salt=salt,
        base_res=per_day * (1 - vis) / mean_res, base_vis=per_day * vis / mean_vis,
        pilgrims=config.arbaeen_pilgrims * s,
        trader_post=t_post, trader_nat=t_nat, trader_dest=t_dest, trader_rate=t_rate,
        trader_ids=pseudonyms("T", id_key(NS_TRADER, 0, np.arange(n_traders)), salt),
        trader_load=t_load,
        exporter_post=e_post, exporter_house=e_house, exporter_cdf=e_cdf,
        exporter_ids=pseudonyms("EXP", id_key(NS_EXPORTER, 0, np.arange(n_exp)), salt),
        fx=fx_path(config.seed, first - world.PURCHASE_DAYS_BEFORE - 2,
                   first + config.days + lookahead + 4),
    )


@dataclass
class _DayOutput:
    """One generated day: event frames (columns t, line) per topic and the carried items."""

    frames: dict[str, pl.DataFrame]
    truth: pl.DataFrame | None
    formal_handicraft_usd: float = 0.0
    formal_total_usd: float = 0.0


def _time_of_day(rng: np.random.Generator, mode: np.ndarray) -> np.ndarray:
    hour = (rng.random(len(mode))[:, None] >= world.HOURS_CDF[mode]).sum(axis=1)
    return hour * 3600 + rng.integers(0, 3600, len(mode))


def generate_day(w: World, g: int) -> _DayOutput:
    """Day ``g`` of the window (g >= days: a look-ahead day that only contributes the card
    payments its travellers made inside the window)."""
    cfg = w.config
    date = cfg.start + dt.timedelta(g)
    ordinal = date.toordinal()
    day0 = (w.first_day + g) * world.DAY_S
    win_lo, win_hi = w.window
    in_window = g < cfg.days
    rng = random_stream(cfg.seed, STREAM_DAY, ordinal)

    # departures ---------------------------------------------------------------------
    res_m, vis_m, trader_m, pilgrim_share = world.season(date)
    wd = world.WEEKDAY_DEPARTURES[date.weekday()]
    posts = np.arange(len(world.POSTS))
    n_res = rng.poisson(w.base_res * res_m * wd)
    n_vis = rng.poisson(w.base_vis * vis_m * wd)
    n_pil = rng.poisson(w.pilgrims * pilgrim_share * world.PILGRIM_POST_P)
    on_trip = np.flatnonzero(rng.random(len(w.trader_rate)) < w.trader_rate * trader_m)
    post = np.concatenate([np.repeat(posts, n_res), np.repeat(posts, n_vis),
                           w.trader_post[on_trip], np.repeat(posts, n_pil)])
    sizes = [n_res.sum(), n_vis.sum(), len(on_trip), n_pil.sum()]
    group = np.repeat(np.arange(4), sizes)
    bounds = np.cumsum([0, *sizes])
    r, v, tr, pg = (slice(bounds[i], bounds[i + 1]) for i in range(4))
    n = len(post)
    nat = np.empty(n, dtype=np.int64)
    dest = np.empty(n, dtype=np.int64)
    nat[r] = draw(rng, world.RES_NAT_CDF, n=sizes[0])
    dest[r] = draw(rng, world.RES_DEST_CDF, post[r])
    nat[v] = draw(rng, world.VISITOR_NAT_CDF, post[v])
    d = draw(rng, world.RES_DEST_CDF, post[v])
    home = world.ALLOWED_HOME[post[v], nat[v]] & (rng.random(sizes[1]) < world.VISITOR_GOES_HOME)
    d[home] = nat[v][home]
    dest[v] = d
    nat[tr] = w.trader_nat[on_trip]
    d = w.trader_dest[on_trip].copy()
    elsewhere = rng.random(sizes[2]) >= world.TRADER_USUAL_MARKET
    d[elsewhere] = draw(rng, world.RES_DEST_CDF, post[tr][elsewhere])
    dest[tr] = d
    nat[pg] = draw(rng, world.PILGRIM_NAT_CDF, n=sizes[3])
    dest[pg] = world.C["IQ"]
    resident = np.zeros(n, dtype=bool)
    resident[r] = True
    resident[tr] = nat[tr] == world.C["IR"]
    resident[pg] = np.isin(nat[pg], [world.C["IR"], world.C["AF"]])
    t_dep = day0 + _time_of_day(rng, world.MODE[post])
    idx = np.arange(n)
    crossing = pseudonyms("X", id_key(NS_CROSSING, ordinal, idx), w.salt)
    traveller = pseudonyms("T", id_key(NS_TRAVELLER, ordinal, idx), w.salt)
    traveller[tr] = w.trader_ids[on_trip]
    trader_of = np.full(n, -1)
    trader_of[tr] = on_trip

    # carried handicrafts --------------------------------------------------------------
    carrier = np.flatnonzero(rng.random(n) < world.P_CARRY[group])
    lines = 1 + rng.poisson(world.EXTRA_LINES[group[carrier]])
    it_dep = np.repeat(carrier, lines)
    it_group = group[it_dep]
    cat = draw(rng, world.CATEGORY_CDF, it_group)
    is_trader = it_group == world.TRADER
    qty = 1 + rng.poisson(world.QTY_LAMBDA[cat])
    mean = (world.QTY_TRADER_MEAN[cat[is_trader]] * cfg.trader_load_factor
            * w.trader_load[trader_of[it_dep[is_trader]]])
    qty[is_trader] = np.minimum(1 + rng.negative_binomial(1.5, 1.5 / (1.5 + mean)),
                                world.QTY_TRADER_CAP[cat[is_trader]])
    unit = lognormal_cents(rng, world.UNIT_MEDIAN[cat], world.UNIT_SIGMA[cat], world.UNIT_CAP[cat])
    value = unit * qty  # true value in US cents
    n_items = len(it_dep)
    first_item = np.r_[True, it_dep[1:] != it_dep[:-1]] if n_items else np.zeros(0, bool)

    # declarations ----------------------------------------------------------------------
    declares = np.zeros(n, dtype=bool)
    declares[carrier] = rng.random(len(carrier)) < np.minimum(
        world.P_DECLARE[group[carrier]] * cfg.declare_factor, 1.0)
    t_insp = t_dep - rng.integers(300, 3600, n)
    lo = np.array([3600, 1800, 600])[world.MODE[post]]
    hi = np.array([6 * 3600, 4 * 3600, 2 * 3600])[world.MODE[post]]
    t_decl = t_insp - (lo + (rng.random(n) * (hi - lo)).astype(np.int64))
    factor = rng.beta(*world.UNDER_DECLARATION[group].T)
    decl_cur = draw(rng, cdf_of(world.DECLARATION_CURRENCY), n=n)
    home_cur = world.HOME_CURRENCY[nat]
    use_home = (home_cur >= 0) & (rng.random(n) < world.P_HOME_CURRENCY)
    decl_cur[use_home] = home_cur[use_home]
    it_declared = declares[it_dep] & ((rng.random(n_items) < world.P_ITEM_DECLARED) | first_item)
    noise = np.exp(0.1 * rng.standard_normal(n_items))
    it_has_hs = rng.random(n_items) < world.P_HS_CODE[it_group]
    it_hs = world.hs_codes(rng, cat)
    resale = rng.random(n) < world.P_RESALE[group]

    # inspections ------------------------------------------------------------------------
    base_p = np.array([world.P_RANDOM_INSPECTION[p] for p in world.POSTS]) * cfg.inspection_factor
    base_p[[world.P[p] for p in cfg.thin_posts]] *= cfg.thin_factor
    factors, p_factors = world.DAY_INSPECTION_FACTORS
    day_factor = rng.choice(factors, len(world.POSTS), p=p_factors)
    p_random = np.round(np.minimum(base_p * day_factor, 1.0), 6)[post]
    random_pick = rng.random(n) < p_random
    trip_value = np.bincount(it_dep, weights=value, minlength=n)
    p_target = np.where(group == world.TRADER, world.P_TARGETED_TRADER,
                        np.where(trip_value > world.BIG_LOAD_CENTS, world.P_TARGETED_BIG_LOAD,
                                 world.P_TARGETED_OTHER))
    targeted = ~random_pick & (rng.random(n) < p_target)
    insp_cur = draw(rng, cdf_of(world.INSPECTION_CURRENCY), n=n)

    frames: dict[str, pl.DataFrame] = {}
    truth = None
    if in_window:
        frames[DEPARTURES] = pl.DataFrame({
            "t": t_dep, "id": pseudonyms("BD", id_key(NS_EV_DEP, ordinal, idx), w.salt),
            "x": crossing, "tr": traveller, "post": codes_of(world.POSTS, post),
            "nat": codes_of(world.COUNTRIES, nat), "res": resident,
            "dest": codes_of(world.COUNTRIES, dest),
        }).select("t", line=json_line(
            '{"event_id":"§","event_time":"§","schema_version":1,"crossing_id":"§",'
            '"traveller_id":"§","border_post":"§","nationality":"§","resident":§,'
            '"destination_country":"§"}',
            "id", event_time_json(), "x", "tr", "post", "nat", pl.col("res").cast(pl.String),
            "dest"))

        # declarations
        decl = np.flatnonzero(declares)
        pos_of = np.full(n, -1)
        pos_of[decl] = np.arange(len(decl))
        di = np.flatnonzero(it_declared)
        di_dep = it_dep[di]
        d_cents = np.maximum(np.rint(value[di] * factor[di_dep] * noise[di]), 1).astype(np.int64)
        d_cur = decl_cur[di_dep]
        d_items = pl.DataFrame({
            "cat": codes_of(CATEGORIES, cat[di]),
            "hs": np.where(it_has_hs[di], np.strings.add(',"hs_code":', quoted(it_hs[di])), ""),
            "q": qty[di], "v": w.fx.to_minor(d_cents, d_cur, t_decl[di_dep]),
            "cur": codes_of(world.CURRENCIES, d_cur),
            "purpose": np.where(resale[di_dep], "resale", "personal"),
        }).select(json_line(
            '{"category":"§"§,"quantity":§,"value":§,"currency":"§","purpose":"§"}',
            "cat", "hs", "q", amount_json("v", "cur"), "cur", "purpose")).to_series()
        frames[DECLARATIONS] = pl.DataFrame({
            "t": t_decl[decl], "id": pseudonyms("TD", id_key(NS_EV_DECL, ordinal, decl), w.salt),
            "x": crossing[decl], "tr": traveller[decl], "post": codes_of(world.POSTS, post[decl]),
            "dest": codes_of(world.COUNTRIES, dest[decl]),
            "items": join_items(len(decl), pos_of[di_dep], d_items),
        }).select("t", line=json_line(
            '{"event_id":"§","event_time":"§","schema_version":1,"crossing_id":"§",'
            '"traveller_id":"§","border_post":"§","destination_country":"§","items":[§]}',
            "id", event_time_json(), "x", "tr", "post", "dest", "items"))

        # inspections
        insp = np.flatnonzero(random_pick | targeted)
        pos_of = np.full(n, -1)
        pos_of[insp] = np.arange(len(insp))
        ii = np.flatnonzero(pos_of[it_dep] >= 0)
        ii_dep = it_dep[ii]
        i_cur = insp_cur[ii_dep]
        i_items = pl.DataFrame({
            "cat": codes_of(CATEGORIES, cat[ii]), "q": qty[ii],
            "v": w.fx.to_minor(value[ii], i_cur, t_insp[ii_dep]),
            "cur": codes_of(world.CURRENCIES, i_cur),
        }).select(json_line('{"category":"§","quantity":§,"assessed_value":§,"currency":"§"}',
                            "cat", "q", amount_json("v", "cur"), "cur")).to_series()
        frames[INSPECTIONS] = pl.DataFrame({
            "t": t_insp[insp], "id": pseudonyms("CI", id_key(NS_EV_INSP, ordinal, insp), w.salt),
            "x": crossing[insp], "tr": traveller[insp], "post": codes_of(world.POSTS, post[insp]),
            "sel": np.where(random_pick[insp], "random", "targeted"),
            "p": np.where(random_pick[insp], p_random[insp], np.nan),
            "decl": declares[insp], "items": join_items(len(insp), pos_of[ii_dep], i_items),
        }).select("t", line=json_line(
            '{"event_id":"§","event_time":"§","schema_version":1,"crossing_id":"§",'
            '"traveller_id":"§","border_post":"§","selection":"§","selection_probability":§,'
            '"declared":§,"items":[§]}',
            "id", event_time_json(), "x", "tr", "post", "sel",
            pl.col("p").fill_nan(None).cast(pl.String).fill_null("null"),
            pl.col("decl").cast(pl.String), "items"))

        week = world.iso_week(date)
        truth = pl.DataFrame({
            "crossing_id": crossing[it_dep], "week": np.full(n_items, week),
            "border_post": codes_of(world.POSTS, post[it_dep]),
            "destination_region": codes_of(DESTINATION_REGIONS,
                                           world.REGION_OF_COUNTRY[dest[it_dep]]),
            "category": codes_of(CATEGORIES, cat), "quantity": qty.astype(np.int64),
            "value_usd": value / 100.0,
        }, schema_overrides={"quantity": pl.Int64, "value_usd": pl.Float64})

    # payments ---------------------------------------------------------------------------
    pay = _payments(w, g, rng, post=post, group=group, nat=nat, resident=resident, t_dep=t_dep,
                    traveller=traveller, trader_of=trader_of, it_dep=it_dep, cat=cat,
                    value=value, wd=wd, ordinal=ordinal, day0=day0, in_window=in_window)
    keep = (pay["t"] >= win_lo) & (pay["t"] < win_hi) & (pay["t0"] >= win_lo)
    frames[PAYMENTS] = _render_payments({k: a[keep] for k, a in pay.items()})

    out = _DayOutput(frames=frames, truth=truth)
    if in_window:
        frames[EXPORTS], out.formal_handicraft_usd, out.formal_total_usd = _exports(
            w, rng, date, ordinal, day0)
    return out


def _payments(w: World, g: int, rng: np.random.Generator, *, post, group, nat, resident,
              t_dep, traveller, trader_of, it_dep, cat, value, wd, ordinal, day0,
              in_window) -> dict[str, np.ndarray]:
    """Card payments: tourist cards of visitors (part of what they carry, plus other
    spending), domestic cards of residents who carry crafts, and the general public."""
    s = w.config.scale
    n = len(post)
    n_hc = len(world.HANDICRAFT_MCC)
    foreign = (group == world.VISITOR) & (nat != world.C["IR"])
    p_card_holder = world.P_TOURIST_CARD[world.MODE[post]]
    cfg = w.config
    if cfg.card_drop_week is not None and g >= 7 * cfg.card_drop_week:
        p_card_holder = p_card_holder * cfg.card_share_factor
    holder = foreign & (rng.random(n) < p_card_holder)
    city = draw(rng, world.CITY_BY_POST_CDF, post)
    home_city = draw(rng, world.CITY_POPULATION_CDF, n=n)
    n_domestic_cards = max(1, round(world.DOMESTIC_CARDS * s))
    pool_card = rng.integers(0, n_domestic_cards, n)
    card_key = np.where(holder, id_key(NS_CARD, ordinal, np.arange(n)),
                        id_key(NS_DOMESTIC_CARD, 0, pool_card))
    is_trader = trader_of >= 0
    card_key[is_trader] = id_key(NS_TRADER_CARD, 0, trader_of[is_trader])
    pay_city = np.where(holder | is_trader, city, home_city)

    def before_departure(dep: np.ndarray) -> np.ndarray:
        return t_dep[dep] - rng.integers(3600, world.PURCHASE_DAYS_BEFORE * world.DAY_S, len(dep))

    parts = []  # (dep or -1, mcc, usd cents, t)
    # crafts carried out, partly paid by card (tourist or domestic)
    p_card = np.where(holder[it_dep], world.P_CARD_FOR_ITEM,
                      np.where(resident[it_dep], world.P_DOMESTIC_CARD_FOR_ITEM, 0.0))
    paid = np.flatnonzero(rng.random(len(it_dep)) < p_card)
    share = rng.uniform(0.3, 1.0, len(paid))
    parts.append((it_dep[paid], world.MCC_OF_CATEGORY_IDX[cat[paid]],
                  np.maximum(np.rint(value[paid] * share), 1), before_departure(it_dep[paid])))
    holders = np.flatnonzero(holder)
    # crafts bought on a tourist card that never leave (gifts, shipped, used in Iran)
    extra = holders[rng.random(len(holders)) < world.P_HANDICRAFT_NOT_CARRIED]
    parts.append((extra, rng.integers(0, n_hc, len(extra)),
                  lognormal_cents(rng, np.full(len(extra), 25.0), np.full(len(extra), .9),
                                  np.full(len(extra), 2_000.0)), before_departure(extra)))
    # hotels, restaurants, groceries, transport
    k = rng.poisson(world.OTHER_PURCHASES_MEAN, len(holders)) + 1
    other = np.repeat(holders, k)
    parts.append((other, n_hc + draw(rng, cdf_of(world.OTHER_MCC_P), n=len(other)),
                  lognormal_cents(rng, np.full(len(other), 12.0), np.full(len(other), .9),
                                  np.full(len(other), 1_000.0)), before_departure(other)))
    dep = np.concatenate([p[0] for p in parts]).astype(np.int64)
    mcc = np.concatenate([p[1] for p in parts]).astype(np.int64)
    cents = np.concatenate([p[2] for p in parts]).astype(np.int64)
    t = np.concatenate([p[3] for p in parts]).astype(np.int64)
    tourist = holder[dep]
    tid = np.where(tourist, traveller[dep], "")
    keys = card_key[dep]
    pcity = pay_city[dep]
    if in_window:  # the general public shopping that day
        today = w.config.start + dt.timedelta(g)
        nowruz_shopping = 1 + 0.8 * world.bump(today, world.NOWRUZ, (3, 21), -7, 5.0)
        n_h = rng.poisson(world.PUBLIC_HANDICRAFT_PER_DAY * s * wd * nowruz_shopping)
        n_o = rng.poisson(world.PUBLIC_OTHER_PER_DAY * s * wd)
        m = n_h + n_o
        pub_mcc = np.concatenate([rng.integers(0, n_hc, n_h),
                                  n_hc + draw(rng, cdf_of(world.OTHER_MCC_P), n=n_o)])
        pub_cents = lognormal_cents(rng, np.r_[np.full(n_h, 18.0), np.full(n_o, 10.0)],
                                    np.r_[np.full(n_h, 1.1), np.full(n_o, 1.0)],
                                    np.r_[np.full(n_h, 3_000.0), np.full(n_o, 1_000.0)])
        dep = np.r_[dep, np.full(m, -1)]
        mcc = np.r_[mcc, pub_mcc]
        cents = np.r_[cents, pub_cents]
        t = np.r_[t, day0 + rng.integers(8 * 3600, 23 * 3600, m)]
        tourist = np.r_[tourist, np.zeros(m, bool)]
        tid = np.r_[tid, np.full(m, "")]
        keys = np.r_[keys, id_key(NS_DOMESTIC_CARD, 0, rng.integers(0, n_domestic_cards, m))]
        pcity = np.r_[pcity, draw(rng, world.CITY_POPULATION_CDF, n=m)]
    cur = np.where(tourist & (rng.random(len(t)) < 0.03), world.USD, world.IRR)
    amount = w.fx.to_minor(cents, cur, t)
    merchant = (pcity << 16) | (mcc << 8) | rng.integers(0, world.MERCHANTS_PER_CITY_MCC, len(t))
    n_p = len(t)
    ev = pseudonyms("PT", id_key(NS_EV_PAY, ordinal, np.arange(n_p)), w.salt)
    # refunds (part of the amount, hours to days later) and reversals (all of it, minutes later)
    u = rng.random(n_p)
    refund = np.flatnonzero(u < world.P_REFUND)
    reversal = np.flatnonzero((u >= world.P_REFUND) & (u < world.P_REFUND + world.P_REVERSAL))
    back = np.r_[refund, reversal]
    back_amount = np.r_[np.maximum(np.rint(amount[refund] * rng.uniform(.2, 1., len(refund))), 1),
                        amount[reversal]].astype(np.int64)
    back_t = t[back] + np.r_[rng.integers(3600, 3 * world.DAY_S, len(refund)),
                             rng.integers(60, 1800, len(reversal))]
    back_ev = pseudonyms("PT", id_key(NS_EV_PAY, ordinal, n_p + np.arange(len(back))), w.salt)
    kind = np.r_[np.zeros(n_p, int), np.ones(len(refund), int), np.full(len(reversal), 2)]
    return {
        "t": np.r_[t, back_t], "t0": np.r_[t, t[back]],
        "id": np.r_[ev, back_ev], "orig": np.r_[np.full(n_p, ""), ev[back]],
        "card": pseudonyms("C", np.r_[keys, keys[back]], w.salt),
        "tourist": np.r_[tourist, tourist[back]], "tid": np.r_[tid, tid[back]],
        "merchant": pseudonyms("M", id_key(NS_MERCHANT, 0, np.r_[merchant, merchant[back]]),
                               w.salt),
        "mcc": np.r_[mcc, mcc[back]], "city": np.r_[pcity, pcity[back]],
        "amount": np.r_[amount, back_amount], "cur": np.r_[cur, cur[back]], "kind": kind,
    }


def _render_payments(p: dict[str, np.ndarray]) -> pl.DataFrame:
    return pl.DataFrame({
        "t": p["t"], "id": p["id"], "card": p["card"],
        "type": np.where(p["tourist"], "tourist", "domestic"),
        "tid": np.where(p["tid"] == "", "null", quoted(p["tid"])),
        "merchant": p["merchant"], "mcc": codes_of(world.MCCS, p["mcc"]),
        "city": codes_of(world.CITIES, p["city"]),
        "v": p["amount"], "cur": codes_of(world.CURRENCIES, p["cur"]),
        "kind": codes_of(("purchase", "refund", "reversal"), p["kind"]),
        "orig": np.where(p["orig"] == "", "null", quoted(p["orig"])),
    }, schema_overrides={"t": pl.Int64, "v": pl.Int64}).select("t", line=json_line(
        '{"event_id":"§","event_time":"§","schema_version":1,"card_id":"§","card_type":"§",'
        '"traveller_id":§,"merchant_id":"§","mcc":"§","merchant_city":"§","amount":§,'
        '"currency":"§","kind":"§","original_event_id":§}',
        "id", event_time_json(), "card", "type", "tid", "merchant", "mcc", "city",
        amount_json("v", "cur"), "cur", "kind", "orig"))


def _exports(w: World, rng: np.random.Generator, date: dt.date, ordinal: int,
             day0: int) -> tuple[pl.DataFrame, float, float]:
    """Formal export declarations of the day, and their handicraft and total US dollars."""
    m = rng.poisson(w.config.export_declarations_per_day * w.config.scale
                    * world.WEEKDAY_EXPORTS[date.weekday()])
    exporter = np.searchsorted(w.exporter_cdf, rng.random(m), side="right")
    post = w.exporter_post[exporter]
    dest = draw(rng, world.EXPORT_DEST_CDF, post)
    t = day0 + rng.integers(8 * 3600, 16 * 3600, m)
    cur = draw(rng, cdf_of(world.EXPORT_CURRENCY), n=m)
    cur[(dest == world.C["IQ"]) & (rng.random(m) < .3)] = world.IQD
    cur[(dest == world.C["TR"]) & (rng.random(m) < .3)] = world.TRY
    lines = 1 + rng.poisson(1.2, m)
    it = np.repeat(np.arange(m), lines)
    k = len(it)
    craft = rng.random(k) < world.P_HANDICRAFT_LINE[w.exporter_house[exporter[it]]]
    category = draw(rng, world.CATEGORY_CDF[world.TRADER], n=k)
    other = rng.integers(0, len(world.FORMAL_OTHER_HS), k)
    med, sig, cap = np.where(craft[:, None], world.FORMAL_HANDICRAFT_VALUE,
                             world.FORMAL_OTHER_VALUE).T
    cents = lognormal_cents(rng, med.astype(float), sig, cap.astype(float))
    other_hs, other_unit = zip(*world.FORMAL_OTHER_HS, strict=True)
    hs = np.where(craft, world.hs_codes(rng, category), codes_of(other_hs, other))
    unit = np.where(craft, world.UNIT_MEDIAN[category], np.array(other_unit)[other])
    qty = np.maximum(np.rint(cents / 100 / unit), 1).astype(np.int64)
    items = pl.DataFrame({"hs": hs, "q": qty, "v": w.fx.to_minor(cents, cur[it], t[it]),
                          "cur": codes_of(world.CURRENCIES, cur[it])}).select(
        json_line('{"hs_code":"§","quantity":§,"value":§,"currency":"§"}',
                  "hs", "q", amount_json("v", "cur"), "cur")).to_series()
    idx = np.arange(m)
    frame = pl.DataFrame({
        "t": t, "id": pseudonyms("CE", id_key(NS_EV_EXP, ordinal, idx), w.salt),
        "decl": pseudonyms("EX", id_key(NS_EXPORT, ordinal, idx), w.salt),
        "exporter": w.exporter_ids[exporter], "post": codes_of(world.POSTS, post),
        "dest": codes_of(world.COUNTRIES, dest), "items": join_items(m, it, items),
    }).select("t", line=json_line(
        '{"event_id":"§","event_time":"§","schema_version":1,"declaration_id":"§",'
        '"exporter_id":"§","border_post":"§","destination_country":"§","items":[§]}',
        "id", event_time_json(), "decl", "exporter", "post", "dest", "items"))
    return frame, float(cents[craft].sum()) / 100, float(cents.sum()) / 100
