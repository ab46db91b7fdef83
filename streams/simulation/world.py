"""The simulated world's vocabulary and calibration: posts, travellers, goods, seasons.

Every figure that sets the size or shape of the world lives here (the exchange-rate walk
lives in ``fx``), so calibrating the simulator (about 12M departures, $250M informal and
$250M formal handicraft exports a year at scale 1) means editing this module. Distributions are written as weights by code
and turned into cumulative tables once, at import.
"""

from __future__ import annotations

import datetime as dt
from typing import Final
from zoneinfo import ZoneInfo

import numpy as np

from estimators.reference import (
    BORDER_POSTS,
    CATEGORIES,
    CATEGORY_HS_HEADINGS,
    DESTINATION_REGIONS,
    HANDICRAFT_MCCS,
    destination_region,
)
from streams.simulation.draws import cdf_of, cdf_of_weights, cdf_rows

POSTS: Final[tuple[str, ...]] = tuple(BORDER_POSTS)
P: Final = {p: i for i, p in enumerate(POSTS)}
AIR, SEA, LAND = 0, 1, 2
MODE: Final = np.array([{"air": AIR, "sea": SEA, "land": LAND}[BORDER_POSTS[p]["mode"]]
                        for p in POSTS])

#: Traveller groups; pilgrims are the Arbaeen surge, traders the repeat suitcase traders.
RESIDENT, VISITOR, TRADER, PILGRIM = 0, 1, 2, 3

COUNTRIES: Final[tuple[str, ...]] = (
    "IR", "IQ", "AF", "TR", "AZ", "AE", "RU", "CN", "DE", "IN", "PK", "LB", "FR", "IT", "GB",
    "SE", "ES", "NL", "JP", "KR", "SY", "QA", "OM", "KW", "BH", "SA", "AM", "GE", "TM", "KZ",
    "UZ", "MY", "TH", "CA", "US", "AU", "AT", "CH",
)
C: Final = {c: i for i, c in enumerate(COUNTRIES)}
REGION_OF_COUNTRY: Final = np.array([DESTINATION_REGIONS.index(destination_region(c))
                                     for c in COUNTRIES])

#: Share of the non-pilgrim departures by post (IKA largest; Iraq and Turkey land posts next).
POST_SHARE: Final = {
    "IKA": .36, "MHD": .06, "SYZ": .035, "IFN": .025, "TBZ": .03, "KIH": .025, "BND": .025,
    "BUZ": .01, "ANZ": .005, "AMR": .005, "BAZ": .10, "ASR": .045, "NOR": .015, "SRK": .02,
    "MEH": .13, "SHL": .09,
}
#: Share of foreign visitors among a post's non-pilgrim departures.
VISITOR_SHARE: Final = {
    "IKA": .45, "MHD": .55, "SYZ": .5, "IFN": .5, "TBZ": .35, "KIH": .3, "BND": .4, "BUZ": .3,
    "ANZ": .5, "AMR": .5, "BAZ": .45, "ASR": .5, "NOR": .4, "SRK": .6, "MEH": .55, "SHL": .55,
}
PILGRIM_POST: Final = {"MEH": .58, "SHL": .32, "IKA": .06, "MHD": .04}
TRADER_POST: Final = {
    "MEH": .15, "SHL": .12, "BAZ": .15, "ASR": .08, "NOR": .04, "SRK": .06, "IKA": .15,
    "BND": .08, "KIH": .05, "MHD": .04, "TBZ": .04, "ANZ": .02, "AMR": .02,
}

GULF_DEST: Final = {"AE": .55, "OM": .15, "QA": .15, "KW": .1, "BH": .05}
CASPIAN_DEST: Final = {"RU": .5, "KZ": .2, "AZ": .15, "TM": .15}
AIR_DEST: Final = {
    "TR": .24, "AE": .2, "IQ": .12, "AM": .04, "GE": .04, "DE": .05, "RU": .03, "CN": .03,
    "QA": .03, "OM": .03, "MY": .03, "TH": .03, "IN": .02, "GB": .02, "FR": .02, "IT": .02,
    "CA": .02, "SE": .02, "AT": .01, "NL": .01, "AU": .01, "JP": .01, "KR": .01, "LB": .01,
    "SY": .01,
}
#: Where residents (and visitors not flying home) go from each post; land posts lead to
#: their neighbour only, Gulf ports to the Gulf, Caspian ports to the Caspian states.
DEST_BY_POST: Final = {
    "IKA": AIR_DEST, "MHD": {**AIR_DEST, "IQ": .3}, "SYZ": AIR_DEST, "IFN": AIR_DEST,
    "TBZ": {**AIR_DEST, "TR": .45},
    "KIH": {"AE": .6, "TR": .15, "QA": .1, "OM": .05, "RU": .05, "IQ": .05},
    "BND": GULF_DEST, "BUZ": GULF_DEST, "ANZ": CASPIAN_DEST, "AMR": CASPIAN_DEST,
    "BAZ": {"TR": 1}, "ASR": {"AZ": 1}, "NOR": {"AM": 1}, "SRK": {"TM": 1}, "MEH": {"IQ": 1},
    "SHL": {"IQ": 1},
}
AIR_VISITORS: Final = {
    "IQ": .15, "AF": .05, "TR": .08, "AZ": .04, "AE": .04, "RU": .06, "CN": .08, "DE": .06,
    "IN": .06, "PK": .04, "LB": .04, "FR": .04, "IT": .04, "GB": .03, "IR": .12, "SE": .02,
    "ES": .02, "JP": .02, "KR": .01, "SY": .02, "QA": .01, "OM": .01, "KW": .01, "NL": .02,
    "AT": .01, "CH": .01, "CA": .01, "AU": .01, "US": .01,
}
CULTURE_VISITORS: Final = {
    "IQ": .2, "AE": .1, "QA": .05, "KW": .05, "OM": .05, "DE": .1, "FR": .08, "IT": .08,
    "CN": .08, "IR": .1, "RU": .05, "GB": .06, "ES": .03, "NL": .03, "JP": .03,
}
#: Nationalities of the foreign visitors leaving by each post ("IR" = Iranians living abroad).
VISITORS_BY_POST: Final = {
    "IKA": AIR_VISITORS,
    "MHD": {"IQ": .45, "AF": .15, "PK": .08, "BH": .05, "KW": .05, "LB": .05, "IR": .05,
            "IN": .04, "TR": .03, "AE": .05},
    "SYZ": CULTURE_VISITORS, "IFN": CULTURE_VISITORS,
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
RESIDENT_NATIONALITY: Final = {"IR": .95, "AF": .04, "IQ": .01}
PILGRIM_NATIONALITY: Final = {"IR": .94, "AF": .03, "PK": .02, "IN": .01}
TRADER_NATIONALITY: Final = {
    "MEH": {"IR": .55, "IQ": .45}, "SHL": {"IR": .55, "IQ": .45}, "BAZ": {"IR": .7, "TR": .3},
    "ASR": {"IR": .6, "AZ": .4}, "SRK": {"IR": .5, "TM": .2, "AF": .3},
    "NOR": {"IR": .7, "AM": .3}, "ANZ": {"IR": .6, "RU": .4}, "AMR": {"IR": .6, "RU": .4},
}
TRADER_OTHER_NATIONALITY: Final = {"IR": .85, "AF": .05, "IQ": .05, "AE": .05}
TRADER_AIR_DEST: Final = {
    "AE": .3, "IQ": .25, "TR": .15, "RU": .08, "AZ": .05, "AM": .04, "GE": .04, "DE": .05,
    "CN": .04,
}
#: Chance that a visitor not Iranian goes straight home, when the post serves home.
VISITOR_GOES_HOME: Final = 0.75
TRADER_USUAL_MARKET: Final = 0.85

#: Iranian weekend (Thursday, Friday) travel is a little heavier.
WEEKDAY_DEPARTURES: Final = np.array([.97, .97, .96, 1.12, 1.05, .95, .98])  # Mon..Sun
WEEKDAY_EXPORTS: Final = np.array([1.15, 1.15, 1.15, .6, .15, 1.15, 1.15])
#: Hour-of-day weights of departures by mode (air through the night, land and sea by day).
HOURS: Final = np.array([
    [6, 7, 7, 6, 5, 4, 3, 3, 3, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 5, 5, 5, 6],
    [0, 0, 0, 0, 0, 0, 0, 2, 4, 5, 5, 5, 5, 5, 5, 5, 4, 3, 2, 1, 0, 0, 0, 0],
    [0, 0, 0, 0, 0, 0, 1, 3, 5, 6, 6, 6, 6, 6, 6, 6, 5, 5, 4, 3, 2, 1, 1, 0],
], dtype=float)

# Nowruz (1 Farvardin) and Arbaeen (20 Safar) dates; years outside the table fall back to
# 21 March and to Arbaeen 2026 moved by whole lunar years.
NOWRUZ: Final = {y: dt.date.fromisoformat(d) for y, d in {
    2023: "2023-03-21", 2024: "2024-03-20", 2025: "2025-03-21", 2026: "2026-03-21",
    2027: "2027-03-21", 2028: "2028-03-20", 2029: "2029-03-20", 2030: "2030-03-21"}.items()}
ARBAEEN: Final = {y: dt.date.fromisoformat(d) for y, d in {
    2023: "2023-09-06", 2024: "2024-08-25", 2025: "2025-08-14", 2026: "2026-08-04",
    2027: "2027-07-25", 2028: "2028-07-13", 2029: "2029-07-03", 2030: "2030-06-22"}.items()}
LUNAR_YEAR_DAYS: Final = 354.367

# Carrying: chance a traveller of each group carries handicrafts, extra item lines, the
# category mix, and whether they declare and by how much they under-declare (Beta a, b).
P_CARRY: Final = np.array([.024, .085, .97, .03])
EXTRA_LINES: Final = np.array([.35, .5, 1.2, .2])
CATEGORY_MIX: Final = [
    {"carpet": .15, "kilim": .1, "textiles": .2, "ceramics": .1, "metalwork": .1,
     "jewelry": .15, "woodwork": .1, "basketry": .1},
    {"carpet": .12, "kilim": .1, "textiles": .18, "ceramics": .15, "metalwork": .15,
     "jewelry": .12, "woodwork": .1, "basketry": .08},
    {"carpet": .45, "kilim": .2, "textiles": .12, "ceramics": .05, "metalwork": .08,
     "jewelry": .06, "woodwork": .03, "basketry": .01},
    {"carpet": .05, "kilim": .05, "textiles": .35, "ceramics": .05, "metalwork": .1,
     "jewelry": .3, "woodwork": .05, "basketry": .05},
]
P_DECLARE: Final = np.array([.25, .35, .6, .2])
UNDER_DECLARATION: Final = np.array([[7, 3], [8, 3], [6, 5], [7, 3]], dtype=float)
P_ITEM_DECLARED: Final = 0.85
P_HS_CODE: Final = np.array([.4, .4, .8, .3])
P_RESALE: Final = np.array([.03, .05, 1.0, .01])

K: Final = {c: i for i, c in enumerate(CATEGORIES)}
#: Unit value in USD per category: median, log-sd, cap (carpets heavy-tailed but bounded).
UNIT_VALUE: Final = {
    "carpet": (350, 1.0, 12_000), "kilim": (120, .8, 3_000), "textiles": (35, .8, 1_500),
    "ceramics": (30, .8, 1_000), "metalwork": (45, .9, 2_000), "jewelry": (70, 1.1, 5_000),
    "woodwork": (35, .8, 1_500), "basketry": (15, .6, 300),
}
#: Pieces per item line: travellers 1 + Poisson(lam); traders 1 + NegBin(mean, shape 1.5), capped.
QTY_TRAVELLER: Final = {"carpet": .1, "kilim": .2, "textiles": .8, "ceramics": 1.0,
                        "metalwork": .6, "jewelry": .8, "woodwork": .6, "basketry": .8}
QTY_TRADER: Final = {"carpet": (5, 40), "kilim": (7, 60), "textiles": (19, 200),
                     "ceramics": (19, 200), "metalwork": (19, 200), "jewelry": (19, 200),
                     "woodwork": (19, 200), "basketry": (19, 200)}

# Inspections: the random-selection probability of each post (and, on some days, half or
# double it), then targeting of suspicious travellers among those not picked at random.
P_RANDOM_INSPECTION: Final = {
    "IKA": .01, "MHD": .015, "SYZ": .02, "IFN": .02, "TBZ": .02, "KIH": .025, "BND": .03,
    "BUZ": .03, "ANZ": .03, "AMR": .03, "BAZ": .015, "ASR": .02, "NOR": .03, "SRK": .02,
    "MEH": .005, "SHL": .005,
}
DAY_INSPECTION_FACTORS: Final = (np.array([.5, 1.0, 2.0]), np.array([.1, .8, .1]))
P_TARGETED_TRADER: Final = 0.2
P_TARGETED_BIG_LOAD: Final = 0.05
BIG_LOAD_CENTS: Final = 200_000
P_TARGETED_OTHER: Final = 0.0005

CURRENCIES: Final[tuple[str, ...]] = ("IRR", "USD", "EUR", "AED", "IQD", "TRY")
DECIMALS: Final = np.array([0, 2, 2, 2, 0, 2])
IRR, USD, EUR, AED, IQD, TRY = range(6)

DECLARATION_CURRENCY: Final = np.array([.65, .15, .08, .05, .04, .03])
INSPECTION_CURRENCY: Final = np.array([.9, .07, .03, 0, 0, 0])
HOME_CURRENCY: Final = np.array([
    {"IQ": IQD, "TR": TRY, "AE": AED, "QA": AED, "OM": AED, "KW": AED, "BH": AED,
     "SA": AED, "DE": EUR, "FR": EUR, "IT": EUR, "ES": EUR, "NL": EUR, "AT": EUR,
     "US": USD}.get(c, -1) for c in COUNTRIES])
P_HOME_CURRENCY: Final = 0.4

# Payments.
CITIES: Final[tuple[str, ...]] = (
    "Tehran", "Isfahan", "Shiraz", "Mashhad", "Tabriz", "Kashan", "Yazd", "Qom", "Kish",
    "Bandar Abbas", "Bushehr", "Rasht", "Sari", "Urmia", "Ardabil", "Kermanshah", "Ahvaz",
    "Kerman",
)
CITY_BY_POST: Final = {
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
CITY_POPULATION: Final = {
    "Tehran": 9, "Isfahan": 2.2, "Shiraz": 1.8, "Mashhad": 3.3, "Tabriz": 1.6, "Kashan": .4,
    "Yazd": .6, "Qom": 1.3, "Kish": .04, "Bandar Abbas": .6, "Bushehr": .25, "Rasht": .7,
    "Sari": .35, "Urmia": .75, "Ardabil": .55, "Kermanshah": .95, "Ahvaz": 1.2, "Kerman": .55,
}
HANDICRAFT_MCC: Final[tuple[str, ...]] = tuple(sorted(HANDICRAFT_MCCS))
#: Where each category is bought: carpets at floor-covering shops, jewellery at jewellers,
#: the rest at souvenir shops, galleries and craft shops.
MCC_OF_CATEGORY: Final = {"carpet": "5713", "kilim": "5713", "jewelry": "5944",
                          "textiles": "5947", "basketry": "5947", "woodwork": "5947",
                          "ceramics": "5971", "metalwork": "5971"}
OTHER_MCC: Final[tuple[str, ...]] = ("5812", "5411", "7011", "4121", "5311", "5999", "4722", "5691")
OTHER_MCC_P: Final = np.array([.3, .2, .15, .1, .08, .07, .05, .05])
MCCS: Final[tuple[str, ...]] = HANDICRAFT_MCC + OTHER_MCC
MERCHANTS_PER_CITY_MCC: Final = 60
P_TOURIST_CARD: Final = np.array([.15, .08, .04])  # by mode, foreign visitors only
P_CARD_FOR_ITEM: Final = 0.45
P_DOMESTIC_CARD_FOR_ITEM: Final = 0.3
P_HANDICRAFT_NOT_CARRIED: Final = 0.2
OTHER_PURCHASES_MEAN: Final = 3.0
PURCHASE_DAYS_BEFORE: Final = 7
DOMESTIC_CARDS: Final = 3_000_000
PUBLIC_HANDICRAFT_PER_DAY: Final = 6_000.0
PUBLIC_OTHER_PER_DAY: Final = 9_000.0
P_REFUND, P_REVERSAL = 0.01, 0.005

# Formal exports: a pool of exporters, each at a home post; handicraft houses file mostly
# handicraft lines, the others pistachios, saffron, dates, petrochemicals and the like.
EXPORTERS: Final = 1_500
EXPORT_POST: Final = {
    "BND": .35, "IKA": .15, "BAZ": .12, "MEH": .06, "SHL": .06, "BUZ": .06, "ASR": .04,
    "SRK": .04, "AMR": .04, "ANZ": .03, "NOR": .02, "MHD": .02, "TBZ": .01,
}
EXPORT_DEST_BY_MODE: Final = {
    AIR: {"AE": .2, "DE": .15, "CN": .1, "IQ": .1, "TR": .1, "RU": .05, "JP": .05,
          "GB": .05, "IT": .05, "FR": .05, "QA": .05, "KW": .05},
    SEA: {"AE": .45, "CN": .15, "IN": .1, "OM": .1, "QA": .05, "KW": .05, "IQ": .05,
          "RU": .05},
}
P_HANDICRAFT_HOUSE: Final = 0.4
P_HANDICRAFT_LINE: Final = np.array([.05, .85])
FORMAL_HANDICRAFT_VALUE: Final = (2_800, 1.2, 500_000)
FORMAL_OTHER_VALUE: Final = (45_000, 1.3, 5_000_000)
#: Non-handicraft HS codes: (code, USD per unit of quantity).
FORMAL_OTHER_HS: Final = (
    ("080251", 8.0), ("080252", 9.0), ("091020", 900.0), ("080410", 1.2), ("390120", 1.0),
    ("390110", 1.1), ("720712", .5), ("252329", .05), ("760110", 2.2), ("080510", .6),
    ("330190", 30.0), ("170490", 5.0), ("080620", 2.0),
)
EXPORT_CURRENCY: Final = np.array([.15, .35, .2, .2, .05, .05])

HS_SUFFIXES: Final = ("10", "90", "20", "00")

# Time: event times are Tehran wall-clock seconds since 1970-01-01 (Iran has kept +03:30
# all year since 2023), so a local day is ``t // DAY_S``.
EPOCH_ORDINAL: Final = dt.date(1970, 1, 1).toordinal()
DAY_S: Final = 86_400
TEHRAN: Final = ZoneInfo("Asia/Tehran")


def bump(date: dt.date, table: dict[int, dt.date], default: tuple[int, int] | None,
         shift: int, sd: float) -> float:
    """Gaussian bump around the nearest yearly date (+ shift days) of a festival table."""
    best = 0.0
    for year in (date.year - 1, date.year, date.year + 1):
        centre = table.get(year) or (dt.date(year, *default) if default else None)
        if centre is not None:
            d = (date - centre).days - shift
            best = max(best, float(np.exp(-0.5 * (d / sd) ** 2)))
    return best


def lunar_shift(base: dt.date, near: dt.date) -> dt.date:
    """The date whole lunar years from ``base`` that falls nearest ``near``."""
    k = round((near - base).days / LUNAR_YEAR_DAYS)
    return base + dt.timedelta(days=round(k * LUNAR_YEAR_DAYS))


def season(date: dt.date) -> tuple[float, float, float, float]:
    """Multipliers of resident, visitor and trader departures, and the Arbaeen pilgrim share
    of the day (fraction of the year's pilgrims who leave that day)."""
    nowruz_out = bump(date, NOWRUZ, (3, 21), 2, 6.0)
    nowruz_back = bump(date, NOWRUZ, (3, 21), 10, 5.0)
    summer = bump(date, {}, (7, 25), 0, 30.0)
    residents = 1 + 1.4 * nowruz_out + 0.25 * summer
    visitors = 1 + 0.8 * nowruz_back + 0.2 * summer
    traders = 1 - 0.4 * nowruz_out
    pilgrims = 0.0
    for year in (date.year, date.year + 1):
        arbaeen = ARBAEEN.get(year) or lunar_shift(ARBAEEN[2026], dt.date(year, 7, 1))
        if -20 <= (date - arbaeen).days <= 2:
            offsets = np.arange(-20, 3)
            w = np.exp(-0.5 * ((offsets + 6) / 4.0) ** 2)
            pilgrims += float(w[(date - arbaeen).days + 20] / w.sum())
    return residents, visitors, traders, pilgrims


def mean_season() -> np.ndarray:
    """Yearly means of the resident and visitor multipliers (2026), to keep annual totals."""
    days = [dt.date(2026, 1, 1) + dt.timedelta(i) for i in range(365)]
    weekday = WEEKDAY_DEPARTURES[[d.weekday() for d in days]]
    m = np.array([season(d)[:2] for d in days]) * weekday[:, None]
    return m.mean(axis=0)


def epoch_day(date: dt.date) -> int:
    """Days since 1970-01-01 of a local date."""
    return date.toordinal() - EPOCH_ORDINAL


def iso_week(date: dt.date) -> str:
    """The contract's week label, e.g. ``2026-W07``."""
    y, w, _ = date.isocalendar()
    return f"{y}-W{w:02d}"


# Derived tables: cumulative distributions and lookup arrays, built once at import.
RES_DEST_CDF: Final = cdf_rows([DEST_BY_POST[p] for p in POSTS], C)
VISITOR_NAT_CDF: Final = cdf_rows([VISITORS_BY_POST[p] for p in POSTS], C)
RES_NAT_CDF: Final = cdf_of_weights(RESIDENT_NATIONALITY, C)
PILGRIM_NAT_CDF: Final = cdf_of_weights(PILGRIM_NATIONALITY, C)
PILGRIM_POST_P: Final = np.diff(cdf_of_weights(PILGRIM_POST, P), prepend=0.0)
CATEGORY_CDF: Final = cdf_rows(CATEGORY_MIX, K)
CITY: Final = {c: i for i, c in enumerate(CITIES)}
CITY_BY_POST_CDF: Final = cdf_rows([CITY_BY_POST[p] for p in POSTS], CITY)
CITY_POPULATION_CDF: Final = cdf_of_weights(CITY_POPULATION, CITY)
HOURS_CDF: Final = cdf_of(HOURS)
MCC_INDEX: Final = {m: i for i, m in enumerate(MCCS)}
MCC_OF_CATEGORY_IDX: Final = np.array([MCC_INDEX[MCC_OF_CATEGORY[c]] for c in CATEGORIES])
UNIT_MEDIAN: Final = np.array([UNIT_VALUE[c][0] for c in CATEGORIES], dtype=float)
UNIT_SIGMA: Final = np.array([UNIT_VALUE[c][1] for c in CATEGORIES])
UNIT_CAP: Final = np.array([UNIT_VALUE[c][2] for c in CATEGORIES], dtype=float)
QTY_LAMBDA: Final = np.array([QTY_TRAVELLER[c] for c in CATEGORIES])
QTY_TRADER_MEAN: Final = np.array([QTY_TRADER[c][0] for c in CATEGORIES], dtype=float)
QTY_TRADER_CAP: Final = np.array([QTY_TRADER[c][1] for c in CATEGORIES])
HEADINGS: Final = [CATEGORY_HS_HEADINGS[c] for c in CATEGORIES]
EXPORT_DEST_CDF: Final = np.stack([
    cdf_of_weights(EXPORT_DEST_BY_MODE[AIR], C) if MODE[i] == AIR
    else cdf_of_weights(EXPORT_DEST_BY_MODE[SEA], C) if DEST_BY_POST[p] is GULF_DEST
    else RES_DEST_CDF[i] for i, p in enumerate(POSTS)])
ALLOWED_HOME: Final = np.zeros((len(POSTS), len(COUNTRIES)), dtype=bool)
for _i, _p in enumerate(POSTS):
    if MODE[_i] == AIR:
        ALLOWED_HOME[_i] = True
    elif MODE[_i] == SEA:
        ALLOWED_HOME[_i, [C[c] for c in DEST_BY_POST[_p]]] = True
ALLOWED_HOME[:, C["IR"]] = False
assert set(HANDICRAFT_MCC) <= set(MCCS) and set(MCC_OF_CATEGORY.values()) <= HANDICRAFT_MCCS
N_HEADINGS: Final = np.array([len(h) for h in HEADINGS])
#: category x heading (padded by repetition) x suffix -> six-digit HS code
HS_TABLE: Final = np.array([[[h + s for s in HS_SUFFIXES]
                             for h in (hs * N_HEADINGS.max())[:N_HEADINGS.max()]]
                            for hs in HEADINGS])


def hs_codes(rng: np.random.Generator, category: np.ndarray) -> np.ndarray:
    """Six-digit HS codes under a heading of each item's category."""
    pick = (rng.random(len(category)) * N_HEADINGS[category]).astype(int)
    suffix = rng.integers(0, len(HS_SUFFIXES), len(category))
    return HS_TABLE[category, pick, suffix]
