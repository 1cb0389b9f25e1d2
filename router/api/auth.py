"""Sign-in, sign-out, the current user and their own password."""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, Field

from router import throttle
from router.access import ALL_ROLES, STAFF_ROLES
from router.accounts import (
    ACCOUNT_TOPIC,
    close_session,
    end_sessions,
    open_session,
    set_password,
    signed_out_event,
)
from router.acd.presence import SIGNED_OUT_REASON
from router.api import api
from router.api.spec import HUB, Call
from router.audit import record
from router.errors import Invalid, Unauthorized
from router.middleware import CSRF_COOKIE, SESSION_COOKIE
from router.models import PresenceState, StaffUser
from router.net import client_ip
from router.passwords import PASSWORDS, check_policy
from router.schemas import StrictBody, UserOut, user_out
from router.settings import Settings
from router.signin import sign_in


class LoginBody(StrictBody):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)


class SessionOut(BaseModel):
    user: UserOut
    csrf_token: str | None
    password_change_required: bool = False  # signed in with a one-time password: only a new one may follow


class PasswordChangeBody(StrictBody):
    current_password: str = Field(min_length=1, max_length=256)
    new_password: str = Field(min_length=1, max_length=256)


@api.endpoint("POST", "/api/auth/login", summary="Sign in", roles=None, body=LoginBody, response=SessionOut,
              tag="auth", errors=(401, 429, 503))
async def login(call: Call) -> web.Response:
    hub = call.request.app[HUB]
    address = client_ip(call.request, hub.settings.trusted_proxies)
    signed_in = await sign_in(hub.sessions, hub.settings, call.body.username.strip(), call.body.password, address)
    user = signed_in.user
    return _session_response(SessionOut(user=user_out(user), csrf_token=signed_in.session.csrf_token,
                                        password_change_required=user.must_change_password),
                             signed_in.session.token, hub.settings)


def _session_response(body: SessionOut, token: str, settings: Settings) -> web.Response:
    response = web.json_response(body.model_dump(mode="json"))
    max_age = settings.session_ttl_hours * 3600
    secure = settings.secure_cookies
    response.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="Lax", secure=secure, max_age=max_age,
                        path="/")
    response.set_cookie(CSRF_COOKIE, body.csrf_token or "", httponly=False, samesite="Lax", secure=secure,
                        max_age=max_age, path="/")
    return response


@api.endpoint("POST", "/api/auth/password", summary="Change one's own password (signs out every other browser)",
              roles=ALL_ROLES, body=PasswordChangeBody, response=SessionOut, tag="auth", errors=(429, 503))
async def change_own_password(call: Call) -> web.Response:
    hub = call.request.app[HUB]
    body: PasswordChangeBody = call.body
    if call.user.user_id is None:
        raise Unauthorized("服务令牌没有用户身份", code="service_token")
    address = client_ip(call.request, hub.settings.trusted_proxies)
    async with hub.sessions() as session:
        user = await session.get(StaffUser, call.user.user_id)
        stored, username, display_name = user.password_hash, user.username, user.display_name
    if not await PASSWORDS.verify(stored, body.current_password):
        # Counted like a failed sign-in: a borrowed session must not become a way to guess the password.
        async with hub.sessions.begin() as session:
            await throttle.record_failure(session, hub.settings, username, address)
            record(session, call.user, "user.password_change_failed", target_type="user", target_id=call.user.user_id,
                   ip=address)
        raise Invalid("当前密码不正确", code="wrong_password", details={"fields": {"current_password": "wrong"}})
    if body.new_password == body.current_password:
        raise Invalid("新密码不能与当前密码相同", code="same_password",
                      details={"fields": {"new_password": "same as the current one"}})
    check_policy(body.new_password, field="new_password", user_inputs=[username, display_name])
    async with hub.sessions.begin() as session:
        user = await session.get(StaffUser, call.user.user_id)
        await set_password(user, body.new_password)
        await end_sessions(session, user.id)
        new = await open_session(session, user, hub.settings.session_ttl_hours)
        record(session, call.user, "user.password_change", target_type="user", target_id=user.id, ip=address)
    await hub.publish(ACCOUNT_TOPIC, signed_out_event(user.id))
    return _session_response(SessionOut(user=user_out(user), csrf_token=new.csrf_token), new.token, hub.settings)


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
