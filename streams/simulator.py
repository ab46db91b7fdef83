"""Reproducible border simulator: one seeded world of departures, declarations, inspections,
formal exports, card payments and exchange rates, with the true informal exports beside it.

Estimators can only be checked against a world whose truth is known, and the live feeder and
the archive must show the same world: both read :func:`iter_days`, and :func:`simulate` only
writes its days to files. Each day draws from its own random stream keyed by (seed, date),
so a day is the same whatever window it is simulated in; nothing reads the clock or global
random state. Counts and values are calibrated at ``scale=1`` to about 12 million departures
and about $250M of informal and $250M of formal handicraft exports a year (see
``bench/simulate_year.py`` for the measured figures).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final
from zoneinfo import ZoneInfo

import msgspec
import numpy as np
import polars as pl

from streams.reference import (
    BORDER_POSTS,
    CATEGORIES,
    CATEGORY_HS_HEADINGS,
    DESTINATION_REGIONS,
    DOMAINS,
    HANDICRAFT_MCCS,
    destination_region,
)

__all__ = [
    "TOPICS",
    "SimulatedDay",
    "SimulationSummary",
    "WorldConfig",
    "iter_days",
    "simulate",
    "truth_table",
]

# --------------------------------------------------------------------------- public types

DEPARTURES: Final = "border.departures"
DECLARATIONS: Final = "travellers.declarations"
INSPECTIONS: Final = "customs.inspections"
EXPORTS: Final = "customs.exports"
PAYMENTS: Final = "payments.transactions"
FX_RATES: Final = "fx.rates"
#: The contract's topics, in the order files and summaries list them.
TOPICS: Final[tuple[str, ...]] = (DEPARTURES, DECLARATIONS, INSPECTIONS, EXPORTS, PAYMENTS, FX_RATES)


@dataclass(frozen=True)
class WorldConfig:
    """Every knob of the simulated world; the defaults are the calibrated world."""

    seed: int = 1
    #: First simulated day (Asia/Tehran local date).
    start: dt.date = dt.date(2026, 3, 2)
    weeks: int = 12
    #: Multiplies every count of people, cards, merchants' customers and export declarations.
    scale: float = 1.0
    #: Duplicates, late and out-of-order lines, malformed lines. Never changes truth.
    faults: bool = False
    #: Departures a year at scale 1, Arbaeen pilgrims and suitcase traders' trips included.
    departures_per_year: float = 12_000_000
    #: Arbaeen pilgrims leaving in the fortnight before Arbaeen, mostly via Mehran/Shalamcheh.
    arbaeen_pilgrims: float = 1_800_000
    #: Repeat suitcase traders in the pool at scale 1, and their mean trips a year.
    traders: int = 1_500
    trader_trips_per_year: float = 15.0
    #: Formal export declarations filed on a working day at scale 1.
    export_declarations_per_day: float = 160.0
    #: Fault model (used only when ``faults``): share of lines re-emitted, share of
    #: departure-linked lines arriving days late, share of lines with a malformed twin,
    #: share of a day's lines shuffled out of order, and the longest delay in days.
    duplicate_rate: float = 0.01
    late_rate: float = 0.02
    malformed_rate: float = 0.001
    shuffle_rate: float = 0.05
    max_delay_days: int = 7

    @property
    def days(self) -> int:
        return 7 * self.weeks


@dataclass(frozen=True)
class SimulatedDay:
    """One simulated day as the feeder would publish it.

    ``events`` holds that day's JSON lines per topic in production order (late, duplicate
    and malformed lines included when faults are on); ``truth`` holds the handicraft items
    carried by the travellers who departed that day (see :data:`TRUTH_ITEM_COLUMNS`).
    """

    date: dt.date
    events: dict[str, list[bytes]]
    truth: pl.DataFrame


@dataclass(frozen=True)
class SimulationSummary:
    """What :func:`simulate` wrote, for the CLI to print and tests to check."""

    out_dir: Path
    days: int
    #: Lines written per topic (duplicates and malformed lines included).
    lines: dict[str, int]
    #: Distinct well-formed events per topic (what a perfect consumer counts).
    events: dict[str, int]
    duplicates: int
    late: int
    malformed: int
    departures: int
    truth_total_usd: float
    formal_handicraft_usd: float
    formal_total_usd: float


#: Columns of ``SimulatedDay.truth``: one row per carried item line.
TRUTH_ITEM_COLUMNS: Final[tuple[str, ...]] = (
    "crossing_id", "week", "border_post", "destination_region", "category", "quantity",
    "value_usd",
)

# --------------------------------------------------------------------------- world tables

POSTS: Final[tuple[str, ...]] = tuple(BORDER_POSTS)
_P: Final = {p: i for i, p in enumerate(POSTS)}
_AIR, _SEA, _LAND = 0, 1, 2
_MODE: Final = np.array([{"air": _AIR, "sea": _SEA, "land": _LAND}[BORDER_POSTS[p]["mode"]]
                         for p in POSTS])

#: Traveller groups; pilgrims are the Arbaeen surge, traders the repeat suitcase traders.
_RESIDENT, _VISITOR, _TRADER, _PILGRIM = 0, 1, 2, 3

COUNTRIES: Final[tuple[str, ...]] = (
    "IR", "IQ", "AF", "TR", "AZ", "AE", "RU", "CN", "DE", "IN", "PK", "LB", "FR", "IT", "GB",
    "SE", "ES", "NL", "JP", "KR", "SY", "QA", "OM", "KW", "BH", "SA", "AM", "GE", "TM", "KZ",
    "UZ", "MY", "TH", "CA", "US", "AU", "AT", "CH",
)
_C: Final = {c: i for i, c in enumerate(COUNTRIES)}
_REGION_OF_COUNTRY: Final = np.array([DESTINATION_REGIONS.index(destination_region(c))
                                      for c in COUNTRIES])

#: Share of the non-pilgrim departures by post (IKA largest; Iraq and Turkey land posts next).
_POST_SHARE: Final = {
    "IKA": .36, "MHD": .06, "SYZ": .035, "IFN": .025, "TBZ": .03, "KIH": .025, "BND": .025,
    "BUZ": .01, "ANZ": .005, "AMR": .005, "BAZ": .10, "ASR": .045, "NOR": .015, "SRK": .02,
    "MEH": .13, "SHL": .09,
}
#: Share of foreign visitors among a post's non-pilgrim departures.
_VISITOR_SHARE: Final = {
    "IKA": .45, "MHD": .55, "SYZ": .5, "IFN": .5, "TBZ": .35, "KIH": .3, "BND": .4, "BUZ": .3,
    "ANZ": .5, "AMR": .5, "BAZ": .45, "ASR": .5, "NOR": .4, "SRK": .6, "MEH": .55, "SHL": .55,
}
_PILGRIM_POST: Final = {"MEH": .58, "SHL": .32, "IKA": .06, "MHD": .04}
_TRADER_POST: Final = {
    "MEH": .15, "SHL": .12, "BAZ": .15, "ASR": .08, "NOR": .04, "SRK": .06, "IKA": .15,
    "BND": .08, "KIH": .05, "MHD": .04, "TBZ": .04, "ANZ": .02, "AMR": .02,
}

_GULF_DEST: Final = {"AE": .55, "OM": .15, "QA": .15, "KW": .1, "BH": .05}
_CASPIAN_DEST: Final = {"RU": .5, "KZ": .2, "AZ": .15, "TM": .15}
_AIR_DEST: Final = {
    "TR": .24, "AE": .2, "IQ": .12, "AM": .04, "GE": .04, "DE": .05, "RU": .03, "CN": .03,
    "QA": .03, "OM": .03, "MY": .03, "TH": .03, "IN": .02, "GB": .02, "FR": .02, "IT": .02,
    "CA": .02, "SE": .02, "AT": .01, "NL": .01, "AU": .01, "JP": .01, "KR": .01, "LB": .01,
    "SY": .01,
}
#: Where residents (and visitors not flying home) go from each post; land posts lead to
#: their neighbour only, Gulf ports to the Gulf, Caspian ports to the Caspian states.
_DEST_BY_POST: Final = {
    "IKA": _AIR_DEST, "MHD": {**_AIR_DEST, "IQ": .3}, "SYZ": _AIR_DEST, "IFN": _AIR_DEST,
    "TBZ": {**_AIR_DEST, "TR": .45}, "KIH": {"AE": .6, "TR": .15, "QA": .1, "OM": .05, "RU": .05, "IQ": .05},
    "BND": _GULF_DEST, "BUZ": _GULF_DEST, "ANZ": _CASPIAN_DEST, "AMR": _CASPIAN_DEST,
    "BAZ": {"TR": 1}, "ASR": {"AZ": 1}, "NOR": {"AM": 1}, "SRK": {"TM": 1}, "MEH": {"IQ": 1},
    "SHL": {"IQ": 1},
}
_AIR_VISITORS: Final = {
    "IQ": .15, "AF": .05, "TR": .08, "AZ": .04, "AE": .04, "RU": .06, "CN": .08, "DE": .06,
    "IN": .06, "PK": .04, "LB": .04, "FR": .04, "IT": .04, "GB": .03, "IR": .12, "SE": .02,
    "ES": .02, "JP": .02, "KR": .01, "SY": .02, "QA": .01, "OM": .01, "KW": .01, "NL": .02,
    "AT": .01, "CH": .01, "CA": .01, "AU": .01, "US": .01,
}
_CULTURE_VISITORS: Final = {
    "IQ": .2, "AE": .1, "QA": .05, "KW": .05, "OM": .05, "DE": .1, "FR": .08, "IT": .08,
    "CN": .08, "IR": .1, "RU": .05, "GB": .06, "ES": .03, "NL": .03, "JP": .03,
}
#: Nationalities of the foreign visitors leaving by each post ("IR" = Iranians living abroad).
_VISITORS_BY_POST: Final = {
    "IKA": _AIR_VISITORS,
    "MHD": {"IQ": .45, "AF": .15, "PK": .08, "BH": .05, "KW": .05, "LB": .05, "IR": .05,
            "IN": .04, "TR": .03, "AE": .05},
    "SYZ": _CULTURE_VISITORS, "IFN": _CULTURE_VISITORS,
    "TBZ": {"TR": .35, "AZ": .25, "IQ": .15, "IR": .1, "DE": .05, "RU": .05, "GE": .05},
    "KIH": {"AE": .4, "QA": .1, "OM": .1, "IR": .2, "KW": .05, "RU": .1, "CN": .05},
    "BND": {"AE": .5, "OM": .15, "QA": .1, "IR": .1, "IN": .1, "PK": .05},
    "BUZ": {"QA": .3, "KW": .2, "AE": .2, "IR": .1, "BH": .1, "OM": .1},
    "ANZ": {"RU": .5, "AZ": .2, "KZ": .15, "TM": .1, "IR": .05},
    "AMR": {"RU": .4, "KZ": .3, "TM": .1, "AZ": .1, "IR": .1},
    "BAZ": {"TR": .6, "IR": .1, "DE": .05, "GB": .03, "AZ": .05, "IQ": .05, "FR": .03,
            "NL": .03, "GE": .03, "RU": .03},
    "ASR": {"AZ": .75, "RU": .15, "IR": .05, "GE": .05},
    "NOR": {"AM": .8, "IR": .05, "RU": .1, "GE": .05},
    "SRK": {"TM": .6, "AF": .3, "UZ": .05, "IR": .05},
    "MEH": {"IQ": .85, "PK": .05, "AF": .05, "IR": .05},
    "SHL": {"IQ": .9, "AF": .02, "PK": .03, "IR": .05},
}
_RESIDENT_NATIONALITY: Final = {"IR": .95, "AF": .04, "IQ": .01}
_PILGRIM_NATIONALITY: Final = {"IR": .94, "AF": .03, "PK": .02, "IN": .01}
_TRADER_NATIONALITY: Final = {
    "MEH": {"IR": .55, "IQ": .45}, "SHL": {"IR": .55, "IQ": .45}, "BAZ": {"IR": .7, "TR": .3},
    "ASR": {"IR": .6, "AZ": .4}, "SRK": {"IR": .5, "TM": .2, "AF": .3},
    "NOR": {"IR": .7, "AM": .3}, "ANZ": {"IR": .6, "RU": .4}, "AMR": {"IR": .6, "RU": .4},
}
_TRADER_OTHER_NATIONALITY: Final = {"IR": .85, "AF": .05, "IQ": .05, "AE": .05}
_TRADER_AIR_DEST: Final = {
    "AE": .3, "IQ": .25, "TR": .15, "RU": .08, "AZ": .05, "AM": .04, "GE": .04, "DE": .05,
    "CN": .04,
}
#: Chance that a visitor not Iranian goes straight home, when the post serves home.
_VISITOR_GOES_HOME: Final = 0.75
_TRADER_USUAL_MARKET: Final = 0.85

#: Iranian weekend (Thursday, Friday) travel is a little heavier.
_WEEKDAY_DEPARTURES: Final = np.array([.97, .97, .96, 1.12, 1.05, .95, .98])  # Mon..Sun
_WEEKDAY_EXPORTS: Final = np.array([1.15, 1.15, 1.15, .6, .15, 1.15, 1.15])
#: Hour-of-day weights of departures by mode (air through the night, land and sea by day).
_HOURS: Final = np.array([
    [6, 7, 7, 6, 5, 4, 3, 3, 3, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 5, 5, 5, 6],
    [0, 0, 0, 0, 0, 0, 0, 2, 4, 5, 5, 5, 5, 5, 5, 5, 4, 3, 2, 1, 0, 0, 0, 0],
    [0, 0, 0, 0, 0, 0, 1, 3, 5, 6, 6, 6, 6, 6, 6, 6, 5, 5, 4, 3, 2, 1, 1, 0],
], dtype=float)

# Nowruz (1 Farvardin) and Arbaeen (20 Safar) dates; years outside the table fall back to
# 21 March and to Arbaeen 2026 moved by whole lunar years.
_NOWRUZ: Final = {y: dt.date.fromisoformat(d) for y, d in {
    2023: "2023-03-21", 2024: "2024-03-20", 2025: "2025-03-21", 2026: "2026-03-21",
    2027: "2027-03-21", 2028: "2028-03-20", 2029: "2029-03-20", 2030: "2030-03-21"}.items()}
_ARBAEEN: Final = {y: dt.date.fromisoformat(d) for y, d in {
    2023: "2023-09-06", 2024: "2024-08-25", 2025: "2025-08-14", 2026: "2026-08-04",
    2027: "2027-07-25", 2028: "2028-07-13", 2029: "2029-07-03", 2030: "2030-06-22"}.items()}
_LUNAR_YEAR_DAYS: Final = 354.367

# Carrying: chance a traveller of each group carries handicrafts, extra item lines, the
# category mix, and whether they declare and by how much they under-declare (Beta a, b).
_P_CARRY: Final = np.array([.024, .085, .97, .03])
_EXTRA_LINES: Final = np.array([.35, .5, 1.2, .2])
_CATEGORY_MIX: Final = [
    {"carpet": .15, "kilim": .1, "textiles": .2, "ceramics": .1, "metalwork": .1,
     "jewelry": .15, "woodwork": .1, "basketry": .1},
    {"carpet": .12, "kilim": .1, "textiles": .18, "ceramics": .15, "metalwork": .15,
     "jewelry": .12, "woodwork": .1, "basketry": .08},
    {"carpet": .45, "kilim": .2, "textiles": .12, "ceramics": .05, "metalwork": .08,
     "jewelry": .06, "woodwork": .03, "basketry": .01},
    {"carpet": .05, "kilim": .05, "textiles": .35, "ceramics": .05, "metalwork": .1,
     "jewelry": .3, "woodwork": .05, "basketry": .05},
]
_P_DECLARE: Final = np.array([.25, .35, .6, .2])
_UNDER_DECLARATION: Final = np.array([[7, 3], [8, 3], [6, 5], [7, 3]], dtype=float)
_P_ITEM_DECLARED: Final = 0.85
_P_HS_CODE: Final = np.array([.4, .4, .8, .3])
_P_RESALE: Final = np.array([.03, .05, 1.0, .01])

_K: Final = {c: i for i, c in enumerate(CATEGORIES)}
#: Unit value in USD per category: median, log-sd, cap (carpets heavy-tailed but bounded).
_UNIT_VALUE: Final = {
    "carpet": (350, 1.0, 12_000), "kilim": (120, .8, 3_000), "textiles": (35, .8, 1_500),
    "ceramics": (30, .8, 1_000), "metalwork": (45, .9, 2_000), "jewelry": (70, 1.1, 5_000),
    "woodwork": (35, .8, 1_500), "basketry": (15, .6, 300),
}
#: Pieces per item line: travellers 1 + Poisson(lam); traders 1 + NegBin(mean, shape 1.5), capped.
_QTY_TRAVELLER: Final = {"carpet": .1, "kilim": .2, "textiles": .8, "ceramics": 1.0,
                         "metalwork": .6, "jewelry": .8, "woodwork": .6, "basketry": .8}
_QTY_TRADER: Final = {"carpet": (5, 40), "kilim": (7, 60), "textiles": (19, 200),
                      "ceramics": (19, 200), "metalwork": (19, 200), "jewelry": (19, 200),
                      "woodwork": (19, 200), "basketry": (19, 200)}

# Inspections: the random-selection probability of each post (and, on some days, half or
# double it), then targeting of suspicious travellers among those not picked at random.
_P_RANDOM_INSPECTION: Final = {
    "IKA": .01, "MHD": .015, "SYZ": .02, "IFN": .02, "TBZ": .02, "KIH": .025, "BND": .03,
    "BUZ": .03, "ANZ": .03, "AMR": .03, "BAZ": .015, "ASR": .02, "NOR": .03, "SRK": .02,
    "MEH": .005, "SHL": .005,
}
_DAY_INSPECTION_FACTORS: Final = (np.array([.5, 1.0, 2.0]), np.array([.1, .8, .1]))
_P_TARGETED_TRADER: Final = 0.2
_P_TARGETED_BIG_LOAD: Final = 0.05
_BIG_LOAD_CENTS: Final = 200_000
_P_TARGETED_OTHER: Final = 0.0005

CURRENCIES: Final[tuple[str, ...]] = ("IRR", "USD", "EUR", "AED", "IQD", "TRY")
_DECIMALS: Final = np.array([0, 2, 2, 2, 0, 2])
_IRR, _USD, _EUR, _AED, _IQD, _TRY = range(6)
#: Units per USD at 2026-01-01, yearly drift, daily volatility, updates a day.
_FX_MODEL: Final = {
    "IRR": (1_000_000.0, .25, .010, 4), "USD": (1.0, 0.0, 0.0, 1), "EUR": (.92, 0.0, .004, 1),
    "AED": (3.6725, 0.0, .0002, 1), "IQD": (1310.0, 0.0, .001, 1), "TRY": (43.0, .25, .003, 1),
}
_FX_ANCHOR: Final = dt.date(2026, 1, 1)
_FX_SCALE: Final = 10_000  # rates are published with four decimals
_DECLARATION_CURRENCY: Final = np.array([.65, .15, .08, .05, .04, .03])
_INSPECTION_CURRENCY: Final = np.array([.9, .07, .03, 0, 0, 0])
_HOME_CURRENCY: Final = np.array([
    {"IQ": _IQD, "TR": _TRY, "AE": _AED, "QA": _AED, "OM": _AED, "KW": _AED, "BH": _AED,
     "SA": _AED, "DE": _EUR, "FR": _EUR, "IT": _EUR, "ES": _EUR, "NL": _EUR, "AT": _EUR,
     "US": _USD}.get(c, -1) for c in COUNTRIES])
_P_HOME_CURRENCY: Final = 0.4

# Payments.
_CITIES: Final[tuple[str, ...]] = (
    "Tehran", "Isfahan", "Shiraz", "Mashhad", "Tabriz", "Kashan", "Yazd", "Qom", "Kish",
    "Bandar Abbas", "Bushehr", "Rasht", "Sari", "Urmia", "Ardabil", "Kermanshah", "Ahvaz",
    "Kerman",
)
_CITY_BY_POST: Final = {
    "IKA": {"Tehran": .45, "Isfahan": .2, "Shiraz": .1, "Kashan": .08, "Yazd": .07,
            "Tabriz": .03, "Mashhad": .04, "Qom": .03},
    "MHD": {"Mashhad": .8, "Tehran": .1, "Qom": .1},
    "SYZ": {"Shiraz": .7, "Isfahan": .15, "Yazd": .1, "Tehran": .05},
    "IFN": {"Isfahan": .7, "Kashan": .1, "Yazd": .1, "Tehran": .1},
    "TBZ": {"Tabriz": .8, "Tehran": .1, "Ardabil": .1}, "KIH": {"Kish": .9, "Tehran": .1},
    "BND": {"Bandar Abbas": .7, "Shiraz": .1, "Kerman": .1, "Tehran": .1},
    "BUZ": {"Bushehr": .6, "Shiraz": .3, "Tehran": .1}, "ANZ": {"Rasht": .7, "Tehran": .3},
    "AMR": {"Sari": .6, "Tehran": .4}, "BAZ": {"Tabriz": .5, "Tehran": .3, "Urmia": .2},
    "ASR": {"Rasht": .4, "Ardabil": .3, "Tehran": .3}, "NOR": {"Tabriz": .7, "Tehran": .3},
    "SRK": {"Mashhad": .9, "Tehran": .1},
    "MEH": {"Qom": .3, "Mashhad": .3, "Tehran": .2, "Kermanshah": .2},
    "SHL": {"Qom": .2, "Mashhad": .3, "Tehran": .1, "Ahvaz": .4},
}
_CITY_POPULATION: Final = {
    "Tehran": 9, "Isfahan": 2.2, "Shiraz": 1.8, "Mashhad": 3.3, "Tabriz": 1.6, "Kashan": .4,
    "Yazd": .6, "Qom": 1.3, "Kish": .04, "Bandar Abbas": .6, "Bushehr": .25, "Rasht": .7,
    "Sari": .35, "Urmia": .75, "Ardabil": .55, "Kermanshah": .95, "Ahvaz": 1.2, "Kerman": .55,
}
_HANDICRAFT_MCC: Final[tuple[str, ...]] = tuple(sorted(HANDICRAFT_MCCS))
#: Where each category is bought: carpets at floor-covering shops, jewellery at jewellers,
#: the rest at souvenir shops, galleries and craft shops.
_MCC_OF_CATEGORY: Final = {"carpet": "5713", "kilim": "5713", "jewelry": "5944",
                           "textiles": "5947", "basketry": "5947", "woodwork": "5947",
                           "ceramics": "5971", "metalwork": "5971"}
_OTHER_MCC: Final[tuple[str, ...]] = ("5812", "5411", "7011", "4121", "5311", "5999", "4722", "5691")
_OTHER_MCC_P: Final = np.array([.3, .2, .15, .1, .08, .07, .05, .05])
_MCCS: Final[tuple[str, ...]] = _HANDICRAFT_MCC + _OTHER_MCC
_MERCHANTS_PER_CITY_MCC: Final = 60
_P_TOURIST_CARD: Final = np.array([.15, .08, .04])  # by mode, foreign visitors only
_P_CARD_FOR_ITEM: Final = 0.45
_P_DOMESTIC_CARD_FOR_ITEM: Final = 0.3
_P_HANDICRAFT_NOT_CARRIED: Final = 0.2
_OTHER_PURCHASES_MEAN: Final = 3.0
_PURCHASE_DAYS_BEFORE: Final = 7
_DOMESTIC_CARDS: Final = 3_000_000
_PUBLIC_HANDICRAFT_PER_DAY: Final = 6_000.0
_PUBLIC_OTHER_PER_DAY: Final = 9_000.0
_P_REFUND, _P_REVERSAL = 0.01, 0.005

# Formal exports: a pool of exporters, each at a home post; handicraft houses file mostly
# handicraft lines, the others pistachios, saffron, dates, petrochemicals and the like.
_EXPORTERS: Final = 1_500
_EXPORT_POST: Final = {
    "BND": .35, "IKA": .15, "BAZ": .12, "MEH": .06, "SHL": .06, "BUZ": .06, "ASR": .04,
    "SRK": .04, "AMR": .04, "ANZ": .03, "NOR": .02, "MHD": .02, "TBZ": .01,
}
_EXPORT_DEST_BY_MODE: Final = {
    _AIR: {"AE": .2, "DE": .15, "CN": .1, "IQ": .1, "TR": .1, "RU": .05, "JP": .05,
           "GB": .05, "IT": .05, "FR": .05, "QA": .05, "KW": .05},
    _SEA: {"AE": .45, "CN": .15, "IN": .1, "OM": .1, "QA": .05, "KW": .05, "IQ": .05,
           "RU": .05},
}
_P_HANDICRAFT_HOUSE: Final = 0.4
_P_HANDICRAFT_LINE: Final = np.array([.05, .85])
_FORMAL_HANDICRAFT_VALUE: Final = (2_800, 1.2, 500_000)
_FORMAL_OTHER_VALUE: Final = (45_000, 1.3, 5_000_000)
#: Non-handicraft HS codes: (code, USD per unit of quantity).
_FORMAL_OTHER_HS: Final = (
    ("080251", 8.0), ("080252", 9.0), ("091020", 900.0), ("080410", 1.2), ("390120", 1.0),
    ("390110", 1.1), ("720712", .5), ("252329", .05), ("760110", 2.2), ("080510", .6),
    ("330190", 30.0), ("170490", 5.0), ("080620", 2.0),
)
_EXPORT_CURRENCY: Final = np.array([.15, .35, .2, .2, .05, .05])

_HS_SUFFIXES: Final = ("10", "90", "20", "00")

# --------------------------------------------------------------------------- small helpers

_EPOCH_ORDINAL: Final = dt.date(1970, 1, 1).toordinal()
_DAY_S: Final = 86_400
_TS: Final = "%Y-%m-%dT%H:%M:%S+03:30"
_TEHRAN: Final = ZoneInfo("Asia/Tehran")
_STREAM_DAY, _STREAM_TRADERS, _STREAM_FX, _STREAM_FAULTS, _STREAM_EXPORTERS = 1, 2, 3, 4, 5
# id namespaces (top byte of the key mixed into an id)
(_NS_TRAVELLER, _NS_CROSSING, _NS_TRADER, _NS_CARD, _NS_TRADER_CARD, _NS_DOMESTIC_CARD,
 _NS_MERCHANT, _NS_EXPORTER, _NS_EXPORT, _NS_EV_DEP, _NS_EV_DECL, _NS_EV_INSP, _NS_EV_EXP,
 _NS_EV_PAY, _NS_EV_FAULT) = range(1, 16)


def _rng(seed: int, stream: int, key: int) -> np.random.Generator:
    """An independent stream per (seed, purpose, key), so days never share random state."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, stream, key])))


def _mix(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser: a bijection, so distinct keys give distinct opaque ids."""
    x = np.asarray(x, dtype=np.uint64).copy()
    x ^= x >> np.uint64(30)
    x *= np.uint64(0xBF58476D1CE4E5B9)
    x ^= x >> np.uint64(27)
    x *= np.uint64(0x94D049BB133111EB)
    x ^= x >> np.uint64(31)
    return x


def _key(ns: int, ordinal: int, idx: np.ndarray) -> np.ndarray:
    """Id key: namespace, day and running number, unique across the world."""
    idx = np.asarray(idx, dtype=np.uint64)
    assert idx.size == 0 or int(idx.max()) < 1 << (24 if ordinal else 56), "id space exhausted"
    return (np.uint64(ns) << np.uint64(56)) | (np.uint64(ordinal) << np.uint64(24)) | idx


def _ids(prefix: str, keys: np.ndarray, salt: np.uint64) -> np.ndarray:
    """Pseudonymous ids ``prefix + 16 hex digits`` (a seeded bijection of the keys)."""
    mixed = _mix(np.asarray(keys, dtype=np.uint64) + salt)
    hexes = np.frombuffer(mixed.astype(">u8").tobytes().hex().encode("ascii"), dtype="S16")
    return np.strings.add(prefix, hexes.astype("U16"))


def _cdf_of(p: np.ndarray) -> np.ndarray:
    """Cumulative distribution of weights (last axis), ending at exactly 1."""
    p = np.asarray(p, dtype=float)
    cdf = np.cumsum(p / p.sum(axis=-1, keepdims=True), axis=-1)
    cdf[..., -1] = 1.0
    return cdf


def _cdf(weights: dict[str, float], index: dict[str, int]) -> np.ndarray:
    row = np.zeros(len(index))
    for k, v in weights.items():
        row[index[k]] = v
    return _cdf_of(row)


def _cdf_rows(rows: list[dict[str, float]], index: dict[str, int]) -> np.ndarray:
    return np.stack([_cdf(r, index) for r in rows])


def _draw(rng: np.random.Generator, cdf: np.ndarray, rows: np.ndarray | None = None,
          n: int | None = None) -> np.ndarray:
    """Categorical draws: one cdf (``n`` draws) or one row of ``cdf`` per element of ``rows``."""
    if rows is None:
        return np.searchsorted(cdf, rng.random(n), side="right")
    u = rng.random(len(rows))
    return (u[:, None] >= cdf[rows]).sum(axis=1)


def _lognormal_cents(rng: np.random.Generator, median: np.ndarray, sigma: np.ndarray,
                     cap: np.ndarray) -> np.ndarray:
    usd = np.minimum(np.exp(np.log(median) + sigma * rng.standard_normal(len(median))), cap)
    return np.maximum(np.rint(usd * 100), 1).astype(np.int64)


def _bump(date: dt.date, table: dict[int, dt.date], default: tuple[int, int] | None,
          shift: int, sd: float) -> float:
    """Gaussian bump around the nearest yearly date (+ shift days) of a festival table."""
    best = 0.0
    for year in (date.year - 1, date.year, date.year + 1):
        centre = table.get(year) or (dt.date(year, *default) if default else None)
        if centre is not None:
            d = (date - centre).days - shift
            best = max(best, float(np.exp(-0.5 * (d / sd) ** 2)))
    return best


def _lunar_shift(base: dt.date, near: dt.date) -> dt.date:
    """The date whole lunar years from ``base`` that falls nearest ``near``."""
    k = round((near - base).days / _LUNAR_YEAR_DAYS)
    return base + dt.timedelta(days=round(k * _LUNAR_YEAR_DAYS))


def _season(date: dt.date) -> tuple[float, float, float, float]:
    """Multipliers of resident, visitor and trader departures, and the Arbaeen pilgrim share
    of the day (fraction of the year's pilgrims who leave that day)."""
    nowruz_out = _bump(date, _NOWRUZ, (3, 21), 2, 6.0)
    nowruz_back = _bump(date, _NOWRUZ, (3, 21), 10, 5.0)
    summer = _bump(date, {}, (7, 25), 0, 30.0)
    residents = 1 + 1.4 * nowruz_out + 0.25 * summer
    visitors = 1 + 0.8 * nowruz_back + 0.2 * summer
    traders = 1 - 0.4 * nowruz_out
    pilgrims = 0.0
    for year in (date.year, date.year + 1):
        arbaeen = _ARBAEEN.get(year) or _lunar_shift(_ARBAEEN[2026], dt.date(year, 7, 1))
        if -20 <= (date - arbaeen).days <= 2:
            offsets = np.arange(-20, 3)
            w = np.exp(-0.5 * ((offsets + 6) / 4.0) ** 2)
            pilgrims += float(w[(date - arbaeen).days + 20] / w.sum())
    return residents, visitors, traders, pilgrims


def _mean_season() -> np.ndarray:
    """Yearly means of the resident and visitor multipliers (2026), to keep annual totals."""
    days = [dt.date(2026, 1, 1) + dt.timedelta(i) for i in range(365)]
    m = np.array([_season(d)[:2] for d in days]) * _WEEKDAY_DEPARTURES[[d.weekday() for d in days]][:, None]
    return m.mean(axis=0)


def _epoch_day(date: dt.date) -> int:
    return date.toordinal() - _EPOCH_ORDINAL


def _iso_week(date: dt.date) -> str:
    y, w, _ = date.isocalendar()
    return f"{y}-W{w:02d}"


# tables as arrays
_RES_DEST_CDF: Final = _cdf_rows([_DEST_BY_POST[p] for p in POSTS], _C)
_VISITOR_NAT_CDF: Final = _cdf_rows([_VISITORS_BY_POST[p] for p in POSTS], _C)
_RES_NAT_CDF: Final = _cdf(_RESIDENT_NATIONALITY, _C)
_PILGRIM_NAT_CDF: Final = _cdf(_PILGRIM_NATIONALITY, _C)
_PILGRIM_POST_P: Final = np.diff(_cdf(_PILGRIM_POST, _P), prepend=0.0)
_CATEGORY_CDF: Final = _cdf_rows(_CATEGORY_MIX, _K)
_CITY: Final = {c: i for i, c in enumerate(_CITIES)}
_CITY_BY_POST_CDF: Final = _cdf_rows([_CITY_BY_POST[p] for p in POSTS], _CITY)
_CITY_POPULATION_CDF: Final = _cdf(_CITY_POPULATION, _CITY)
_HOURS_CDF: Final = _cdf_of(_HOURS)
_MCC_INDEX: Final = {m: i for i, m in enumerate(_MCCS)}
_MCC_OF_CATEGORY_IDX: Final = np.array([_MCC_INDEX[_MCC_OF_CATEGORY[c]] for c in CATEGORIES])
_UNIT_MEDIAN: Final = np.array([_UNIT_VALUE[c][0] for c in CATEGORIES], dtype=float)
_UNIT_SIGMA: Final = np.array([_UNIT_VALUE[c][1] for c in CATEGORIES])
_UNIT_CAP: Final = np.array([_UNIT_VALUE[c][2] for c in CATEGORIES], dtype=float)
_QTY_LAMBDA: Final = np.array([_QTY_TRAVELLER[c] for c in CATEGORIES])
_QTY_TRADER_MEAN: Final = np.array([_QTY_TRADER[c][0] for c in CATEGORIES], dtype=float)
_QTY_TRADER_CAP: Final = np.array([_QTY_TRADER[c][1] for c in CATEGORIES])
_HEADINGS: Final = [CATEGORY_HS_HEADINGS[c] for c in CATEGORIES]
_EXPORT_DEST_CDF: Final = np.stack([
    _cdf(_EXPORT_DEST_BY_MODE[_AIR], _C) if _MODE[i] == _AIR
    else _cdf(_EXPORT_DEST_BY_MODE[_SEA], _C) if _DEST_BY_POST[p] is _GULF_DEST
    else _RES_DEST_CDF[i] for i, p in enumerate(POSTS)])
_ALLOWED_HOME: Final = np.zeros((len(POSTS), len(COUNTRIES)), dtype=bool)
for _i, _p in enumerate(POSTS):
    if _MODE[_i] == _AIR:
        _ALLOWED_HOME[_i] = True
    elif _MODE[_i] == _SEA:
        _ALLOWED_HOME[_i, [_C[c] for c in _DEST_BY_POST[_p]]] = True
_ALLOWED_HOME[:, _C["IR"]] = False
assert set(_HANDICRAFT_MCC) <= set(_MCCS) and set(_MCC_OF_CATEGORY.values()) <= HANDICRAFT_MCCS


_N_HEADINGS: Final = np.array([len(h) for h in _HEADINGS])
#: category x heading (padded by repetition) x suffix -> six-digit HS code
_HS_TABLE: Final = np.array([[[h + s for s in _HS_SUFFIXES]
                              for h in (hs * _N_HEADINGS.max())[:_N_HEADINGS.max()]]
                             for hs in _HEADINGS])


def _hs_codes(rng: np.random.Generator, category: np.ndarray) -> np.ndarray:
    """Six-digit HS codes under a heading of each item's category."""
    pick = (rng.random(len(category)) * _N_HEADINGS[category]).astype(int)
    suffix = rng.integers(0, len(_HS_SUFFIXES), len(category))
    return _HS_TABLE[category, pick, suffix]


# --------------------------------------------------------------------------- exchange rates

@dataclass(frozen=True)
class _FxPath:
    """Published rates per currency: times (local seconds) and units per USD x 10^4."""

    times: tuple[np.ndarray, ...]
    units: tuple[np.ndarray, ...]

    def rate(self, currency: np.ndarray, t: np.ndarray) -> np.ndarray:
        """The contract's FX rule: the latest rate published at or before ``t``."""
        out = np.empty(len(t))
        for c in range(len(CURRENCIES)):
            m = currency == c
            if m.any():
                i = np.searchsorted(self.times[c], t[m], side="right") - 1
                assert (i >= 0).all(), "amount before the first published rate"
                out[m] = self.units[c][i] / _FX_SCALE
        return out

    def to_minor(self, usd_cents: np.ndarray, currency: np.ndarray, t: np.ndarray) -> np.ndarray:
        """US cents to an amount in minor units of ``currency`` (whole rials and dinars)."""
        minor = usd_cents / 100 * self.rate(currency, t) * 10.0 ** _DECIMALS[currency]
        return np.maximum(np.rint(minor), 1).astype(np.int64)


def _fx_path(seed: int, first: int, last: int) -> _FxPath:
    """Random-walk rates for epoch days first..last, anchored at 2026-01-01 so the path of
    a day does not depend on the simulated window."""
    anchor = _epoch_day(_FX_ANCHOR)
    lo, hi = min(first, anchor), max(last, anchor)
    steps = [m[3] for m in _FX_MODEL.values()]
    z = np.stack([_rng(seed, _STREAM_FX, d + _EPOCH_ORDINAL).standard_normal(sum(steps))
                  for d in range(lo, hi + 1)])
    times, units, col = [], [], 0
    for (level, drift, vol, k), n in zip(_FX_MODEL.values(), steps, strict=True):
        inc = (drift / 365 / k + vol / np.sqrt(k) * z[:, col:col + n]).ravel()
        col += n
        cum = np.cumsum(inc)
        log_level = np.log(level) + cum - cum[(anchor - lo) * k]
        t = (np.arange(lo * k, (hi + 1) * k) * (_DAY_S // k)).astype(np.int64)
        keep = slice((first - lo) * k, (last - lo + 1) * k)
        times.append(t[keep])
        units.append(np.rint(np.exp(log_level[keep]) * _FX_SCALE).astype(np.int64))
    return _FxPath(tuple(times), tuple(units))


# --------------------------------------------------------------------------- rendering

def _template(text: str) -> str:
    """A JSON line template with ``§`` for fields, in pl.format's brace syntax."""
    return text.replace("{", "{{").replace("}", "}}").replace("§", "{}")


def _fmt(template: str, *cols: pl.Expr | str) -> pl.Expr:
    return pl.format(_template(template), *cols)


def _ts(col: str = "t") -> pl.Expr:
    return pl.from_epoch(pl.col(col), time_unit="s").dt.strftime(_TS)


def _amount(minor: str, currency: str) -> pl.Expr:
    """JSON number in major units: whole units for IRR/IQD, two decimals otherwise."""
    v = pl.col(minor)
    dec = pl.col(currency).replace_strict(list(CURRENCIES), list(_DECIMALS), return_dtype=pl.Int8)
    return (pl.when(dec == 0).then(v.cast(pl.String))
            .otherwise(pl.format("{}.{}", (v // 100).cast(pl.String),
                                 (v % 100).cast(pl.String).str.zfill(2))))


def _join_items(parents: int, pos: np.ndarray, items: pl.Series) -> pl.Series:
    """Comma-joined item objects per parent row (empty string for none)."""
    joined = (pl.DataFrame({"pos": pos, "item": items})
              .group_by("pos", maintain_order=True).agg(pl.col("item").str.join(",")))
    return (pl.DataFrame({"pos": np.arange(parents)})
            .join(joined, on="pos", how="left").sort("pos")["item"].fill_null(""))


def _codes(table: tuple[str, ...], idx: np.ndarray) -> np.ndarray:
    return np.asarray(table)[idx]


# --------------------------------------------------------------------------- the world

@dataclass
class _World:
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
    exporter_post: np.ndarray
    exporter_house: np.ndarray
    exporter_cdf: np.ndarray
    exporter_ids: np.ndarray
    fx: _FxPath

    @property
    def window(self) -> tuple[int, int]:
        """Local-seconds bounds [start, end) of the simulated days."""
        return self.first_day * _DAY_S, (self.first_day + self.config.days) * _DAY_S


def _build_world(config: WorldConfig) -> _World:
    if config.seed < 0 or config.weeks < 1 or config.scale <= 0:
        raise ValueError("seed must be >= 0, weeks >= 1 and scale > 0")
    first = _epoch_day(config.start)
    lookahead = _PURCHASE_DAYS_BEFORE + 1
    for d in range(-1, config.days + lookahead + 4):
        day = config.start + dt.timedelta(d)
        for hour in (0, 23):
            off = dt.datetime(day.year, day.month, day.day, hour, tzinfo=_TEHRAN).utcoffset()
            if off != dt.timedelta(hours=3, minutes=30):
                raise ValueError(f"{day}: Asia/Tehran is not +03:30 then; simulate from 2023 on")
    s = config.scale
    mean_res, mean_vis = _mean_season()
    trader_trips = config.traders * config.trader_trips_per_year
    others = max(config.departures_per_year - config.arbaeen_pilgrims - trader_trips, 0.0)
    share = np.diff(_cdf(_POST_SHARE, _P), prepend=0.0)
    vis = np.array([_VISITOR_SHARE[p] for p in POSTS])
    per_day = others * s / 365 * share
    rng = _rng(config.seed, _STREAM_TRADERS, 0)
    n_traders = max(1, round(config.traders * s))
    t_post = _draw(rng, _cdf(_TRADER_POST, _P), n=n_traders)
    nat_rows = _cdf_rows([_TRADER_NATIONALITY.get(p, _TRADER_OTHER_NATIONALITY) for p in POSTS], _C)
    t_nat = _draw(rng, nat_rows, t_post)
    dest_rows = _cdf_rows([_TRADER_AIR_DEST if _MODE[i] == _AIR else _DEST_BY_POST[p]
                           for i, p in enumerate(POSTS)], _C)
    t_dest = _draw(rng, dest_rows, t_post)
    mean_rate = config.trader_trips_per_year / 365
    t_rate = np.minimum(rng.gamma(2.0, mean_rate / 2, n_traders), 0.4)
    salt = _mix(np.array([config.seed], dtype=np.uint64) ^ np.uint64(0x5EED5EED5EED5EED))[0]
    erng = _rng(config.seed, _STREAM_EXPORTERS, 0)
    n_exp = max(3, round(_EXPORTERS * s))
    e_post = _draw(erng, _cdf(_EXPORT_POST, _P), n=n_exp)
    e_house = (erng.random(n_exp) < _P_HANDICRAFT_HOUSE).astype(int)
    e_weight = erng.exponential(1.0, n_exp)  # some exporters file more than others
    e_cdf = np.cumsum(e_weight / e_weight.sum())
    e_cdf[-1] = 1.0
    return _World(
        config=config, first_day=first, salt=salt,
        base_res=per_day * (1 - vis) / mean_res, base_vis=per_day * vis / mean_vis,
        pilgrims=config.arbaeen_pilgrims * s,
        trader_post=t_post, trader_nat=t_nat, trader_dest=t_dest, trader_rate=t_rate,
        trader_ids=_ids("T", _key(_NS_TRADER, 0, np.arange(n_traders)), salt),
        exporter_post=e_post, exporter_house=e_house, exporter_cdf=e_cdf,
        exporter_ids=_ids("EXP", _key(_NS_EXPORTER, 0, np.arange(n_exp)), salt),
        fx=_fx_path(config.seed, first - _PURCHASE_DAYS_BEFORE - 2, first + config.days + lookahead + 4),
    )


@dataclass
class _DayOutput:
    """One generated day: event frames (columns t, line) per topic and the carried items."""

    frames: dict[str, pl.DataFrame]
    truth: pl.DataFrame | None
    formal_handicraft_usd: float = 0.0
    formal_total_usd: float = 0.0


def _time_of_day(rng: np.random.Generator, mode: np.ndarray) -> np.ndarray:
    hour = (rng.random(len(mode))[:, None] >= _HOURS_CDF[mode]).sum(axis=1)
    return hour * 3600 + rng.integers(0, 3600, len(mode))


def _generate_day(w: _World, g: int) -> _DayOutput:
    """Day ``g`` of the window (g >= days: a look-ahead day that only contributes the card
    payments its travellers made inside the window)."""
    cfg = w.config
    date = cfg.start + dt.timedelta(g)
    ordinal = date.toordinal()
    day0 = (w.first_day + g) * _DAY_S
    win_lo, win_hi = w.window
    in_window = g < cfg.days
    rng = _rng(cfg.seed, _STREAM_DAY, ordinal)

    # departures ---------------------------------------------------------------------
    res_m, vis_m, trader_m, pilgrim_share = _season(date)
    wd = _WEEKDAY_DEPARTURES[date.weekday()]
    posts = np.arange(len(POSTS))
    n_res = rng.poisson(w.base_res * res_m * wd)
    n_vis = rng.poisson(w.base_vis * vis_m * wd)
    n_pil = rng.poisson(w.pilgrims * pilgrim_share * _PILGRIM_POST_P)
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
    nat[r] = _draw(rng, _RES_NAT_CDF, n=sizes[0])
    dest[r] = _draw(rng, _RES_DEST_CDF, post[r])
    nat[v] = _draw(rng, _VISITOR_NAT_CDF, post[v])
    d = _draw(rng, _RES_DEST_CDF, post[v])
    home = _ALLOWED_HOME[post[v], nat[v]] & (rng.random(sizes[1]) < _VISITOR_GOES_HOME)
    d[home] = nat[v][home]
    dest[v] = d
    nat[tr] = w.trader_nat[on_trip]
    d = w.trader_dest[on_trip].copy()
    elsewhere = rng.random(sizes[2]) >= _TRADER_USUAL_MARKET
    d[elsewhere] = _draw(rng, _RES_DEST_CDF, post[tr][elsewhere])
    dest[tr] = d
    nat[pg] = _draw(rng, _PILGRIM_NAT_CDF, n=sizes[3])
    dest[pg] = _C["IQ"]
    resident = np.zeros(n, dtype=bool)
    resident[r] = True
    resident[tr] = nat[tr] == _C["IR"]
    resident[pg] = np.isin(nat[pg], [_C["IR"], _C["AF"]])
    t_dep = day0 + _time_of_day(rng, _MODE[post])
    idx = np.arange(n)
    crossing = _ids("X", _key(_NS_CROSSING, ordinal, idx), w.salt)
    traveller = _ids("T", _key(_NS_TRAVELLER, ordinal, idx), w.salt)
    traveller[tr] = w.trader_ids[on_trip]
    trader_of = np.full(n, -1)
    trader_of[tr] = on_trip

    # carried handicrafts --------------------------------------------------------------
    carrier = np.flatnonzero(rng.random(n) < _P_CARRY[group])
    lines = 1 + rng.poisson(_EXTRA_LINES[group[carrier]])
    it_dep = np.repeat(carrier, lines)
    it_group = group[it_dep]
    cat = _draw(rng, _CATEGORY_CDF, it_group)
    is_trader = it_group == _TRADER
    qty = 1 + rng.poisson(_QTY_LAMBDA[cat])
    mean = _QTY_TRADER_MEAN[cat[is_trader]]
    qty[is_trader] = np.minimum(1 + rng.negative_binomial(1.5, 1.5 / (1.5 + mean)),
                                _QTY_TRADER_CAP[cat[is_trader]])
    unit = _lognormal_cents(rng, _UNIT_MEDIAN[cat], _UNIT_SIGMA[cat], _UNIT_CAP[cat])
    value = unit * qty  # true value in US cents
    n_items = len(it_dep)
    first_item = np.r_[True, it_dep[1:] != it_dep[:-1]] if n_items else np.zeros(0, bool)

    # declarations ----------------------------------------------------------------------
    declares = np.zeros(n, dtype=bool)
    declares[carrier] = rng.random(len(carrier)) < _P_DECLARE[group[carrier]]
    t_insp = t_dep - rng.integers(300, 3600, n)
    lo = np.array([3600, 1800, 600])[_MODE[post]]
    hi = np.array([6 * 3600, 4 * 3600, 2 * 3600])[_MODE[post]]
    t_decl = t_insp - (lo + (rng.random(n) * (hi - lo)).astype(np.int64))
    factor = rng.beta(*_UNDER_DECLARATION[group].T)
    decl_cur = _draw(rng, _cdf_of(_DECLARATION_CURRENCY), n=n)
    home_cur = _HOME_CURRENCY[nat]
    use_home = (home_cur >= 0) & (rng.random(n) < _P_HOME_CURRENCY)
    decl_cur[use_home] = home_cur[use_home]
    it_declared = declares[it_dep] & ((rng.random(n_items) < _P_ITEM_DECLARED) | first_item)
    noise = np.exp(0.1 * rng.standard_normal(n_items))
    it_has_hs = rng.random(n_items) < _P_HS_CODE[it_group]
    it_hs = _hs_codes(rng, cat)
    resale = rng.random(n) < _P_RESALE[group]

    # inspections ------------------------------------------------------------------------
    base_p = np.array([_P_RANDOM_INSPECTION[p] for p in POSTS])
    day_factor = rng.choice(_DAY_INSPECTION_FACTORS[0], len(POSTS), p=_DAY_INSPECTION_FACTORS[1])
    p_random = np.round(np.minimum(base_p * day_factor, 1.0), 6)[post]
    random_pick = rng.random(n) < p_random
    trip_value = np.bincount(it_dep, weights=value, minlength=n)
    p_target = np.where(group == _TRADER, _P_TARGETED_TRADER,
                        np.where(trip_value > _BIG_LOAD_CENTS, _P_TARGETED_BIG_LOAD, _P_TARGETED_OTHER))
    targeted = ~random_pick & (rng.random(n) < p_target)
    insp_cur = _draw(rng, _cdf_of(_INSPECTION_CURRENCY), n=n)

    frames: dict[str, pl.DataFrame] = {}
    truth = None
    if in_window:
        frames[DEPARTURES] = pl.DataFrame({
            "t": t_dep, "id": _ids("BD", _key(_NS_EV_DEP, ordinal, idx), w.salt), "x": crossing,
            "tr": traveller, "post": _codes(POSTS, post), "nat": _codes(COUNTRIES, nat),
            "res": resident, "dest": _codes(COUNTRIES, dest),
        }).select("t", line=_fmt(
            '{"event_id":"§","event_time":"§","schema_version":1,"crossing_id":"§",'
            '"traveller_id":"§","border_post":"§","nationality":"§","resident":§,'
            '"destination_country":"§"}',
            "id", _ts(), "x", "tr", "post", "nat", pl.col("res").cast(pl.String), "dest"))

        # declarations
        decl = np.flatnonzero(declares)
        pos_of = np.full(n, -1)
        pos_of[decl] = np.arange(len(decl))
        di = np.flatnonzero(it_declared)
        di_dep = it_dep[di]
        d_cents = np.maximum(np.rint(value[di] * factor[di_dep] * noise[di]), 1).astype(np.int64)
        d_cur = decl_cur[di_dep]
        d_items = pl.DataFrame({
            "cat": _codes(CATEGORIES, cat[di]),
            "hs": np.where(it_has_hs[di], np.strings.add(',"hs_code":"', np.strings.add(it_hs[di], '"')), ""),
            "q": qty[di], "v": w.fx.to_minor(d_cents, d_cur, t_decl[di_dep]),
            "cur": _codes(CURRENCIES, d_cur),
            "purpose": np.where(resale[di_dep], "resale", "personal"),
        }).select(_fmt('{"category":"§"§,"quantity":§,"value":§,"currency":"§","purpose":"§"}',
                       "cat", "hs", "q", _amount("v", "cur"), "cur", "purpose")).to_series()
        frames[DECLARATIONS] = pl.DataFrame({
            "t": t_decl[decl], "id": _ids("TD", _key(_NS_EV_DECL, ordinal, decl), w.salt),
            "x": crossing[decl], "tr": traveller[decl], "post": _codes(POSTS, post[decl]),
            "dest": _codes(COUNTRIES, dest[decl]),
            "items": _join_items(len(decl), pos_of[di_dep], d_items),
        }).select("t", line=_fmt(
            '{"event_id":"§","event_time":"§","schema_version":1,"crossing_id":"§",'
            '"traveller_id":"§","border_post":"§","destination_country":"§","items":[§]}',
            "id", _ts(), "x", "tr", "post", "dest", "items"))

        # inspections
        insp = np.flatnonzero(random_pick | targeted)
        pos_of = np.full(n, -1)
        pos_of[insp] = np.arange(len(insp))
        ii = np.flatnonzero(pos_of[it_dep] >= 0)
        ii_dep = it_dep[ii]
        i_cur = insp_cur[ii_dep]
        i_items = pl.DataFrame({
            "cat": _codes(CATEGORIES, cat[ii]), "q": qty[ii],
            "v": w.fx.to_minor(value[ii], i_cur, t_insp[ii_dep]), "cur": _codes(CURRENCIES, i_cur),
        }).select(_fmt('{"category":"§","quantity":§,"assessed_value":§,"currency":"§"}',
                       "cat", "q", _amount("v", "cur"), "cur")).to_series()
        frames[INSPECTIONS] = pl.DataFrame({
            "t": t_insp[insp], "id": _ids("CI", _key(_NS_EV_INSP, ordinal, insp), w.salt),
            "x": crossing[insp], "tr": traveller[insp], "post": _codes(POSTS, post[insp]),
            "sel": np.where(random_pick[insp], "random", "targeted"),
            "p": np.where(random_pick[insp], p_random[insp], np.nan),
            "decl": declares[insp], "items": _join_items(len(insp), pos_of[ii_dep], i_items),
        }).select("t", line=_fmt(
            '{"event_id":"§","event_time":"§","schema_version":1,"crossing_id":"§",'
            '"traveller_id":"§","border_post":"§","selection":"§","selection_probability":§,'
            '"declared":§,"items":[§]}',
            "id", _ts(), "x", "tr", "post", "sel",
            pl.col("p").fill_nan(None).cast(pl.String).fill_null("null"),
            pl.col("decl").cast(pl.String), "items"))

        week = _iso_week(date)
        truth = pl.DataFrame({
            "crossing_id": crossing[it_dep], "week": np.full(n_items, week),
            "border_post": _codes(POSTS, post[it_dep]),
            "destination_region": _codes(DESTINATION_REGIONS, _REGION_OF_COUNTRY[dest[it_dep]]),
            "category": _codes(CATEGORIES, cat), "quantity": qty.astype(np.int64),
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


def _payments(w: _World, g: int, rng: np.random.Generator, *, post, group, nat, resident,
              t_dep, traveller, trader_of, it_dep, cat, value, wd, ordinal, day0,
              in_window) -> dict[str, np.ndarray]:
    """Card payments: tourist cards of visitors (part of what they carry, plus other
    spending), domestic cards of residents who carry crafts, and the general public."""
    s = w.config.scale
    n = len(post)
    n_hc = len(_HANDICRAFT_MCC)
    foreign = (group == _VISITOR) & (nat != _C["IR"])
    holder = foreign & (rng.random(n) < _P_TOURIST_CARD[_MODE[post]])
    city = _draw(rng, _CITY_BY_POST_CDF, post)
    home_city = _draw(rng, _CITY_POPULATION_CDF, n=n)
    pool_card = rng.integers(0, max(1, round(_DOMESTIC_CARDS * s)), n)
    card_key = np.where(holder, _key(_NS_CARD, ordinal, np.arange(n)),
                        _key(_NS_DOMESTIC_CARD, 0, pool_card))
    is_trader = trader_of >= 0
    card_key[is_trader] = _key(_NS_TRADER_CARD, 0, trader_of[is_trader])
    pay_city = np.where(holder | is_trader, city, home_city)

    def before_departure(dep: np.ndarray) -> np.ndarray:
        return t_dep[dep] - rng.integers(3600, _PURCHASE_DAYS_BEFORE * _DAY_S, len(dep))

    parts = []  # (dep or -1, mcc, usd cents, t)
    # crafts carried out, partly paid by card (tourist or domestic)
    p_card = np.where(holder[it_dep], _P_CARD_FOR_ITEM,
                      np.where(resident[it_dep], _P_DOMESTIC_CARD_FOR_ITEM, 0.0))
    paid = np.flatnonzero(rng.random(len(it_dep)) < p_card)
    share = rng.uniform(0.3, 1.0, len(paid))
    parts.append((it_dep[paid], _MCC_OF_CATEGORY_IDX[cat[paid]],
                  np.maximum(np.rint(value[paid] * share), 1), before_departure(it_dep[paid])))
    holders = np.flatnonzero(holder)
    # crafts bought on a tourist card that never leave (gifts, shipped, used in Iran)
    extra = holders[rng.random(len(holders)) < _P_HANDICRAFT_NOT_CARRIED]
    parts.append((extra, rng.integers(0, n_hc, len(extra)),
                  _lognormal_cents(rng, np.full(len(extra), 25.0), np.full(len(extra), .9),
                                   np.full(len(extra), 2_000.0)), before_departure(extra)))
    # hotels, restaurants, groceries, transport
    k = rng.poisson(_OTHER_PURCHASES_MEAN, len(holders)) + 1
    other = np.repeat(holders, k)
    parts.append((other, n_hc + _draw(rng, _cdf_of(_OTHER_MCC_P), n=len(other)),
                  _lognormal_cents(rng, np.full(len(other), 12.0), np.full(len(other), .9),
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
        nowruz_shopping = 1 + 0.8 * _bump(w.config.start + dt.timedelta(g), _NOWRUZ, (3, 21), -7, 5.0)
        n_h = rng.poisson(_PUBLIC_HANDICRAFT_PER_DAY * s * wd * nowruz_shopping)
        n_o = rng.poisson(_PUBLIC_OTHER_PER_DAY * s * wd)
        m = n_h + n_o
        pub_mcc = np.concatenate([rng.integers(0, n_hc, n_h),
                                  n_hc + _draw(rng, _cdf_of(_OTHER_MCC_P), n=n_o)])
        pub_cents = _lognormal_cents(rng, np.r_[np.full(n_h, 18.0), np.full(n_o, 10.0)],
                                     np.r_[np.full(n_h, 1.1), np.full(n_o, 1.0)],
                                     np.r_[np.full(n_h, 3_000.0), np.full(n_o, 1_000.0)])
        dep = np.r_[dep, np.full(m, -1)]
        mcc = np.r_[mcc, pub_mcc]
        cents = np.r_[cents, pub_cents]
        t = np.r_[t, day0 + rng.integers(8 * 3600, 23 * 3600, m)]
        tourist = np.r_[tourist, np.zeros(m, bool)]
        tid = np.r_[tid, np.full(m, "")]
        keys = np.r_[keys, _key(_NS_DOMESTIC_CARD, 0, rng.integers(0, max(1, round(_DOMESTIC_CARDS * s)), m))]
        pcity = np.r_[pcity, _draw(rng, _CITY_POPULATION_CDF, n=m)]
    cur = np.where(tourist & (rng.random(len(t)) < 0.03), _USD, _IRR)
    amount = w.fx.to_minor(cents, cur, t)
    merchant = (pcity << 16) | (mcc << 8) | rng.integers(0, _MERCHANTS_PER_CITY_MCC, len(t))
    n_p = len(t)
    ev = _ids("PT", _key(_NS_EV_PAY, ordinal, np.arange(n_p)), w.salt)
    # refunds (part of the amount, hours to days later) and reversals (all of it, minutes later)
    u = rng.random(n_p)
    refund = np.flatnonzero(u < _P_REFUND)
    reversal = np.flatnonzero((u >= _P_REFUND) & (u < _P_REFUND + _P_REVERSAL))
    back = np.r_[refund, reversal]
    back_amount = np.r_[np.maximum(np.rint(amount[refund] * rng.uniform(.2, 1., len(refund))), 1),
                        amount[reversal]].astype(np.int64)
    back_t = t[back] + np.r_[rng.integers(3600, 3 * _DAY_S, len(refund)),
                             rng.integers(60, 1800, len(reversal))]
    back_ev = _ids("PT", _key(_NS_EV_PAY, ordinal, n_p + np.arange(len(back))), w.salt)
    kind = np.r_[np.zeros(n_p, int), np.ones(len(refund), int), np.full(len(reversal), 2)]
    return {
        "t": np.r_[t, back_t], "t0": np.r_[t, t[back]],
        "id": np.r_[ev, back_ev], "orig": np.r_[np.full(n_p, ""), ev[back]],
        "card": _ids("C", np.r_[keys, keys[back]], w.salt),
        "tourist": np.r_[tourist, tourist[back]], "tid": np.r_[tid, tid[back]],
        "merchant": _ids("M", _key(_NS_MERCHANT, 0, np.r_[merchant, merchant[back]]), w.salt),
        "mcc": np.r_[mcc, mcc[back]], "city": np.r_[pcity, pcity[back]],
        "amount": np.r_[amount, back_amount], "cur": np.r_[cur, cur[back]], "kind": kind,
    }


def _render_payments(p: dict[str, np.ndarray]) -> pl.DataFrame:
    return pl.DataFrame({
        "t": p["t"], "id": p["id"], "card": p["card"],
        "type": np.where(p["tourist"], "tourist", "domestic"),
        "tid": np.where(p["tid"] == "", "null", np.strings.add('"', np.strings.add(p["tid"], '"'))),
        "merchant": p["merchant"], "mcc": _codes(_MCCS, p["mcc"]), "city": _codes(_CITIES, p["city"]),
        "v": p["amount"], "cur": _codes(CURRENCIES, p["cur"]),
        "kind": _codes(("purchase", "refund", "reversal"), p["kind"]),
        "orig": np.where(p["orig"] == "", "null", np.strings.add('"', np.strings.add(p["orig"], '"'))),
    }, schema_overrides={"t": pl.Int64, "v": pl.Int64}).select("t", line=_fmt(
        '{"event_id":"§","event_time":"§","schema_version":1,"card_id":"§","card_type":"§",'
        '"traveller_id":§,"merchant_id":"§","mcc":"§","merchant_city":"§","amount":§,'
        '"currency":"§","kind":"§","original_event_id":§}',
        "id", _ts(), "card", "type", "tid", "merchant", "mcc", "city", _amount("v", "cur"),
        "cur", "kind", "orig"))


def _exports(w: _World, rng: np.random.Generator, date: dt.date, ordinal: int,
             day0: int) -> tuple[pl.DataFrame, float, float]:
    """Formal export declarations of the day, and their handicraft and total US dollars."""
    m = rng.poisson(w.config.export_declarations_per_day * w.config.scale
                    * _WEEKDAY_EXPORTS[date.weekday()])
    exporter = np.searchsorted(w.exporter_cdf, rng.random(m), side="right")
    post = w.exporter_post[exporter]
    dest = _draw(rng, _EXPORT_DEST_CDF, post)
    t = day0 + rng.integers(8 * 3600, 16 * 3600, m)
    cur = _draw(rng, _cdf_of(_EXPORT_CURRENCY), n=m)
    cur[(dest == _C["IQ"]) & (rng.random(m) < .3)] = _IQD
    cur[(dest == _C["TR"]) & (rng.random(m) < .3)] = _TRY
    lines = 1 + rng.poisson(1.2, m)
    it = np.repeat(np.arange(m), lines)
    k = len(it)
    craft = rng.random(k) < _P_HANDICRAFT_LINE[w.exporter_house[exporter[it]]]
    category = _draw(rng, _CATEGORY_CDF[_TRADER], n=k)
    other = rng.integers(0, len(_FORMAL_OTHER_HS), k)
    med, sig, cap = np.where(craft[:, None], _FORMAL_HANDICRAFT_VALUE, _FORMAL_OTHER_VALUE).T
    cents = _lognormal_cents(rng, med.astype(float), sig, cap.astype(float))
    hs = np.where(craft, _hs_codes(rng, category), _codes(tuple(h for h, _ in _FORMAL_OTHER_HS), other))
    unit = np.where(craft, _UNIT_MEDIAN[category], np.array([u for _, u in _FORMAL_OTHER_HS])[other])
    qty = np.maximum(np.rint(cents / 100 / unit), 1).astype(np.int64)
    items = pl.DataFrame({"hs": hs, "q": qty, "v": w.fx.to_minor(cents, cur[it], t[it]),
                          "cur": _codes(CURRENCIES, cur[it])}).select(
        _fmt('{"hs_code":"§","quantity":§,"value":§,"currency":"§"}',
             "hs", "q", _amount("v", "cur"), "cur")).to_series()
    idx = np.arange(m)
    frame = pl.DataFrame({
        "t": t, "id": _ids("CE", _key(_NS_EV_EXP, ordinal, idx), w.salt),
        "decl": _ids("EX", _key(_NS_EXPORT, ordinal, idx), w.salt),
        "exporter": w.exporter_ids[exporter], "post": _codes(POSTS, post),
        "dest": _codes(COUNTRIES, dest), "items": _join_items(m, it, items),
    }).select("t", line=_fmt(
        '{"event_id":"§","event_time":"§","schema_version":1,"declaration_id":"§",'
        '"exporter_id":"§","border_post":"§","destination_country":"§","items":[§]}',
        "id", _ts(), "decl", "exporter", "post", "dest", "items"))
    return frame, float(cents[craft].sum()) / 100, float(cents.sum()) / 100


def _fx_frame(w: _World, day: int) -> pl.DataFrame:
    """Rate events published on epoch day ``day``, every currency at least at midnight."""
    lo, hi = day * _DAY_S, (day + 1) * _DAY_S
    rows = [(t, c, u) for c, (times, units) in enumerate(zip(w.fx.times, w.fx.units, strict=True))
            for t, u in zip(times[(times >= lo) & (times < hi)], units[(times >= lo) & (times < hi)],
                            strict=True)]
    t, c, u = (np.array(x, dtype=np.int64) for x in zip(*rows, strict=True))
    cur = _codes(CURRENCIES, c)
    return pl.DataFrame({"t": t, "cur": cur, "u": u}).select(
        "t", line=_fmt('{"event_id":"fx-§-§","event_time":"§","schema_version":1,'
                       '"currency":"§","units_per_usd":§.§}',
                       "cur", pl.from_epoch("t", time_unit="s").dt.strftime("%Y%m%dT%H%M"),
                       _ts(), "cur", (pl.col("u") // _FX_SCALE).cast(pl.String),
                       (pl.col("u") % _FX_SCALE).cast(pl.String).str.zfill(4)))


# --------------------------------------------------------------------------- faults

_LATE_TOPICS: Final = frozenset({DEPARTURES, DECLARATIONS, INSPECTIONS})
_EVENT_PREFIX: Final = {DEPARTURES: "BD", DECLARATIONS: "TD", INSPECTIONS: "CI", EXPORTS: "CE",
                        PAYMENTS: "PT", FX_RATES: "fx-"}


class _Faults:
    """The fault model: late, duplicated, shuffled and malformed lines, from its own random
    stream so that turning faults on never changes the world or its truth."""

    def __init__(self, w: _World) -> None:
        self.w = w
        self.later: dict[int, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
        self.duplicates = self.late = self.malformed = 0

    def apply(self, day: int, batches: dict[str, list[str]]) -> dict[str, list[str]]:
        cfg = self.w.config
        last = cfg.days - 1
        rng = _rng(cfg.seed, _STREAM_FAULTS, (cfg.start + dt.timedelta(day)).toordinal())
        arrived = self.later.pop(day, {})
        out: dict[str, list[str]] = {}
        n_bad = 0
        for topic in TOPICS:
            own = batches[topic]
            n = len(own)
            extras: list[str] = list(arrived.get(topic, []))
            keep = np.ones(n, dtype=bool)
            if topic in _LATE_TOPICS and day < last:
                late = np.flatnonzero(rng.random(n) < cfg.late_rate)
                delay = rng.integers(1, cfg.max_delay_days + 1, len(late))
                for i, dd in zip(late, delay, strict=True):
                    self.later[min(day + int(dd), last)][topic].append(own[i])
                keep[late] = False
                self.late += len(late)
            dup = np.flatnonzero(rng.random(n) < cfg.duplicate_rate)
            delay = np.where(rng.random(len(dup)) < 0.7, 0, rng.integers(1, 6, len(dup)))
            for i, dd in zip(dup, delay, strict=True):
                target = min(day + int(dd), last)
                (extras if target == day else self.later[target][topic]).append(own[i])
            self.duplicates += len(dup)
            bad = np.flatnonzero(rng.random(n) < cfg.malformed_rate)
            for j, i in enumerate(bad):
                new_id = str(_ids(_EVENT_PREFIX[topic], _key(_NS_EV_FAULT, self.w.first_day + day, np.array([n_bad + j])),
                                  self.w.salt)[0])
                extras.append(_malform(own[i], topic, int(rng.integers(0, 6)), new_id, rng))
            n_bad += len(bad)
            self.malformed += len(bad)
            lines = [own[i] for i in np.flatnonzero(keep)] + extras
            # extras land anywhere in the day; then a few lines swap places
            order_key = np.r_[np.arange(int(keep.sum()), dtype=float),
                              rng.uniform(0, max(int(keep.sum()), 1), len(extras))]
            order = np.argsort(order_key, kind="stable")
            moved = np.flatnonzero(rng.random(len(order)) < cfg.shuffle_rate)
            order[moved] = order[rng.permutation(moved)]
            out[topic] = [lines[i] for i in order]
        return out


_REQUIRED: Final = {
    DEPARTURES: ("event_id", "crossing_id", "border_post", "resident", "destination_country"),
    DECLARATIONS: ("event_time", "crossing_id", "items", "border_post"),
    INSPECTIONS: ("event_time", "selection", "declared", "items", "crossing_id"),
    EXPORTS: ("declaration_id", "items", "event_time", "border_post"),
    PAYMENTS: ("card_id", "amount", "currency", "kind", "event_time"),
    FX_RATES: ("currency", "units_per_usd", "event_time"),
}
_AMOUNT_FIELD: Final = {DECLARATIONS: "value", INSPECTIONS: "assessed_value", EXPORTS: "value",
                        PAYMENTS: "amount", FX_RATES: "units_per_usd"}


def _malform(line: str, topic: str, kind: int, new_id: str, rng: np.random.Generator) -> str:
    """A rejected twin of ``line``: broken JSON, missing field, wrong type, unknown code,
    negative amount or a timestamp without offset (kinds 0..5), under a fresh event_id."""
    if kind == 0:
        return line[: int(rng.integers(1, len(line) - 1))]
    obj = msgspec.json.decode(line)
    obj["event_id"] = new_id
    items = obj.get("items") or []
    if kind == 3 and "border_post" in obj:
        obj["border_post"] = "ZZZ"
    elif kind == 3 and items and "category" in items[0]:
        items[0]["category"] = "plastic"
    elif kind == 4 and topic in _AMOUNT_FIELD and (topic in (PAYMENTS, FX_RATES) or items):
        target = obj if topic in (PAYMENTS, FX_RATES) else items[0]
        target[_AMOUNT_FIELD[topic]] = -abs(target[_AMOUNT_FIELD[topic]]) - 1
    elif kind == 5:
        obj["event_time"] = obj["event_time"][:19]
    elif kind == 2:
        obj["schema_version"] = "1"
    else:
        fields = _REQUIRED[topic]
        del obj[fields[int(rng.integers(0, len(fields)))]]
    return msgspec.json.encode(obj).decode()


# --------------------------------------------------------------------------- day pipeline

@dataclass
class _Stats:
    events: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TOPICS, 0))
    departures: int = 0
    formal_handicraft_usd: float = 0.0
    formal_total_usd: float = 0.0


def _days(config: WorldConfig, stats: _Stats | None = None,
          faults_out: list[_Faults] | None = None) -> Iterator[tuple[dt.date, dict[str, list[str]], pl.DataFrame]]:
    """The world one emitted day at a time: lines per topic (as str) and carried items.

    Day g is generated ``_PURCHASE_DAYS_BEFORE`` days before it is emitted, because the card
    payments of its travellers fall in the week before they leave.
    """
    w = _build_world(config)
    stats = stats if stats is not None else _Stats()
    faults = _Faults(w) if config.faults else None
    if faults_out is not None and faults is not None:
        faults_out.append(faults)
    lookahead = _PURCHASE_DAYS_BEFORE
    pending: dict[int, dict[str, list[pl.DataFrame]]] = defaultdict(lambda: defaultdict(list))
    truth: dict[int, pl.DataFrame] = {}
    pending[0][FX_RATES].append(_fx_frame(w, w.first_day - 1))  # a rate before any amount
    for g in range(config.days + lookahead):
        out = _generate_day(w, g)
        if g < config.days:
            out.frames[FX_RATES] = _fx_frame(w, w.first_day + g)
            truth[g] = out.truth
            stats.formal_handicraft_usd += out.formal_handicraft_usd
            stats.formal_total_usd += out.formal_total_usd
        for topic, frame in out.frames.items():
            day = (frame["t"] // _DAY_S - w.first_day).clip(0, None)
            for (e,), part in frame.with_columns(e=day).partition_by("e", as_dict=True).items():
                pending[e][topic].append(part.drop("e"))
        e = g - lookahead
        if e < 0:
            continue
        parts = pending.pop(e, {})
        batches = {}
        for topic in TOPICS:
            frames = parts.get(topic, [])
            lines = (pl.concat(frames).sort("t", maintain_order=True)["line"].to_list()
                     if frames else [])
            stats.events[topic] += len(lines)
            batches[topic] = lines
        stats.departures += len(batches[DEPARTURES])
        if faults is not None:
            batches = faults.apply(e, batches)
        yield config.start + dt.timedelta(e), batches, truth.pop(e)


def iter_days(config: WorldConfig) -> Iterator[SimulatedDay]:
    """The world one simulated day at a time, for the live feeder (the same days as
    :func:`simulate` writes)."""
    for date, batches, truth in _days(config):
        yield SimulatedDay(date=date, events={t: [s.encode() for s in lines]
                                              for t, lines in batches.items()}, truth=truth)


def truth_table(items: pl.DataFrame, weeks: list[str] | None = None) -> pl.DataFrame:
    """True informal exports per ISO week and domain key, from carried items
    (``SimulatedDay.truth`` rows, or their partial sums with the same columns).

    Every (week, domain, key) of the reference codes is present, zero when nothing was
    carried, so each domain sums to the week's total. Sums run on whole cents, so the
    table does not depend on the order of the items.
    """
    if weeks is None:
        weeks = sorted(set(items["week"].to_list()))
    cents = items.select("week", *DOMAINS[1:], cents=(pl.col("value_usd") * 100).round().cast(pl.Int64))
    keys = {"total": ["all"], "category": list(CATEGORIES), "border_post": list(POSTS),
            "destination_region": list(DESTINATION_REGIONS)}
    parts = []
    for rank, domain in enumerate(DOMAINS):
        key = pl.lit("all") if domain == "total" else pl.col(domain)
        sums = cents.group_by("week", key=key).agg(pl.col("cents").sum())
        grid = pl.DataFrame({"week": weeks}, schema={"week": pl.String}).join(
            pl.DataFrame({"key": keys[domain], "rank": range(len(keys[domain]))}), how="cross")
        parts.append(grid.join(sums, on=["week", "key"], how="left")
                     .with_columns(domain=pl.lit(domain), drank=pl.lit(rank)))
    return (pl.concat(parts).sort("week", "drank", "rank")
            .select("week", "domain", "key",
                    value_usd=pl.col("cents").fill_null(0).cast(pl.Float64) / 100))


def simulate(out_dir: Path, config: WorldConfig,
             progress: Callable[[int, int], None] | None = None) -> SimulationSummary:
    """Write ``<topic>.ndjson`` for the six topics and ``truth.parquet`` into ``out_dir``:
    the concatenation of :func:`iter_days` (faults included when configured)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stats = _Stats()
    faults: list[_Faults] = []
    lines = dict.fromkeys(TOPICS, 0)
    items = []
    files = {t: (out_dir / f"{t}.ndjson").open("wb") for t in TOPICS}
    try:
        for done, (_, batches, truth) in enumerate(_days(config, stats, faults), start=1):
            for topic, batch in batches.items():
                if batch:
                    files[topic].write(("\n".join(batch) + "\n").encode("utf-8"))
                    lines[topic] += len(batch)
            items.append(truth.select("week", *DOMAINS[1:], "value_usd"))
            if progress is not None:
                progress(done, config.days)
    finally:
        for f in files.values():
            f.close()
    weeks = sorted({_iso_week(config.start + dt.timedelta(d)) for d in range(config.days)})
    truth = truth_table(pl.concat(items), weeks)
    truth.write_parquet(out_dir / "truth.parquet")
    f = faults[0] if faults else None
    return SimulationSummary(
        out_dir=out_dir, days=config.days, lines=lines, events=stats.events,
        duplicates=f.duplicates if f else 0, late=f.late if f else 0,
        malformed=f.malformed if f else 0, departures=stats.departures,
        truth_total_usd=float(truth.filter(pl.col("domain") == "total")["value_usd"].sum()),
        formal_handicraft_usd=stats.formal_handicraft_usd, formal_total_usd=stats.formal_total_usd,
    )
