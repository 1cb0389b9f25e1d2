"""SLA calendars: round the clock, and working hours with Chinese statutory holidays and make-up days."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from router.settings import Settings
from workorders.calendar import (
    CALENDAR_KINDS,
    Period,
    RoundTheClock,
    SlaCalendar,
    WorkingHours,
    calendar_for,
    chinese_workday,
    parse_periods,
)

OFFICE = "08:30-12:00,13:30-17:30"  # 7.5 working hours a day
# Beijing time as a fixed offset, independent of the zoneinfo lookup the calendar does itself.
BEIJING = timezone(timedelta(hours=8))


def bj(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    """A Beijing wall-clock time as the UTC instant the hub stores."""
    return datetime(year, month, day, hour, minute, second, tzinfo=BEIJING).astimezone(UTC)


def weekdays(day: date) -> bool:
    return day.weekday() < 5


@pytest.fixture(scope="module")
def office() -> WorkingHours:
    return WorkingHours(OFFICE, "Asia/Shanghai")


# --- working hours on ordinary days (March 2026 has no holiday) -------------------------------------------


def test_within_one_period(office: WorkingHours) -> None:
    assert office.add(bj(2026, 3, 10, 9, 0), 2) == bj(2026, 3, 10, 11, 0)


def test_crossing_the_lunch_break(office: WorkingHours) -> None:
    assert office.add(bj(2026, 3, 10, 11, 0), 2) == bj(2026, 3, 10, 14, 30)


def test_crossing_the_night(office: WorkingHours) -> None:
    assert office.add(bj(2026, 3, 10, 16, 30), 3) == bj(2026, 3, 11, 10, 30)


def test_ending_exactly_at_the_end_of_a_period(office: WorkingHours) -> None:
    assert office.add(bj(2026, 3, 10, 8, 30), 3.5) == bj(2026, 3, 10, 12, 0)
    assert office.add(bj(2026, 3, 10, 8, 30), 7.5) == bj(2026, 3, 10, 17, 30)


def test_friday_afternoon_to_monday(office: WorkingHours) -> None:
    # Friday 16:00–17:30 is 1.5 h; the other 6.5 h are Monday 08:30–12:00 and 13:30–16:30.
    assert office.add(bj(2026, 3, 13, 16, 0), 8) == bj(2026, 3, 16, 16, 30)


@pytest.mark.parametrize(
    ("start", "expected"),
    [
        (bj(2026, 3, 10, 22, 0), bj(2026, 3, 11, 9, 30)),  # at night
        (bj(2026, 3, 10, 6, 0), bj(2026, 3, 10, 9, 30)),  # early in the morning
        (bj(2026, 3, 10, 12, 30), bj(2026, 3, 10, 14, 30)),  # during the lunch break
        (bj(2026, 3, 10, 17, 30), bj(2026, 3, 11, 9, 30)),  # at the very end of the day
        (bj(2026, 3, 14, 10, 0), bj(2026, 3, 16, 9, 30)),  # on Saturday
        (bj(2026, 3, 15, 23, 59), bj(2026, 3, 16, 9, 30)),  # late on Sunday
    ],
)
def test_start_outside_working_time(office: WorkingHours, start: datetime, expected: datetime) -> None:
    assert office.add(start, 1) == expected


def test_zero_hours_returns_the_start_unchanged(office: WorkingHours) -> None:
    night = bj(2026, 3, 14, 3, 0)
    assert office.add(night, 0) == night
    assert RoundTheClock().add(night, 0) == night


def test_fractional_hours(office: WorkingHours) -> None:
    # The reminder at 80 % of an 8-hour deadline: 6.4 h = 6 h 24 min = 3.5 h in the morning + 2 h 54 min.
    assert office.add(bj(2026, 3, 10, 8, 30), 0.8 * 8) == bj(2026, 3, 10, 16, 24)
    assert office.add(bj(2026, 3, 10, 9, 0), 1 / 3) == bj(2026, 3, 10, 9, 20)
    assert office.add(bj(2026, 3, 10, 11, 59, 59), 2 / 3600) == bj(2026, 3, 10, 13, 30, 1)


def test_result_is_utc_whatever_the_zone_of_the_start(office: WorkingHours) -> None:
    start = datetime(2026, 3, 10, 9, 0, tzinfo=BEIJING)
    result = office.add(start, 1)
    assert result == datetime(2026, 3, 10, 2, 0, tzinfo=UTC)
    assert result.utcoffset() == timedelta(0)


def test_naive_start_and_negative_hours_are_refused(office: WorkingHours) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        office.add(datetime(2026, 3, 10, 9, 0), 1)  # naive: the point of the test
    for hours in (-1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="hours"):
            office.add(bj(2026, 3, 10, 9, 0), hours)
        with pytest.raises(ValueError, match="hours"):
            RoundTheClock().add(bj(2026, 3, 10, 9, 0), hours)


# --- statutory holidays and make-up working days (调休) from chinese_calendar ------------------------------


def test_chinese_calendar_knows_the_2026_autumn_holidays() -> None:
    # The dates the tests below rely on, as chinese_calendar lists them.
    assert not any(chinese_workday(date(2026, 10, day)) for day in range(1, 8))  # National Day, Thu–Wed
    assert chinese_workday(date(2026, 10, 10))  # Saturday, make-up working day
    assert not chinese_workday(date(2026, 10, 11))  # Sunday
    assert not any(chinese_workday(date(2026, 9, day)) for day in (25, 26, 27))  # Mid-Autumn, Fri–Sun
    assert chinese_workday(date(2026, 9, 20))  # Sunday, make-up working day


def test_national_day_holiday_is_skipped(office: WorkingHours) -> None:
    # Half an hour on Wednesday 30 September, then nothing until Thursday 8 October.
    assert office.add(bj(2026, 9, 30, 17, 0), 1) == bj(2026, 10, 8, 9, 0)
    assert office.add(bj(2026, 9, 30, 17, 0), 8) == bj(2026, 10, 8, 17, 30)
    assert office.add(bj(2026, 10, 3, 10, 0), 2) == bj(2026, 10, 8, 10, 30)


def test_make_up_saturday_after_national_day_counts(office: WorkingHours) -> None:
    # Friday 9 October 17:00–17:30, then Saturday 10 October is worked.
    assert office.add(bj(2026, 10, 9, 17, 0), 2) == bj(2026, 10, 10, 10, 0)
    # Sunday 11 October is off again.
    assert office.add(bj(2026, 10, 10, 16, 30), 2) == bj(2026, 10, 12, 9, 30)


def test_make_up_sunday_before_mid_autumn_counts(office: WorkingHours) -> None:
    assert office.add(bj(2026, 9, 18, 17, 0), 1) == bj(2026, 9, 20, 9, 0)
    # Thursday 24 September, then the Mid-Autumn holiday Friday–Sunday.
    assert office.add(bj(2026, 9, 24, 17, 0), 1) == bj(2026, 9, 28, 9, 0)


def test_unknown_year_falls_back_to_monday_to_friday() -> None:
    assert chinese_workday(date(2099, 1, 2))  # a Friday
    assert not chinese_workday(date(2099, 1, 3))  # a Saturday
    office = WorkingHours(OFFICE, "Asia/Shanghai")
    assert office.add(bj(2099, 1, 2, 17, 0), 1) == bj(2099, 1, 5, 9, 0)


# --- injected calendars, time zones, long spans -----------------------------------------------------------


def test_injected_is_workday() -> None:
    closed = {date(2026, 3, 11)}  # the site's own day off, a Wednesday
    site = WorkingHours(OFFICE, "Asia/Shanghai", is_workday=lambda day: day not in closed)
    assert site.add(bj(2026, 3, 10, 17, 0), 1) == bj(2026, 3, 12, 9, 0)
    # Every day is worked, weekends included.
    always = WorkingHours(OFFICE, "Asia/Shanghai", is_workday=lambda day: True)
    assert always.add(bj(2026, 3, 13, 17, 0), 1) == bj(2026, 3, 14, 9, 0)


def test_a_calendar_without_working_days_raises() -> None:
    never = WorkingHours(OFFICE, "Asia/Shanghai", is_workday=lambda day: False)
    with pytest.raises(ValueError, match="no working day"):
        never.add(bj(2026, 3, 10, 9, 0), 1)


def test_long_span_is_exact() -> None:
    # 2000 h at 7.5 h a day = 266 working days + 5 h; Monday 5 January 2026 begins 53 full weeks + 1 day,
    # which end on Monday 11 January 2027; the 5 h are Tuesday 08:30–12:00 and 13:30–15:00.
    office = WorkingHours(OFFICE, "Asia/Shanghai", is_workday=weekdays)
    assert office.add(bj(2026, 1, 5, 8, 30), 2000) == bj(2027, 1, 12, 15, 0)


def test_periods_are_local_wall_clock_across_daylight_saving() -> None:
    # Berlin moves from UTC+1 to UTC+2 on Sunday 29 March 2026; the office still opens at 08:00 local.
    berlin = WorkingHours("08:00-17:00", "Europe/Berlin", is_workday=weekdays)
    start = datetime(2026, 3, 27, 15, 0, tzinfo=UTC)  # Friday 16:00 CET
    assert berlin.add(start, 2) == datetime(2026, 3, 30, 7, 0, tzinfo=UTC)  # Monday 09:00 CEST


def test_whole_days_every_day_is_round_the_clock() -> None:
    nonstop = WorkingHours("00:00-24:00", "Asia/Shanghai", is_workday=lambda day: True)
    start = datetime(2026, 3, 10, 5, 17, 3, tzinfo=UTC)
    assert nonstop.add(start, 50.25) == datetime(2026, 3, 12, 7, 32, 3, tzinfo=UTC)


# --- round the clock, factory ---------------------------------------------------------------------------


def test_round_the_clock() -> None:
    clock = RoundTheClock()
    start = datetime(2026, 10, 1, 3, 0, tzinfo=UTC)  # a holiday at night: counts all the same
    assert clock.add(start, 8) == datetime(2026, 10, 1, 11, 0, tzinfo=UTC)
    assert clock.add(start, 0.8 * 8) == datetime(2026, 10, 1, 9, 24, tzinfo=UTC)
    assert clock.add(start, 2000) == datetime(2026, 12, 23, 11, 0, tzinfo=UTC)


def test_calendar_for() -> None:
    assert CALENDAR_KINDS == ("24x7", "working_hours")
    assert isinstance(calendar_for("24x7", "", "Asia/Shanghai"), RoundTheClock)
    working = calendar_for("working_hours", OFFICE, "Asia/Shanghai")
    assert isinstance(working, WorkingHours)
    assert isinstance(working, SlaCalendar)
    assert working.add(bj(2026, 3, 13, 16, 0), 8) == bj(2026, 3, 16, 16, 30)
    with pytest.raises(ValueError, match="unknown SLA calendar"):
        calendar_for("office", OFFICE, "Asia/Shanghai")
    with pytest.raises(ValueError, match="time zone"):
        calendar_for("working_hours", OFFICE, "Asia/Beijing")
    with pytest.raises(ValueError, match="malformed"):
        calendar_for("working_hours", "nine to five", "Asia/Shanghai")


# --- parsing the periods ----------------------------------------------------------------------------------


def test_parse_periods() -> None:
    assert parse_periods(OFFICE) == (Period(510, 720), Period(810, 1050))
    assert parse_periods(" 8:30 - 12:00 , 13:30-17:30 ") == (Period(510, 720), Period(810, 1050))
    assert parse_periods("00:00-24:00") == (Period(0, 1440),)
    assert parse_periods("08:00-12:00,12:00-17:00") == (Period(480, 720), Period(720, 1020))  # touching is fine
    assert WorkingHours.parse_periods("09:00-17:00") == (Period(540, 1020),)
    assert str(Period(510, 720)) == "08:30-12:00"
    assert WorkingHours([Period(510, 720)], "Asia/Shanghai").periods == (Period(510, 720),)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("08:30", "malformed"),
        ("8-12", "malformed"),
        ("08:30-12:00;13:30-17:30", "malformed"),
        ("08:30-12:00,", "malformed"),
        ("08h30-12h00", "malformed"),
        ("25:00-26:00", "invalid time"),
        ("08:60-09:00", "invalid time"),
        ("08:00-24:30", "invalid time"),
        ("12:00-08:00", "ends before it starts"),
        ("08:00-08:00", "ends before it starts"),
        ("13:30-17:30,08:30-12:00", "not in order"),
        ("08:00-12:00,11:00-13:00", "overlap"),
        ("08:00-18:00,09:00-10:00", "overlap"),
    ],
)
def test_parse_periods_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_periods(text)
    with pytest.raises(ValueError, match=message):
        WorkingHours(text, "Asia/Shanghai")


# --- properties -------------------------------------------------------------------------------------------

STARTS = st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2026, 10, 31), timezones=st.just(UTC))
MINUTES = st.integers(min_value=0, max_value=200 * 60)


@settings(max_examples=300, deadline=None)
@given(start=STARTS, a=MINUTES, b=MINUTES)
def test_adding_in_two_steps_is_adding_the_sum(start: datetime, a: int, b: int) -> None:
    office = WorkingHours(OFFICE, "Asia/Shanghai")
    assert office.add(start, (a + b) / 60) == office.add(office.add(start, a / 60), b / 60)
    clock = RoundTheClock()
    assert clock.add(start, (a + b) / 60) == clock.add(clock.add(start, a / 60), b / 60)


@settings(max_examples=300, deadline=None)
@given(start=STARTS, minutes=st.integers(min_value=1, max_value=200 * 60))
def test_a_deadline_falls_in_working_time(start: datetime, minutes: int) -> None:
    office = WorkingHours(OFFICE, "Asia/Shanghai")
    due = office.add(start, minutes / 60)
    assert due > start
    local = due.astimezone(BEIJING)
    assert chinese_workday(local.date())
    wall = local.hour * 60 + local.minute + local.second / 60 + local.microsecond / 60e6
    assert 510 < wall <= 720 or 810 < wall <= 1050


@pytest.mark.parametrize(
    ("start", "a", "b", "expected"),
    [
        (bj(2026, 3, 13, 16, 0), 1.5, 6.5, bj(2026, 3, 16, 16, 30)),  # the first step ends on Friday at 17:30
        (bj(2026, 9, 30, 11, 0), 1, 7, bj(2026, 10, 8, 11, 30)),  # across National Day
        (bj(2026, 10, 9, 17, 0), 0.5, 7.5, bj(2026, 10, 10, 17, 30)),  # into the make-up Saturday
        (bj(2026, 3, 10, 9, 0), 0, 2.25, bj(2026, 3, 10, 11, 15)),
    ],
)
def test_two_steps_examples(office: WorkingHours, start: datetime, a: float, b: float, expected: datetime) -> None:
    assert office.add(start, a + b) == expected
    assert office.add(office.add(start, a), b) == expected


def test_the_hub_refuses_to_start_with_malformed_working_hours(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUB_WORKING_HOURS", "17:00-08:00")
    with pytest.raises(ValidationError, match="working_hours"):
        Settings()
    monkeypatch.setenv("HUB_WORKING_HOURS", "09:00-12:00,14:00-18:00")
    assert Settings().working_hours == "09:00-12:00,14:00-18:00"
