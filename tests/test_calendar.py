"""Solar Hijri conversion: official anchors, round trips, and ISO weeks in the Iranian calendar."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from estimators.calendar import (
    SolarHijriDate,
    from_solar_hijri,
    is_leap_year,
    iso_week_monday,
    iso_week_solar_hijri,
    month_length,
    nowruz,
    parse_iso_week,
    to_solar_hijri,
)

# Gregorian date -> Solar Hijri date, from the official calendar.
ANCHORS = [
    (dt.date(2026, 3, 21), (1405, 1, 1)),  # Nowruz 1405
    (dt.date(2025, 3, 21), (1404, 1, 1)),
    (dt.date(2024, 3, 20), (1403, 1, 1)),
    (dt.date(2023, 3, 21), (1402, 1, 1)),
    (dt.date(2025, 3, 20), (1403, 12, 30)),  # 1403 is a leap year
    (dt.date(2021, 3, 20), (1399, 12, 30)),
    (dt.date(2026, 3, 20), (1404, 12, 29)),  # 1404 is not
    (dt.date(1979, 2, 11), (1357, 11, 22)),  # 22 Bahman 1357
    (dt.date(1979, 4, 1), (1358, 1, 12)),  # 12 Farvardin 1358
    (dt.date(2026, 2, 9), (1404, 11, 20)),
    (dt.date(2025, 9, 22), (1404, 6, 31)),
    (dt.date(2025, 9, 23), (1404, 7, 1)),
]


@pytest.mark.parametrize(("gregorian", "shamsi"), ANCHORS)
def test_known_dates(gregorian, shamsi):
    assert to_solar_hijri(gregorian) == SolarHijriDate(*shamsi)
    assert from_solar_hijri(*shamsi) == gregorian


def test_leap_years_around_now():
    assert [y for y in range(1395, 1413) if is_leap_year(y)] == [1395, 1399, 1403, 1408, 1412]
    assert month_length(1403, 12) == 30 and month_length(1404, 12) == 29
    assert nowruz(1405) == dt.date(2026, 3, 21)


def test_dates_that_do_not_exist():
    with pytest.raises(ValueError):
        from_solar_hijri(1404, 12, 30)
    with pytest.raises(ValueError):
        from_solar_hijri(1404, 7, 31)
    with pytest.raises(ValueError):
        from_solar_hijri(1404, 13, 1)


@given(st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(2300, 12, 31)))
def test_round_trip_and_next_day(day):
    shamsi = to_solar_hijri(day)
    assert from_solar_hijri(*shamsi) == day
    nxt = to_solar_hijri(day + dt.timedelta(days=1))
    if shamsi.day < month_length(shamsi.year, shamsi.month):
        assert nxt == SolarHijriDate(shamsi.year, shamsi.month, shamsi.day + 1)
    elif shamsi.month < 12:
        assert nxt == SolarHijriDate(shamsi.year, shamsi.month + 1, 1)
    else:
        assert nxt == SolarHijriDate(shamsi.year + 1, 1, 1)


@given(st.integers(min_value=1300, max_value=1500))
def test_years_have_365_or_366_days(year):
    length = (nowruz(year + 1) - nowruz(year)).days
    assert length in (365, 366)
    assert sum(month_length(year, m) for m in range(1, 13)) == length


def test_weeks_in_the_iranian_calendar():
    week = iso_week_solar_hijri("2026-W07")
    assert str(week.week_start) == "1404-11-20" and str(week.week_end) == "1404-11-26"
    assert (week.year, week.month) == (1404, 11)
    # The week of Nowruz 1405: Monday 16 March to Sunday 22 March 2026; its Thursday is
    # still 1404, so the week belongs to Esfand 1404.
    nowruz_week = iso_week_solar_hijri("2026-W12")
    assert str(nowruz_week.week_start) == "1404-12-25"
    assert str(nowruz_week.week_end) == "1405-01-02"
    assert (nowruz_week.year, nowruz_week.month) == (1404, 12)
    assert iso_week_solar_hijri("2026-W13").year == 1405


@pytest.mark.parametrize("label", ["2026-W54", "2025-W53", "2026-7", "2026-W7", "W07", "", "2026-W00"])
def test_bad_week_labels(label):
    with pytest.raises(ValueError):
        parse_iso_week(label)


def test_week_53():
    assert iso_week_monday("2026-W53") == dt.date(2026, 12, 28)


def test_doctests():
    import doctest

    import estimators.calendar

    assert doctest.testmod(estimators.calendar).failed == 0
