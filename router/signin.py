"""Signing in: the throttle, the password check off the event loop, the audit trail of every attempt.

No database connection is held while the password is checked (a fifth of a second of CPU in a thread):
the account is read, the connection returned, the hash verified, and the outcome written in a second,
short transaction. What failed is committed before the caller hears about it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from router import throttle
from router.accounts import NewSession, open_session, password_expired, principal_of
from router.audit import record
from router.errors import TooManyRequests, Unauthorized
from router.logs import get_logger
from router.models import StaffUser, utcnow
from router.passwords import PASSWORDS
from router.settings import Settings

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class SignedIn:
    user: StaffUser
    session: NewSession


def _local(moment: datetime, settings: Settings) -> str:
    return moment.astimezone(settings.zone).strftime("%H:%M")


async def sign_in(sessions: async_sessionmaker[AsyncSession], settings: Settings, username: str, password: str,
                  address: str) -> SignedIn:
    """Open a session for the right password, or raise 401 (wrong), 429 (locked or too fast) or 503 (busy)."""
    async with sessions() as session:
        standing = await throttle.standing(session, settings, username, address)
        stored = await session.scalar(select(StaffUser.password_hash).where(StaffUser.username == username))
    refused = standing.refusal
    if refused is not None:
        log.info("sign-in refused by the throttle", username=username, ip=address,
                 locked=refused.locked_until is not None)
        wait = max(1, int((refused.retry_at - utcnow()).total_seconds() + 0.999))
        details = {"retry_after_seconds": wait, "retry_at": refused.retry_at.isoformat()}
        if refused.locked_until is not None:
            raise TooManyRequests(f"账号因多次登录失败已锁定,请于 {_local(refused.locked_until, settings)} 后再试,"
                                  "或联系管理员解锁", code="account_locked",
                                  details={**details, "locked_until": refused.locked_until.isoformat()})
        raise TooManyRequests(f"尝试次数过多,请 {wait} 秒后再试", code="too_many_attempts", details=details)
    matches = await PASSWORDS.verify(stored, password, reserve=not standing.suspect)
    async with sessions.begin() as session:
        user = await session.scalar(select(StaffUser).where(StaffUser.username == username))
        if user is None or not matches or user.password_hash != stored:
            reason = "unknown_user" if user is None else "bad_password"
        elif not user.active:
            reason = "disabled"
        elif user.must_change_password and password_expired(user):
            reason = "password_expired"
        else:
            reason = ""
        if reason:
            await _failed(session, settings, username, address, user, reason)
        else:
            await throttle.clear(session, username)
            if PASSWORDS.needs_rehash(user.password_hash):
                user.password_hash = await PASSWORDS.hash(password)
            user.last_login_at = utcnow()
            new = await open_session(session, user, settings.session_ttl_hours)
            record(session, principal_of(user, None), "auth.login", target_type="user", target_id=user.id,
                   ip=address)
    if reason == "password_expired":
        raise Unauthorized("一次性密码已过期,请联系管理员重新设置", code="password_expired")
    if reason:
        raise Unauthorized("用户名或密码错误", code="bad_credentials")
    return SignedIn(user=user, session=new)


async def _failed(session: AsyncSession, settings: Settings, username: str, address: str, user: StaffUser | None,
                  reason: str) -> None:
    failure = await throttle.record_failure(session, settings, username, address)
    target_id = user.id if user is not None else None
    record(session, username, "auth.login_failed", target_type="user", target_id=target_id, ip=address,
           details={"reason": reason, "failures": failure.failures})
    if failure.locked_until is not None:
        log.warning("username locked after failed sign-ins", username=username, ip=address,
                    failures=failure.failures, locked_until=failure.locked_until.isoformat())
        record(session, "system", "auth.lockout", target_type="user", target_id=target_id, ip=address,
               details={"username": username, "failures": failure.failures,
                        "locked_until": failure.locked_until.isoformat()})
