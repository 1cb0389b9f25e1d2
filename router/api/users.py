"""Staff accounts and service tokens, for admins: create, change, disable, reset, sign out, unlock, revoke.

Every change that affects what a person may reach (disabled, role or teams changed, password reset, signed
out everywhere) ends their sessions and, over the event bus, closes their open staff WebSockets on every hub
process. Each change is written to the audit log in the same transaction.
"""

from __future__ import annotations

import secrets
import unicodedata
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, Field, StringConstraints, field_validator, model_validator
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from channels.voice.phones import EXTENSION_PATTERN, PHONES_TOPIC, md5_cred
from router import throttle
from router.access import ADMIN_ROLES, PHONE_ROLES, STAFF_ROLES
from router.accounts import (
    ACCOUNT_TOPIC,
    add_api_token,
    create_user,
    end_sessions,
    ensure_team,
    set_password,
    signed_out_event,
)
from router.acd.presence import SIGNED_OUT_REASON
from router.api import api
from router.api.auditing import audit
from router.api.spec import HUB, MAX_ID, Call
from router.errors import Conflict, Invalid, NotFound
from router.models import ApiToken, PhoneKind, PresenceState, Role, StaffUser, utcnow
from router.passwords import check_policy
from router.schemas import StrictBody, UserOut, user_out
from workorders.models import Department

USERNAME = r"^[A-Za-z0-9_.\-]{2,64}$"
TeamName = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=r"^[^\x00-\x1f\x7f]+$")]
DisplayName = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=r"^[^\x00-\x1f\x7f]+$")]


class NewUserBody(StrictBody):
    username: str = Field(pattern=USERNAME)
    password: str = Field(min_length=1, max_length=256)
    role: Role
    display_name: DisplayName
    teams: list[TeamName] = Field(default_factory=list, max_length=20)
    max_chats: int = Field(5, ge=1, le=50)
    department_id: int | None = Field(None, ge=1, le=MAX_ID)
    one_time: bool = False  # the person must replace the password at the first sign-in; it expires


class UserChangeBody(StrictBody):
    display_name: DisplayName | None = None
    role: Role | None = None
    teams: list[TeamName] | None = Field(None, max_length=20)
    active: bool | None = None
    max_chats: int | None = Field(None, ge=1, le=50)

    @model_validator(mode="after")
    def _something(self) -> UserChangeBody:
        if all(getattr(self, name) is None for name in type(self).model_fields):
            raise ValueError("nothing to change")
        return self


class PasswordResetBody(StrictBody):
    password: str = Field(min_length=1, max_length=256)


class PhoneBody(StrictBody):
    extension: str = Field(pattern=EXTENSION_PATTERN)
    kind: PhoneKind = PhoneKind.DESK  # a SIP desk phone, or the softphone in the inbox

    @field_validator("extension", mode="before")
    @classmethod
    def _as_typed(cls, value: object) -> object:
        """Full-width digits and stray spaces, as a Chinese input method types them, are the same extension."""
        return unicodedata.normalize("NFKC", value).replace(" ", "") if isinstance(value, str) else value


class NewPhoneOut(BaseModel):
    extension: str  # also the phone's SIP user name
    password: str  # shown this once; the hub keeps only its digest
    realm: str
    kind: PhoneKind


class AccountOut(UserOut):
    active: bool
    sip_extension: str | None  # the SIP phone the person takes calls on
    sip_kind: PhoneKind | None
    created_at: datetime
    last_login_at: datetime | None
    must_change_password: bool
    password_expires_at: datetime | None
    failed_logins: int  # failed sign-ins counted now
    locked_until: datetime | None  # set while locked after failed sign-ins


class ItemsOfAccounts(BaseModel):
    items: list[AccountOut]


class NewTokenBody(StrictBody):
    name: str = Field(pattern=USERNAME)
    role: Role


class TokenOut(BaseModel):
    id: int
    name: str
    role: Role
    created_at: datetime
    revoked_at: datetime | None


class NewTokenOut(TokenOut):
    token: str  # shown this once


class ItemsOfTokens(BaseModel):
    items: list[TokenOut]


def _account_out(user: StaffUser, state: throttle.LoginThrottle | None) -> AccountOut:
    now = utcnow()
    locked = state is not None and state.locked_until is not None and state.locked_until > now
    return AccountOut(**user_out(user).model_dump(), active=user.active, sip_extension=user.sip_extension,
                      sip_kind=(user.sip_kind or PhoneKind.DESK) if user.sip_extension else None,
                      created_at=user.created_at,
                      last_login_at=user.last_login_at, must_change_password=user.must_change_password,
                      password_expires_at=user.password_expires_at,
                      failed_logins=state.failures if state is not None else 0,
                      locked_until=state.locked_until if locked else None)


async def _account(session: AsyncSession, user: StaffUser) -> AccountOut:
    states = await throttle.user_states(session, [user.username])
    return _account_out(user, states.get(user.username))


async def _user(session: AsyncSession, user_id: int) -> StaffUser:
    user = await session.get(StaffUser, user_id)
    if user is None:
        raise NotFound("用户不存在", code="unknown_user")
    return user


async def _end_access(call: Call, user_id: int, role: str) -> None:
    """After the commit: close the user's sockets everywhere and take them out of routing."""
    hub = call.request.app[HUB]
    await hub.publish(ACCOUNT_TOPIC, signed_out_event(user_id))
    if role in STAFF_ROLES:
        await hub.set_presence(user_id, PresenceState.SIGNED_OUT, SIGNED_OUT_REASON, actor=call.user.username)


async def _other_active_admins(session: AsyncSession, user_id: int) -> int:
    return await session.scalar(select(func.count()).select_from(StaffUser).where(
        StaffUser.role == Role.ADMIN, StaffUser.active.is_(True), StaffUser.id != user_id))


@api.endpoint("GET", "/api/users", summary="Staff accounts, with their sign-in locks", roles=ADMIN_ROLES,
              response=ItemsOfAccounts, tag="admin")
async def list_users(call: Call) -> ItemsOfAccounts:
    async with call.request.app[HUB].sessions() as session:
        users = (await session.scalars(select(StaffUser).order_by(StaffUser.id))).all()
        states = await throttle.user_states(session, [u.username for u in users])
        return ItemsOfAccounts(items=[_account_out(u, states.get(u.username)) for u in users])


@api.endpoint("POST", "/api/users", summary="Create a staff account", roles=ADMIN_ROLES, body=NewUserBody,
              response=AccountOut, status=201, tag="admin", errors=(409,))
async def add_user(call: Call) -> AccountOut:
    hub = call.request.app[HUB]
    body: NewUserBody = call.body
    check_policy(body.password, user_inputs=[body.username, body.display_name])
    async with hub.sessions.begin() as session:
        if body.department_id is not None and await session.get(Department, body.department_id) is None:
            raise Invalid("部门不存在", code="unknown_department", details={"fields": {"department_id": "unknown"}})
        user = await create_user(session, username=body.username, password=body.password, role=body.role,
                                 display_name=body.display_name, team_names=body.teams, max_chats=body.max_chats,
                                 department_id=body.department_id,
                                 one_time_hours=hub.settings.one_time_password_hours if body.one_time else None)
        audit(call, "user.create", "user", user.id, username=user.username, role=user.role, teams=body.teams)(session)
        return await _account(session, user)


@api.endpoint("PATCH", "/api/users/{user_id:\\d+}", summary="Change, disable or enable a staff account",
              roles=ADMIN_ROLES, body=UserChangeBody, response=AccountOut, tag="admin", errors=(409,))
async def change_user(call: Call) -> AccountOut:
    hub = call.request.app[HUB]
    body: UserChangeBody = call.body
    async with hub.sessions.begin() as session:
        user = await _user(session, call.path["user_id"])
        old_role = user.role
        loses_admin = user.role == Role.ADMIN and user.active and (
            body.active is False or (body.role is not None and body.role != Role.ADMIN))
        if loses_admin and await _other_active_admins(session, user.id) == 0:
            raise Conflict("不能停用或降级唯一的管理员", code="last_admin")
        access_changed = phone_changed = False
        if body.active is not None and body.active != user.active:
            user.active = body.active
            access_changed = True
            audit(call, "user.enable" if body.active else "user.disable", "user", user.id,
                  username=user.username)(session)
        if body.role is not None and body.role != user.role:
            audit(call, "user.role_change", "user", user.id, username=user.username,
                  role=[user.role, body.role.value])(session)
            user.role = body.role
            access_changed = True
            if body.role not in PHONE_ROLES and user.sip_extension is not None:
                audit(call, "user.phone_remove", "user", user.id, username=user.username,
                      extension=user.sip_extension)(session)
                user.sip_extension = user.sip_md5_cred = user.sip_kind = None
                phone_changed = True
        if body.teams is not None:
            teams = [await ensure_team(session, name) for name in dict.fromkeys(body.teams)]
            before = [team.name for team in user.teams]
            if before != [team.name for team in teams]:
                audit(call, "user.teams_change", "user", user.id, username=user.username,
                      teams=[before, [t.name for t in teams]])(session)
                user.teams = teams
                access_changed = True
        changes = {name: getattr(body, name) for name in ("display_name", "max_chats")
                   if getattr(body, name) is not None and getattr(body, name) != getattr(user, name)}
        if changes:
            for name, value in changes.items():
                setattr(user, name, value)
            audit(call, "user.update", "user", user.id, username=user.username, **changes)(session)
        if access_changed:
            await end_sessions(session, user.id)
        await session.flush()
        result = await _account(session, user)
    if access_changed:
        await _end_access(call, user.id, old_role)
    if phone_changed or (access_changed and user.sip_extension is not None):
        await hub.publish(PHONES_TOPIC, {})  # a disabled account's phone is taken out of Asterisk, or given back
    return result


@api.endpoint("PUT", "/api/users/{user_id:\\d+}/phone",
              summary="Give an agent or supervisor a SIP phone extension with a new password (shown once)",
              roles=ADMIN_ROLES, body=PhoneBody, response=NewPhoneOut, tag="admin", errors=(409,))
async def set_phone(call: Call) -> NewPhoneOut:
    """The password is new each time (a phone given to someone else, a password written down too openly): the
    phone registered with the old one is refused from its next registration on."""
    hub = call.request.app[HUB]
    extension, realm = call.body.extension, hub.settings.voice_sip_realm
    password = secrets.token_urlsafe(12)
    try:
        async with hub.sessions.begin() as session:
            user = await _user(session, call.path["user_id"])
            if user.role not in PHONE_ROLES:
                raise Conflict("只有坐席和班长可以设置分机", code="no_phone_for_role")
            holder = await session.scalar(select(StaffUser.username).where(
                StaffUser.sip_extension == extension, StaffUser.id != user.id))
            if holder is not None:
                raise Conflict(f"分机 {extension} 已分配给 {holder}", code="extension_taken")
            audit(call, "user.phone_set", "user", user.id, username=user.username,
                  extension=[user.sip_extension, extension])(session)
            user.sip_extension, user.sip_md5_cred = extension, md5_cred(extension, realm, password)
            user.sip_kind = call.body.kind
    except IntegrityError:  # given to another account at the same moment
        raise Conflict(f"分机 {extension} 已被占用", code="extension_taken") from None
    await hub.publish(PHONES_TOPIC, {})
    return NewPhoneOut(extension=extension, password=password, realm=realm, kind=call.body.kind)


class SoftphoneOut(BaseModel):
    user_id: int  # whose softphone it is (left out of their own transfer targets)
    extension: str  # the SIP user name
    realm: str
    ha1: str  # MD5 of extension:realm:password, what SIP digest authentication needs (the password is not kept)
    ws_url: str  # Asterisk's SIP WebSocket
    display_name: str


@api.endpoint("GET", "/api/softphone", summary="The signed-in agent's inbox softphone: where and how it registers",
              roles=PHONE_ROLES, response=SoftphoneOut, tag="calls", errors=(404,))
async def softphone(call: Call) -> SoftphoneOut:
    """Only for the account itself, whose softphone signs in with the digest instead of a typed password."""
    hub = call.request.app[HUB]
    async with hub.sessions() as session:
        user = await session.get(StaffUser, call.user.user_id) if call.user.user_id is not None else None
    if user is None or user.sip_extension is None or user.sip_md5_cred is None or user.sip_kind != PhoneKind.BROWSER:
        raise NotFound("未设置浏览器软电话", code="no_softphone")
    return SoftphoneOut(user_id=user.id, extension=user.sip_extension, realm=hub.settings.voice_sip_realm,
                        ha1=user.sip_md5_cred, ws_url=hub.settings.effective_sip_ws_url, display_name=user.display_name)


@api.endpoint("DELETE", "/api/users/{user_id:\\d+}/phone", summary="Take a staff account's SIP phone away",
              roles=ADMIN_ROLES, response=AccountOut, tag="admin")
async def remove_phone(call: Call) -> AccountOut:
    hub = call.request.app[HUB]
    async with hub.sessions.begin() as session:
        user = await _user(session, call.path["user_id"])
        removed = user.sip_extension
        if removed is not None:
            audit(call, "user.phone_remove", "user", user.id, username=user.username, extension=removed)(session)
            user.sip_extension = user.sip_md5_cred = user.sip_kind = None
        result = await _account(session, user)
    if removed is not None:
        await hub.publish(PHONES_TOPIC, {})
    return result


@api.endpoint("POST", "/api/users/{user_id:\\d+}/password",
              summary="Set a one-time password (to be replaced at the next sign-in); signs the user out",
              roles=ADMIN_ROLES, body=PasswordResetBody, response=AccountOut, tag="admin")
async def reset_password(call: Call) -> AccountOut:
    hub = call.request.app[HUB]
    async with hub.sessions() as session:
        user = await _user(session, call.path["user_id"])
    check_policy(call.body.password, user_inputs=[user.username, user.display_name])
    async with hub.sessions.begin() as session:
        user = await _user(session, call.path["user_id"])
        await set_password(user, call.body.password, one_time_hours=hub.settings.one_time_password_hours)
        await end_sessions(session, user.id)
        await throttle.clear(session, user.username)
        audit(call, "user.password_reset", "user", user.id, username=user.username)(session)
        result = await _account(session, user)
    await _end_access(call, user.id, user.role)
    return result


@api.endpoint("POST", "/api/users/{user_id:\\d+}/sign-out", summary="Sign a user out of every browser",
              roles=ADMIN_ROLES, response=AccountOut, tag="admin")
async def sign_out_everywhere(call: Call) -> AccountOut:
    hub = call.request.app[HUB]
    async with hub.sessions.begin() as session:
        user = await _user(session, call.path["user_id"])
        ended = await end_sessions(session, user.id)
        audit(call, "user.sign_out_all", "user", user.id, username=user.username, sessions=ended)(session)
        result = await _account(session, user)
    await _end_access(call, user.id, user.role)
    return result


@api.endpoint("POST", "/api/users/{user_id:\\d+}/unlock", summary="Lift a sign-in lock and forget the failures",
              roles=ADMIN_ROLES, response=AccountOut, tag="admin")
async def unlock_user(call: Call) -> AccountOut:
    hub = call.request.app[HUB]
    async with hub.sessions.begin() as session:
        user = await _user(session, call.path["user_id"])
        if await throttle.clear(session, user.username):
            audit(call, "user.unlock", "user", user.id, username=user.username)(session)
        return await _account(session, user)


def _token_out(row: ApiToken) -> TokenOut:
    return TokenOut(id=row.id, name=row.name, role=Role(row.role), created_at=row.created_at,
                    revoked_at=row.revoked_at)


@api.endpoint("GET", "/api/tokens", summary="Service tokens (never their secrets)", roles=ADMIN_ROLES,
              response=ItemsOfTokens, tag="admin")
async def list_tokens(call: Call) -> ItemsOfTokens:
    async with call.request.app[HUB].sessions() as session:
        rows = await session.scalars(select(ApiToken).order_by(ApiToken.id))
        return ItemsOfTokens(items=[_token_out(row) for row in rows])


@api.endpoint("POST", "/api/tokens", summary="Create a service token (shown once)", roles=ADMIN_ROLES,
              body=NewTokenBody, response=NewTokenOut, status=201, tag="admin", errors=(409,))
async def add_token(call: Call) -> NewTokenOut:
    hub = call.request.app[HUB]
    async with hub.sessions.begin() as session:
        token, row = await add_api_token(session, call.body.name, call.body.role)
        audit(call, "token.create", "token", row.id, name=row.name, role=row.role)(session)
        return NewTokenOut(**_token_out(row).model_dump(), token=token)


@api.endpoint("POST", "/api/tokens/{token_id:\\d+}/revoke", summary="Revoke a service token", roles=ADMIN_ROLES,
              response=TokenOut, tag="admin")
async def revoke_token(call: Call) -> TokenOut:
    hub = call.request.app[HUB]
    async with hub.sessions.begin() as session:
        row = await session.get(ApiToken, call.path["token_id"])
        if row is None:
            raise NotFound("令牌不存在", code="unknown_token")
        if row.revoked_at is None:
            row.revoked_at = utcnow()
            audit(call, "token.revoke", "token", row.id, name=row.name)(session)
        return _token_out(row)
