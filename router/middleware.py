"""aiohttp middlewares: JSON errors, the caller's identity with CSRF protection, request logging, security headers."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from sqlalchemy.exc import IntegrityError

from router.accounts import principal_from_api_token, principal_from_session
from router.api.spec import HUB, PRINCIPAL_KEY
from router.db import unreachable
from router.errors import Forbidden, HubError, Unauthorized
from router.logs import get_logger

log = get_logger("router.http")

SESSION_COOKIE = "hub_session"
CSRF_COOKIE = "hub_csrf"
CSRF_HEADER = "X-CSRF-Token"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# All a session signed in with a one-time password may do: choose a new password, or sign out.
_DURING_PASSWORD_CHANGE = frozenset({("POST", "/api/auth/password"), ("POST", "/api/auth/logout")})
_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    413: "too_large",
    415: "unsupported_type",
    422: "invalid",
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error_response(status: int, code: str, message: str, details: dict | None = None) -> web.Response:
    error: dict = {"code": code, "message": message}
    if details:
        error["details"] = details
    return web.json_response({"error": error}, status=status, dumps=_dumps)


def _dumps(value: object) -> str:
    return json.dumps(value, ensure_ascii=False)


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    try:
        response = await handler(request)
    except HubError as exc:
        log.info("request rejected", method=request.method, path=request.path, status=exc.status, code=exc.code)
        return web.json_response(exc.body(), status=exc.status, dumps=_dumps)
    except IntegrityError:
        # A concurrent request created the same unique thing first (username, token name, …).
        log.info("request conflicted with stored data", method=request.method, path=request.path)
        return error_response(409, "conflict", "与已有数据冲突,请刷新后重试")
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        log.info("request rejected", method=request.method, path=request.path, status=exc.status)
        response = error_response(exc.status, _HTTP_CODES.get(exc.status, "error"), exc.reason)
        if exc.status == 405 and "Allow" in exc.headers:
            response.headers["Allow"] = exc.headers["Allow"]
        return response
    except Exception as exc:
        if unreachable(exc):
            log.warning("request failed: database unreachable", method=request.method, path=request.path)
            return error_response(503, "database_unavailable", "系统繁忙,请稍后重试")
        log.exception("request failed", method=request.method, path=request.path)
        return error_response(500, "internal_error", "服务器内部错误")
    if request.path.startswith("/api/"):
        log.debug(
            "request",
            method=request.method,
            path=request.path,
            status=response.status,
            ms=round((time.perf_counter() - started) * 1000, 1),
        )
    return response


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Attach the caller (session cookie or bearer token) to the request; enforce CSRF for cookies."""
    hub = request.app[HUB]
    authorization = request.headers.get("Authorization", "")
    cookie = request.cookies.get(SESSION_COOKIE)
    if authorization:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized("Authorization 头格式应为 Bearer <token>", code="bad_authorization")
        async with hub.sessions() as session:
            principal = await principal_from_api_token(session, token.strip())
        if principal is None:
            raise Unauthorized("令牌无效或已吊销", code="bad_token")
        request[PRINCIPAL_KEY] = principal
    elif cookie:
        async with hub.sessions() as session:
            principal = await principal_from_session(session, cookie)
        if principal is not None:
            if request.method not in _SAFE_METHODS:
                sent = request.headers.get(CSRF_HEADER, "")
                if not (principal.csrf_token and secrets.compare_digest(sent, principal.csrf_token)):
                    raise Forbidden("缺少或错误的 CSRF 令牌", code="csrf_failed")
            if (principal.must_change_password and request.path.startswith("/api/")
                    and (request.method, request.path) not in _DURING_PASSWORD_CHANGE):
                raise Forbidden("请先修改一次性密码", code="password_change_required")
            request[PRINCIPAL_KEY] = principal
    return await handler(request)


def page_headers(connect_also: tuple[str, ...] = ()) -> dict[str, str]:
    """The hub's pages load only their own scripts, talk only to this origin (and ``connect_also``: the SIP
    WebSocket of agents' softphones) and are framed by no other site. (The web chat widget runs in the embedding
    site's page, not in a frame: these do not reach it.)"""
    connect = " ".join(("'self'", *connect_also))
    return {
        "Content-Security-Policy": (
            "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
            f"connect-src {connect}; object-src 'none'; base-uri 'none'; form-action 'self'; "
            "frame-ancestors 'none'"
        ),
        "X-Frame-Options": "DENY",
    }
RESPONSE_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin"}
HSTS = "max-age=31536000"  # a year; subdomains are the operator's to decide (they may not all have TLS)


def security_headers(https: bool, connect_also: tuple[str, ...] = ()) -> Callable[
        [web.Request, web.StreamResponse], Awaitable[None]]:
    """An ``on_response_prepare`` hook: every response, whatever made it, leaves with the security headers.

    Pages are told apart by their content type, which a file response knows only once it is being sent;
    headers a handler chose itself (a stored file's ``sandbox`` policy) are kept.
    """

    pages = page_headers(connect_also)

    async def add_headers(_request: web.Request, response: web.StreamResponse) -> None:
        headers = {**RESPONSE_HEADERS, **(pages if response.content_type == "text/html" else {})}
        if https:
            headers["Strict-Transport-Security"] = HSTS
        for name, value in headers.items():
            response.headers.setdefault(name, value)

    return add_headers
