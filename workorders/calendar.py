"""Calendars for work-order deadlines: round the clock, or the working hours of the business office.

A burst main is repaired day and night, but a billing complaint or a meter-reading dispute is handled
by the utility's business office, which works e.g. 08:30–12:00 and 13:30–17:30 on working days. For
such categories a deadline of ``sla_hours = 8`` means eight *working* hours: a complaint filed on a
Friday at 16:00 is due on Monday at 15:00 (or later if Monday is a public holiday), not on Saturday
at midnight.

Which days are working days in China does not follow the weekday alone: the State Council publishes
the statutory holidays each year, together with make-up working days (调休) on which a Saturday or
Sunday is worked to bridge a holiday. That list comes from the ``chinese_calendar`` package; for a
year it does not know yet (it is updated once the State Council publishes the next year), the
calendar falls back to Monday–Friday and logs a warning, so keep the package current. A site with its
own calendar can inject an ``is_workday`` function instead.

All datetimes going in and out are timezone-aware and in UTC, like everything the hub stores; the
working periods are local wall-clock times in the office's time zone (e.g. ``Asia/Shanghai``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Protocol, runtime_checkable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import chinese_calendar

from router.logs import get_logger

log = get_logger(__name__)

CALENDAR_KINDS = ("24x7", "working_hours")
# A calendar without a single working day in this many consecutive days is considered broken.
MAX_IDLE_DAYS = 366

_PERIOD = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")
# Years for which chinese_calendar had no data and the Monday–Friday fallback was logged.
_warned_years: set[int] = set()


@runtime_checkable
class SlaCalendar(Protocol):
    """Counts the time allowed for a work order."""

    def add(self, start: datetime, hours: float) -> datetime:
        """The moment ``hours`` of counted time after ``start`` (both timezone-aware, UTC)."""
        ...


def _check(start: datetime, hours: float) -> None:
    if start.tzinfo is None or start.utcoffset() is None:
        raise ValueError(f"start must be a timezone-aware datetime, not {start!r}")
    if not math.isfinite(hours) or hours < 0:
        raise ValueError(f"hours must be a finite number >= 0, not {hours!r}")


class RoundTheClock(SlaCalendar):
    """Every hour counts: nights, weekends and holidays included."""

    def add(self, start: datetime, hours: float) -> datetime:
        _check(start, hours)
        if hours == 0:
            return start
        return (start + timedelta(hours=hours)).astimezone(UTC)

    def __repr__(self) -> str:
        return "RoundTheClock()"


@dataclass(frozen=True, order=True)
class Period:
    """A working period of a day, in minutes after local midnight (``end`` may be 24:00 = 1440)."""

    start: int
    end: int

    def __str__(self) -> str:
        return f"{self.start // 60:02d}:{self.start % 60:02d}-{self.end // 60:02d}:{self.end % 60:02d}"


def _minutes(hour: str, minute: str, text: str) -> int:
    h, m = int(hour), int(minute)
    if m > 59 or h > 24 or (h == 24 and m != 0):
        raise ValueError(f"invalid time of day in working period {text.strip()!r}")
    return h * 60 + m


def parse_periods(text: str) -> tuple[Period, ...]:
    """Parse ``"08:30-12:00,13:30-17:30"``: comma-separated, ordered, non-overlapping ``HH:MM-HH:MM``.

    ``24:00`` is accepted as the end of the day. Raises :class:`ValueError` for anything else.
    """
    if not text or not text.strip():
        raise ValueError("working periods are empty: expected e.g. '08:30-12:00,13:30-17:30'")
    periods: list[Period] = []
    for part in text.split(","):
        match = _PERIOD.match(part)
        if match is None:
            raise ValueError(f"malformed working period {part.strip()!r}: expected HH:MM-HH:MM, e.g. '08:30-12:00'")
        period = Period(_minutes(*match.group(1, 2), part), _minutes(*match.group(3, 4), part))
        if period.end <= period.start:
            raise ValueError(f"working period {period} ends before it starts")
        if periods:
            previous = periods[-1]
            if period.start < previous.start:
                raise ValueError(f"working periods are not in order: {period} comes after {previous}")
            if period.start < previous.end:
                raise ValueError(f"working periods overlap: {previous} and {period}")
        periods.append(period)
    return tuple(periods)


def chinese_workday(day: date) -> bool:
    """A working day per the State Council's holiday plan (with 调休), Monday–Friday for unknown years."""
    try:
        return bool(chinese_calendar.is_workday(day))
    except NotImplementedError:
        if day.year not in _warned_years:
            _warned_years.add(day.year)
            log.warning("chinese_calendar has no holiday data for this year; counting Monday-Friday", year=day.year)
        return day.weekday() < 5


def _zone(timezone: str | tzinfo) -> tzinfo:
    if not isinstance(timezone, str):
        return timezone
    try:
        return ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {timezone!r}") from exc


class WorkingHours(SlaCalendar):
    """Only time inside the working periods of working days counts.

    ``periods`` is a string for :func:`parse_periods` or already parsed periods; ``timezone`` the
    local zone of the periods; ``is_workday`` decides which local dates are worked (default:
    :func:`chinese_workday`).
    """

    parse_periods = staticmethod(parse_periods)

    def __init__(
        self, periods: str | Sequence[Period], timezone: str | tzinfo, is_workday: Callable[[date], bool] | None = None
    ) -> None:
        # Already parsed periods are validated the same way as text.
        text = periods if isinstance(periods, str) else ",".join(str(p) for p in periods)
        self.periods = parse_periods(text)
        self.timezone = _zone(timezone)
        self.is_workday = is_workday or chinese_workday

    def __repr__(self) -> str:
        periods = ",".join(str(p) for p in self.periods)
        return f"WorkingHours({periods!r}, {str(self.timezone)!r})"

    def is_open(self, at: datetime) -> bool:
        """Whether ``at`` falls inside a working period of a working day (the hotline's staffed hours)."""
        local = at.astimezone(self.timezone)
        minute = local.hour * 60 + local.minute
        return self.is_workday(local.date()) and any(p.start <= minute < p.end for p in self.periods)

    def _bounds(self, day: date, period: Period) -> tuple[datetime, datetime]:
        """A period of a local date as UTC instants (wall-clock times resolved by the zone, DST included)."""
        midnight = datetime(day.year, day.month, day.day, tzinfo=self.timezone)
        start = (midnight + timedelta(minutes=period.start)).astimezone(UTC)
        end = (midnight + timedelta(minutes=period.end)).astimezone(UTC)
        return start, end

    def add(self, start: datetime, hours: float) -> datetime:
        _check(start, hours)
        if hours == 0:
            return start
        remaining = timedelta(hours=hours)
        cursor = start.astimezone(UTC)
        day = cursor.astimezone(self.timezone).date()
        idle = 0
        # One iteration per local day: a few thousand for years of working time, cheap enough.
        while True:
            if not self.is_workday(day):
                idle += 1
                if idle >= MAX_IDLE_DAYS:
                    raise ValueError(f"no working day in the {MAX_IDLE_DAYS} days before {day}: check the calendar")
                day += timedelta(days=1)
                continue
            idle = 0
            for period in self.periods:
                begin, end = self._bounds(day, period)
                if end <= cursor:
                    continue
                begin = max(begin, cursor)
                available = end - begin
                if available <= timedelta(0):  # a period swallowed by a daylight-saving jump
                    continue
                if remaining <= available:
                    return begin + remaining
                remaining -= available
                cursor = end
            day += timedelta(days=1)


def calendar_for(kind: str, periods: str, timezone: str) -> SlaCalendar:
    """The calendar of a category: ``"24x7"`` (periods and zone unused) or ``"working_hours"``."""
    if kind == "24x7":
        return RoundTheClock()
    if kind == "working_hours":
        return WorkingHours(periods, timezone)
    raise ValueError(f"unknown SLA calendar {kind!r}: expected one of {', '.join(CALENDAR_KINDS)}")
