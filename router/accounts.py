"""Staff accounts, sign-in sessions and service tokens.

Passwords are hashed with argon2id. A browser session is a random token in an HttpOnly cookie; the
database keeps only its SHA-256, so a leaked table cannot be replayed. Service tokens (for the bot's
action server, importers) work the same way and are shown once, when created.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from router.access import Principal
from router.errors import Conflict, Invalid
from router.models import ApiToken, Role, StaffUser, Team, UserSession, utcnow

_hasher = PasswordHasher()
# Verifying against this keeps sign-in time the same whether or not the username exists.
_DUMMY_HASH = _hasher.hash(secrets.token_hex(16))
MIN_PASSWORD_LENGTH = 8


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise Invalid(
            f"密码至少 {MIN_PASSWORD_LENGTH} 位", code="weak_password", details={"fields": {"password": "too short"}}
        )
    return _hasher.hash(password)


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
) -> StaffUser:
    if await session.scalar(select(StaffUser.id).where(StaffUser.username == username)) is not None:
        raise Conflict("用户名已存在", code="username_taken")
    teams = [await ensure_team(session, name) for name in dict.fromkeys(team_names or [])]
    user = StaffUser(
        username=username,
        display_name=display_name or username,
        role=role,
        password_hash=hash_password(password),
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


async def authenticate(session: AsyncSession, username: str, password: str) -> StaffUser | None:
    user = await session.scalar(select(StaffUser).where(StaffUser.username == username))
    try:
        _hasher.verify(user.password_hash if user else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return None
    if user is None or not user.active:
        return None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    user.last_login_at = utcnow()
    return user


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


def principal_of(user: StaffUser, csrf_token: str | None) -> Principal:
    return Principal(
        role=Role(user.role),
        user_id=user.id,
        username=user.username,
        display_name=user.display_name,
        team_ids=frozenset(t.id for t in user.teams),
        department_id=user.department_id,
        csrf_token=csrf_token,
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
    if user_session.expires_at < utcnow() or not user.active:
        return None
    return principal_of(user, user_session.csrf_token)


async def create_api_token(session: AsyncSession, name: str, role: Role) -> str:
    if await session.scalar(select(ApiToken.id).where(ApiToken.name == name)) is not None:
        raise Conflict("令牌名称已存在", code="token_name_taken")
    token = "shw_" + secrets.token_urlsafe(32)
    session.add(ApiToken(name=name, token_hash=_digest(token), role=role, created_at=utcnow()))
    await session.flush()
    return token


async def ensure_api_token(session: AsyncSession, name: str, role: Role, token: str) -> None:
    """Make ``token`` the valid token called ``name`` (for services the hub starts itself)."""
    existing = await session.scalar(select(ApiToken).where(ApiToken.name == name))
    if existing is None:
        session.add(ApiToken(name=name, token_hash=_digest(token), role=role, created_at=utcnow()))
    else:
        existing.token_hash, existing.role, existing.revoked_at = _digest(token), role, None
    await session.flush()


async def principal_from_api_token(session: AsyncSession, token: str) -> Principal | None:
    api_token = await session.scalar(select(ApiToken).where(ApiToken.token_hash == _digest(token)))
    if api_token is None or api_token.revoked_at is not None:
        return None
    return Principal(role=Role(api_token.role), username=f"token:{api_token.name}", display_name=api_token.name)


async def has_admin(session: AsyncSession) -> bool:
    return await session.scalar(select(StaffUser.id).where(StaffUser.role == Role.ADMIN).limit(1)) is not None
