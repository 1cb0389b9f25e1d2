"""Staff accounts, sign-in sessions and service tokens.

Passwords are hashed with argon2id, off the event loop (router/passwords.py). A browser session is a
random token in an HttpOnly cookie; the database keeps only its SHA-256, so a leaked table cannot be
replayed. Service tokens (for the bot's action server, importers) work the same way and are shown once,
when created.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from router.access import Principal
from router.errors import Conflict, Invalid
from router.models import ApiToken, Role, StaffUser, Team, UserSession, utcnow
from router.passwords import PASSWORDS

# Published when a user's sessions end (disabled, role or teams changed, password changed or reset, signed out
# everywhere): every hub process closes that user's open staff WebSockets.
ACCOUNT_TOPIC = "account"
MAX_PASSWORD_BYTES = 1024  # argon2 accepts any length; this bounds the work one request can ask for


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def create_user(
    session: AsyncSession,
    *,
    username: str,
    password: str,
    role: Role,
    display_name: str | None = None,
    team_names: list[str] | None = None,
    max_chats: int = 5,
    department_id: int | None = None,
    one_time_hours: int | None = None,
) -> StaffUser:
    """A new account. The caller applies the password policy where a person chose the password; with
    ``one_time_hours`` the password must be replaced at the first sign-in and expires after that many hours."""
    if await session.scalar(select(StaffUser.id).where(StaffUser.username == username)) is not None:
        raise Conflict("用户名已存在", code="username_taken")
    teams = [await ensure_team(session, name) for name in dict.fromkeys(team_names or [])]
    user = StaffUser(
        username=username,
        display_name=display_name or username,
        role=role,
        password_hash=await hash_password(password),
        must_change_password=one_time_hours is not None,
        password_expires_at=None if one_time_hours is None else utcnow() + timedelta(hours=one_time_hours),
        active=True,
        max_chats=max_chats,
        department_id=department_id,
        created_at=utcnow(),
        teams=teams,
    )
    session.add(user)
    await session.flush()
    return user


async def ensure_team(session: AsyncSession, name: str) -> Team:
    team = await session.scalar(select(Team).where(Team.name == name))
    if team is None:
        team = Team(name=name, created_at=utcnow())
        session.add(team)
        await session.flush()
    return team


async def hash_password(password: str) -> str:
    if len(password.encode()) > MAX_PASSWORD_BYTES:
        raise Invalid("密码过长", code="password_too_long", details={"fields": {"password": "too long"}})
    return await PASSWORDS.hash(password)


async def set_password(user: StaffUser, password: str, *, one_time_hours: int | None = None) -> None:
    """Store a new password; a one-time one must be replaced at the next sign-in and expires."""
    user.password_hash = await hash_password(password)
    user.must_change_password = one_time_hours is not None
    user.password_expires_at = None if one_time_hours is None else utcnow() + timedelta(hours=one_time_hours)


def password_expired(user: StaffUser) -> bool:
    return user.password_expires_at is not None and user.password_expires_at < utcnow()


@dataclass(frozen=True, slots=True)
class NewSession:
    token: str
    csrf_token: str


async def open_session(session: AsyncSession, user: StaffUser, ttl_hours: int) -> NewSession:
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    now = utcnow()
    session.add(
        UserSession(
            token_hash=_digest(token),
            user_id=user.id,
            csrf_token=csrf,
            created_at=now,
            expires_at=now + timedelta(hours=ttl_hours),
        )
    )
    await session.execute(delete(UserSession).where(UserSession.expires_at < now))
    return NewSession(token=token, csrf_token=csrf)


async def close_session(session: AsyncSession, token: str) -> None:
    await session.execute(delete(UserSession).where(UserSession.token_hash == _digest(token)))


async def end_sessions(session: AsyncSession, user_id: int) -> int:
    """Sign a user out of every browser; publish :data:`ACCOUNT_TOPIC` after the commit to close their sockets."""
    result = await session.execute(delete(UserSession).where(UserSession.user_id == user_id))
    return result.rowcount or 0


def signed_out_event(user_id: int) -> dict[str, int | str]:
    return {"type": "signed_out", "user_id": user_id}


def principal_of(user: StaffUser, csrf_token: str | None) -> Principal:
    return Principal(
        role=Role(user.role),
        user_id=user.id,
        username=user.username,
        display_name=user.display_name,
        team_ids=frozenset(t.id for t in user.teams),
        department_id=user.department_id,
        csrf_token=csrf_token,
        must_change_password=user.must_change_password,
    )


async def principal_from_session(session: AsyncSession, token: str) -> Principal | None:
    row = await session.execute(
        select(UserSession, StaffUser)
        .join(StaffUser, StaffUser.id == UserSession.user_id)
        .where(UserSession.token_hash == _digest(token))
    )
    found = row.unique().first()
    if found is None:
        return None
    user_session, user = found
    if user_session.expires_at < utcnow() or not user.active or (user.must_change_password and password_expired(user)):
        return None
    return principal_of(user, user_session.csrf_token)


async def create_api_token(session: AsyncSession, name: str, role: Role) -> str:
    token, _ = await add_api_token(session, name, role)
    return token


async def add_api_token(session: AsyncSession, name: str, role: Role) -> tuple[str, ApiToken]:
    """A new service token: the secret (shown once) and its stored row."""
    if await session.scalar(select(ApiToken.id).where(ApiToken.name == name)) is not None:
        raise Conflict("令牌名称已存在", code="token_name_taken")
    token = "shw_" + secrets.token_urlsafe(32)
    row = ApiToken(name=name, token_hash=_digest(token), role=role, created_at=utcnow())
    session.add(row)
    await session.flush()
    return token, row


async def ensure_api_token(session: AsyncSession, name: str, role: Role, token: str) -> bool:
    """Make ``token`` the token called ``name`` (for services the hub starts itself); False if it is revoked.

    A revocation is an administrator's decision and outlives restarts: the token stays revoked until it is
    restored on purpose (``python -m router restore-token``).
    """
    existing = await session.scalar(select(ApiToken).where(ApiToken.name == name))
    if existing is None:
        session.add(ApiToken(name=name, token_hash=_digest(token), role=role, created_at=utcnow()))
    else:
        existing.token_hash, existing.role = _digest(token), role
    await session.flush()
    return existing is None or existing.revoked_at is None


async def restore_api_token(session: AsyncSession, name: str) -> bool:
    """Lift the revocation of the token called ``name``; False if there is no such token."""
    existing = await session.scalar(select(ApiToken).where(ApiToken.name == name))
    if existing is None:
        return False
    existing.revoked_at = None
    await session.flush()
    return True


async def principal_from_api_token(session: AsyncSession, token: str) -> Principal | None:
    api_token = await session.scalar(select(ApiToken).where(ApiToken.token_hash == _digest(token)))
    if api_token is None or api_token.revoked_at is not None:
        return None
    return Principal(role=Role(api_token.role), username=f"token:{api_token.name}", display_name=api_token.name)


async def has_admin(session: AsyncSession) -> bool:
    return await session.scalar(select(StaffUser.id).where(StaffUser.role == Role.ADMIN).limit(1)) is not None
