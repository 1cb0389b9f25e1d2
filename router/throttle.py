"""Sign-in throttling, kept in the database so that every hub process counts the same failures.

Two counters per attempt: one for the username tried, one for the address it came from. Failures on a
username make its next attempt wait (1 s, 2 s, 4 s …) and, at ``login_max_failures``, lock it for
``login_lockout_minutes``: even the right password is refused until then. The lock is logged, written to
the audit log and shown to admins, who can lift it; a successful sign-in clears the username's counter.
An address only ever waits (up to a minute per attempt) after ``login_ip_free_failures`` failures, so an
office behind one address is slowed, never shut out. Counters start again after a quiet lockout period.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import String, case, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from router.db import dialect_insert
from router.models import Base, utcnow
from router.settings import Settings

MAX_ADDRESS_DELAY_SECONDS = 60


class Scope(enum.StrEnum):
    USER = "user"
    ADDRESS = "ip"


class LoginThrottle(Base):
    __tablename__ = "login_throttle"
    scope: Mapped[str] = mapped_column(String(8), primary_key=True)
    key: Mapped[str] = mapped_column(String(64), primary_key=True)  # the username tried, or the address
    failures: Mapped[int]
    last_failure_at: Mapped[datetime] = mapped_column(index=True)
    locked_until: Mapped[datetime | None]
    last_ip: Mapped[str | None] = mapped_column(String(64))


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why an attempt is refused before its password is even checked."""

    locked_until: datetime | None  # set when the username is locked
    retry_at: datetime


@dataclass(frozen=True, slots=True)
class Standing:
    """What the throttle knows of an attempt before its password is checked."""

    refusal: Refusal | None  # refuse it now
    suspect: bool  # its address failed recently: it may not use the password pool's reserve


@dataclass(frozen=True, slots=True)
class Failure:
    failures: int
    locked_until: datetime | None  # set when this very failure locked the username


def _user_delay(failures: int, settings: Settings) -> timedelta:
    if failures < 2 or failures >= settings.login_max_failures:
        return timedelta(0)
    return timedelta(seconds=2 ** (failures - 2))


def _address_delay(failures: int, settings: Settings) -> timedelta:
    over = failures - settings.login_ip_free_failures
    return timedelta(seconds=0 if over <= 0 else min(2 ** (over - 1), MAX_ADDRESS_DELAY_SECONDS))


async def standing(session: AsyncSession, settings: Settings, username: str, address: str) -> Standing:
    """A lock or a wait that applies to this attempt now, if any, and whether its address is suspect."""
    now = utcnow()
    window_start = now - timedelta(minutes=settings.login_lockout_minutes)
    rows = (await session.scalars(select(LoginThrottle).where(
        ((LoginThrottle.scope == Scope.USER) & (LoginThrottle.key == username[:64]))
        | ((LoginThrottle.scope == Scope.ADDRESS) & (LoginThrottle.key == address[:64]))))).all()
    waits: list[datetime] = []
    suspect = any(row.scope == Scope.ADDRESS and row.last_failure_at >= window_start for row in rows)
    for row in rows:
        if row.scope == Scope.USER and row.locked_until is not None and row.locked_until > now:
            return Standing(Refusal(locked_until=row.locked_until, retry_at=row.locked_until), suspect)
        if row.last_failure_at < window_start:
            continue
        delay = _user_delay(row.failures, settings) if row.scope == Scope.USER else _address_delay(row.failures,
                                                                                                    settings)
        if row.last_failure_at + delay > now:
            waits.append(row.last_failure_at + delay)
    return Standing(Refusal(locked_until=None, retry_at=max(waits)) if waits else None, suspect)


async def record_failure(session: AsyncSession, settings: Settings, username: str, address: str) -> Failure:
    """Count a failed attempt on both counters (atomically: parallel attempts are all counted)."""
    now = utcnow()
    window_start = now - timedelta(minutes=settings.login_lockout_minutes)
    await session.execute(delete(LoginThrottle).where(
        LoginThrottle.last_failure_at < window_start,
        (LoginThrottle.locked_until.is_(None)) | (LoginThrottle.locked_until < now)))
    failures = 0
    for scope, key in ((Scope.ADDRESS, address[:64]), (Scope.USER, username[:64])):
        failures = await _count(session, scope, key, address, now, window_start)
    locked_until = None
    if failures >= settings.login_max_failures:
        until = now + timedelta(minutes=settings.login_lockout_minutes)
        locked = await session.execute(
            update(LoginThrottle)
            .where(LoginThrottle.scope == Scope.USER, LoginThrottle.key == username[:64],
                   (LoginThrottle.locked_until.is_(None)) | (LoginThrottle.locked_until < now))
            .values(locked_until=until))
        if locked.rowcount:  # this attempt locked it (parallel ones find it locked already)
            locked_until = until
    return Failure(failures=failures, locked_until=locked_until)


async def _count(session: AsyncSession, scope: Scope, key: str, address: str, now: datetime,
                 window_start: datetime) -> int:
    insert = dialect_insert(session.bind.dialect.name)
    statement = insert(LoginThrottle).values(scope=scope, key=key, failures=1, last_failure_at=now, last_ip=address)
    statement = statement.on_conflict_do_update(
        index_elements=[LoginThrottle.scope, LoginThrottle.key],
        set_={
            "failures": case((LoginThrottle.last_failure_at < window_start, 1), else_=LoginThrottle.failures + 1),
            "last_failure_at": now,
            "last_ip": address[:64],
        },
    ).returning(LoginThrottle.failures)
    return int((await session.execute(statement)).scalar_one())


async def clear(session: AsyncSession, username: str) -> bool:
    """Forget a username's failures and lift its lock (a successful sign-in, an admin's unlock)."""
    result = await session.execute(delete(LoginThrottle).where(LoginThrottle.scope == Scope.USER,
                                                               LoginThrottle.key == username[:64]))
    return bool(result.rowcount)


async def user_states(session: AsyncSession, usernames: list[str]) -> dict[str, LoginThrottle]:
    """The failure counters of these usernames (for the admin's list of accounts)."""
    if not usernames:
        return {}
    rows = await session.scalars(select(LoginThrottle).where(LoginThrottle.scope == Scope.USER,
                                                             LoginThrottle.key.in_(usernames)))
    return {row.key: row for row in rows}
