"""The Solar Hijri (Iranian, Jalali) calendar, and ISO weeks seen in it.

Iran's official calendar starts each year at Nowruz, the day of the March equinox (by the
Tehran noon rule), with six months of 31 days, five of 30 and Esfand of 29 or 30. The
official leap years come from the astronomical rule; this module uses Kazimierz
Borkowski's arithmetic approximation of it (the one behind the ``jalaali`` libraries): a
table of break years between which leap years fall every four years, with a five-year gap
once per 29-, 33- or 37-year run. It agrees with the official calendar for the years the
project needs (and, unlike the 2820-year "Birashk" cycle, it has 1403 as a leap year, so
Nowruz 1404 fell on 2025-03-21 as the official calendar has it).

Pure functions over :class:`datetime.date`, no dependency.

Examples
--------
>>> to_solar_hijri(datetime.date(2026, 3, 21))
SolarHijriDate(year=1405, month=1, day=1)
>>> str(to_solar_hijri(datetime.date(2026, 2, 9)))
'1404-11-20'
>>> from_solar_hijri(1404, 1, 1)
datetime.date(2025, 3, 21)
>>> is_leap_year(1403), is_leap_year(1404)
(True, False)
>>> iso_week_solar_hijri("2026-W13")
WeekInSolarHijri(week_start=SolarHijriDate(year=1405, month=1, day=3), week_end=SolarHijriDate(year=1405, month=1, day=9), year=1405, month=1)

References
----------
K. M. Borkowski, "The Persian calendar for 3000 years", Earth, Moon, and Planets 74
(1996) 223-230.
"""

from __future__ import annotations

import datetime
import re
from typing import NamedTuple

__all__ = [
    "MONTH_NAMES",
    "SolarHijriDate",
    "WeekInSolarHijri",
    "nowruz",
    "is_leap_year",
    "month_length",
    "to_solar_hijri",
    "from_solar_hijri",
    "iso_week_monday",
    "iso_week_solar_hijri",
    "parse_iso_week",
]

#: Month names in the usual English transliteration, Farvardin (1) to Esfand (12).
MONTH_NAMES: tuple[str, ...] = (
    "Farvardin", "Ordibehesht", "Khordad", "Tir", "Mordad", "Shahrivar",
    "Mehr", "Aban", "Azar", "Dey", "Bahman", "Esfand",
)

# Borkowski's break years: the leap-year pattern changes phase at each.
_BREAKS: tuple[int, ...] = (
    -61, 9, 38, 199, 426, 686, 756, 818, 1111, 1181, 1210,
    1635, 2060, 2097, 2192, 2262, 2324, 2394, 2456, 3178,
)
#: Years this module converts (the range of Borkowski's table).
FIRST_YEAR, LAST_YEAR = 1, _BREAKS[-1] - 1


class SolarHijriDate(NamedTuple):
    """A Solar Hijri calendar date; ``str()`` gives ``YYYY-MM-DD`` (e.g. ``1405-01-09``)."""

    year: int
    month: int
    day: int

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}-{self.day:02d}"

    def isoformat(self) -> str:
        """The date as ``YYYY-MM-DD`` in the Solar Hijri calendar."""
        return str(self)


class WeekInSolarHijri(NamedTuple):
    """An ISO week (Monday to Sunday) in the Solar Hijri calendar.

    ``year`` and ``month`` are those of the week's Thursday, that is of the Solar Hijri
    month that holds most (at least four) of its seven days: each week belongs to exactly
    one Iranian month and year, by the same rule ISO uses to give weeks to years.
    """

    week_start: SolarHijriDate
    week_end: SolarHijriDate
    year: int
    month: int


def _nowruz_march_day(year: int) -> int:
    """Day of March (Gregorian year ``year + 621``) on which ``year`` begins."""
    if not FIRST_YEAR <= year <= LAST_YEAR:
        raise ValueError(f"Solar Hijri year {year} outside {FIRST_YEAR}..{LAST_YEAR}")
    gy = year + 621
    leap_j = -14
    jp = _BREAKS[0]
    jump = 0
    for jm in _BREAKS[1:]:
        jump = jm - jp
        if year < jm:
            break
        leap_j += (jump // 33) * 8 + (jump % 33) // 4
        jp = jm
    n = year - jp  # >= 0 for the supported range, so floor and truncating division agree
    leap_j += (n // 33) * 8 + ((n % 33) + 3) // 4
    if jump % 33 == 4 and jump - n == 4:
        leap_j += 1
    leap_g = gy // 4 - ((gy // 100 + 1) * 3) // 4 - 150
    return 20 + leap_j - leap_g


def nowruz(year: int) -> datetime.date:
    """The Gregorian date of 1 Farvardin of Solar Hijri ``year``.

    >>> nowruz(1403)
    datetime.date(2024, 3, 20)
    """
    return datetime.date(year + 621, 3, 1) + datetime.timedelta(days=_nowruz_march_day(year) - 1)


def is_leap_year(year: int) -> bool:
    """True when Esfand of ``year`` has 30 days (the year has 366 days)."""
    return (nowruz(year + 1) - nowruz(year)).days == 366


def month_length(year: int, month: int) -> int:
    """Days in ``month`` (1-12) of Solar Hijri ``year``."""
    if not 1 <= month <= 12:
        raise ValueError(f"Solar Hijri month {month} outside 1..12")
    if month <= 6:
        return 31
    if month <= 11:
        return 30
    return 30 if is_leap_year(year) else 29


def to_solar_hijri(day: datetime.date) -> SolarHijriDate:
    """The Solar Hijri date of a Gregorian date."""
    if isinstance(day, datetime.datetime):
        day = day.date()
    year = day.year - 621
    start = nowruz(year)
    if day < start:
        year -= 1
        start = nowruz(year)
    offset = (day - start).days  # 0-based day of the year
    if offset < 186:
        return SolarHijriDate(year, offset // 31 + 1, offset % 31 + 1)
    offset -= 186
    return SolarHijriDate(year, 7 + offset // 30, offset % 30 + 1)


def from_solar_hijri(year: int, month: int, day: int) -> datetime.date:
    """The Gregorian date of a Solar Hijri date; raises ValueError for a date that does not exist."""
    if not 1 <= day <= month_length(year, month):
        raise ValueError(f"{year:04d}-{month:02d}-{day:02d} is not a Solar Hijri date")
    offset = (month - 1) * 31 if month <= 7 else 186 + (month - 7) * 30
    return nowruz(year) + datetime.timedelta(days=offset + day - 1)


_ISO_WEEK = re.compile(r"(\d{4})-W(\d{2})")


def parse_iso_week(label: str) -> tuple[int, int]:
    """``(year, week)`` of an ISO week label ``YYYY-Www``; ValueError if there is no such week.

    >>> parse_iso_week("2026-W07")
    (2026, 7)
    """
    match = _ISO_WEEK.fullmatch(label) if isinstance(label, str) else None
    if match is None:
        raise ValueError(f"{label!r} is not an ISO week of the form YYYY-Www (e.g. 2026-W07)")
    year, week = int(match[1]), int(match[2])
    try:
        datetime.date.fromisocalendar(year, week, 1)
    except ValueError:
        raise ValueError(f"{label!r}: {year} has no ISO week {week}") from None
    return year, week


def iso_week_monday(label: str) -> datetime.date:
    """The Monday (first day) of an ISO week label.

    >>> iso_week_monday("2026-W07")
    datetime.date(2026, 2, 9)
    """
    year, week = parse_iso_week(label)
    return datetime.date.fromisocalendar(year, week, 1)


def iso_week_solar_hijri(label: str) -> WeekInSolarHijri:
    """An ISO week's first and last days in the Solar Hijri calendar, and its Iranian month."""
    monday = iso_week_monday(label)
    thursday = to_solar_hijri(monday + datetime.timedelta(days=3))
    return WeekInSolarHijri(
        week_start=to_solar_hijri(monday),
        week_end=to_solar_hijri(monday + datetime.timedelta(days=6)),
        year=thursday.year,
        month=thursday.month,
    )
