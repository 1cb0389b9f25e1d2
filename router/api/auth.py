"""Sign-in, sign-out and the current user; staff accounts and service tokens (admin)."""

from __future__ import annotations

from typing import Annotated

from aiohttp import web
from pydantic import BaseModel, Field, StringConstraints
from sqlalchemy import select

from router.access import ADMIN_ROLES, ALL_ROLES, STAFF_ROLES
from router.accounts import authenticate, close_session, create_api_token, create_user, open_session
from router.acd.presence import SIGNED_OUT_REASON
from router.api import api
from router.api.spec import HUB, MAX_ID, Call
from router.errors import Invalid, Unauthorized
from router.middleware import CSRF_COOKIE, SESSION_COOKIE
from router.models import PresenceState, Role, StaffUser
from router.schemas import ItemsOfUsers, StrictBody, UserOut, user_out
from workorders.models import Department

USERNAME = r"^[A-Za-z0-9_.\-]{2,64}$"
TeamName = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=r"^[^\x00-\x1f\x7f]+$")]


class LoginBody(StrictBody):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)


class SessionOut(BaseModel):
    user: UserOut
    csrf_token: str | None


class NewUserBody(StrictBody):
    username: str = Field(pattern=USERNAME)
    password: str = Field(min_length=8, max_length=256)
    role: Role
    display_name: str = Field(min_length=1, max_length=100)
    teams: list[TeamName] = Field(default_factory=list, max_length=20)
    max_chats: int = Field(5, ge=1, le=50)
    department_id: int | None = Field(None, ge=1, le=MAX_ID)


class NewTokenBody(StrictBody):
    name: str = Field(pattern=USERNAME)
    role: Role


class TokenOut(BaseModel):
    name: str
    role: Role
    token: str


@api.endpoint("POST", "/api/auth/login", summary="Sign in", roles=None, body=LoginBody, response=SessionOut,
              tag="auth", errors=(401,))
async def login(call: Call) -> web.Response:
    hub = call.request.app[HUB]
    async with hub.sessions.begin() as session:
        user = await authenticate(session, call.body.username, call.body.password)
        if user is None:
            raise Unauthorized("用户名或密码错误", code="bad_credentials")
        new = await open_session(session, user, hub.settings.session_ttl_hours)
    response = web.json_response(SessionOut(user=user_out(user), csrf_token=new.csrf_token).model_dump(mode="json"))
    max_age = hub.settings.session_ttl_hours * 3600
    secure = hub.settings.cookie_secure
    response.set_cookie(SESSION_COOKIE, new.token, httponly=True, samesite="Lax", secure=secure, max_age=max_age,
                        path="/")
    response.set_cookie(CSRF_COOKIE, new.csrf_token, httponly=False, samesite="Lax", secure=secure,
                        max_age=max_age, path="/")
    return response


@api.endpoint("POST", "/api/auth/logout", summary="Sign out", roles=ALL_ROLES, status=204, tag="auth")
async def logout(call: Call) -> web.Response:
    hub = call.request.app[HUB]
    token = call.request.cookies.get(SESSION_COOKIE)
    if token:
        async with hub.sessions.begin() as session:
            await close_session(session, token)
    if call.user.user_id is not None and call.user.role in STAFF_ROLES:
        await hub.set_presence(call.user.user_id, PresenceState.SIGNED_OUT, SIGNED_OUT_REASON)
    response = web.Response(status=204)
    response.del_cookie(SESSION_COOKIE, path="/")
    response.del_cookie(CSRF_COOKIE, path="/")
    return response


@api.endpoint("GET", "/api/auth/me", summary="The signed-in user", roles=ALL_ROLES, response=SessionOut, tag="auth")
async def me(call: Call) -> SessionOut:
    if call.user.user_id is None:
        raise Unauthorized("服务令牌没有用户身份", code="service_token")
    async with call.request.app[HUB].sessions() as session:
        user = await session.get(StaffUser, call.user.user_id)
        return SessionOut(user=user_out(user), csrf_token=call.user.csrf_token)


@api.endpoint("GET", "/api/users", summary="Staff accounts", roles=ADMIN_ROLES, response=ItemsOfUsers, tag="admin")
async def list_users(call: Call) -> ItemsOfUsers:
    async with call.request.app[HUB].sessions() as session:
        users = await session.scalars(select(StaffUser).order_by(StaffUser.id))
        return ItemsOfUsers(items=[user_out(u) for u in users])


@api.endpoint("POST", "/api/users", summary="Create a staff account", roles=ADMIN_ROLES, body=NewUserBody,
              response=UserOut, status=201, tag="admin", errors=(409,))
async def add_user(call: Call) -> UserOut:
    body: NewUserBody = call.body
    async with call.request.app[HUB].sessions.begin() as session:
        if body.department_id is not None and await session.get(Department, body.department_id) is None:
            raise Invalid("部门不存在", code="unknown_department", details={"fields": {"department_id": "unknown"}})
        user = await create_user(session, username=body.username, password=body.password, role=body.role,
                                 display_name=body.display_name, team_names=body.teams, max_chats=body.max_chats,
                                 department_id=body.department_id)
        return user_out(user)


@api.endpoint("POST", "/api/tokens", summary="Create a service token (shown once)", roles=ADMIN_ROLES,
              body=NewTokenBody, response=TokenOut, status=201, tag="admin", errors=(409,))
async def add_token(call: Call) -> TokenOut:
    async with call.request.app[HUB].sessions.begin() as session:
        token = await create_api_token(session, call.body.name, call.body.role)
    return TokenOut(name=call.body.name, role=call.body.role, token=token)
