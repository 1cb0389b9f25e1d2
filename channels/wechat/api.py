"""WeChat's server API, asynchronously: the access token every process shares, and the calls the hub makes.

The access token is one of the router's shared values (:mod:`router.shared`): WeChat allows one valid token
per account, and a refresh by one process ends the token of the others, so exactly one process refreshes it
and the others read what it stored. A token is refreshed five minutes before it expires, and at once when
WeChat calls it invalid (40001, 40014) or expired (42001) — but only if the stored token is still the one
that failed.

Errors keep WeChat's ``errcode``: callers decide what each means (45015, outside the 48-hour window, has a
fallback; -1, busy, is retried with back-off; quota errors are shown to the agent).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import aiohttp

from channels.base import SharedValues
from router.logs import get_logger
from router.models import utcnow

log = get_logger(__name__)

REFRESH_MARGIN = timedelta(minutes=5)
TOKEN_ERRORS = frozenset({40001, 40014, 42001})  # invalid credential, invalid token, token expired
BUSY = -1
OUTSIDE_WINDOW = 45015  # the resident has not written for 48 hours (or unfollowed)
RETRYABLE = frozenset({BUSY, 45009, 45011})  # busy, and rate limits that pass


class WeChatAPIError(Exception):
    """WeChat answered with an ``errcode``, or could not be reached (``errcode`` None)."""

    def __init__(self, errcode: int | None, errmsg: str) -> None:
        super().__init__(f"{errcode}: {errmsg}" if errcode is not None else errmsg)
        self.errcode = errcode
        self.errmsg = errmsg

    @property
    def retryable(self) -> bool:
        return self.errcode is None or self.errcode in RETRYABLE


@dataclass(frozen=True, slots=True)
class Media:
    data: bytes
    content_type: str
    filename: str


class WeChatAPI:
    def __init__(self, base_url: str, app_id: str, app_secret: str, shared: SharedValues, *,
                 timeout: float = 5.0) -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._base_url = base_url.rstrip("/")
        self._app_id = app_id
        self._app_secret = app_secret
        self._shared = shared
        self._token: tuple[str, datetime] | None = None  # this process's copy
        self._refreshing = asyncio.Lock()
        self._http: aiohttp.ClientSession | None = None
        self.token_requests = 0  # how often this process asked WeChat for a token, for monitoring

    async def start(self) -> None:
        self._http = aiohttp.ClientSession(timeout=self._timeout)

    async def stop(self) -> None:
        if self._http is not None:
            await self._http.close()

    # -- the access token ---------------------------------------------------------------------

    async def access_token(self) -> str:
        if self._token is not None and self._token[1] - REFRESH_MARGIN > utcnow():
            return self._token[0]
        async with self._refreshing:
            if self._token is not None and self._token[1] - REFRESH_MARGIN > utcnow():
                return self._token[0]
            self._token = await self._shared_token(stale=None)
            return self._token[0]

    async def _shared_token(self, stale: str | None) -> tuple[str, datetime]:
        """The stored token if it is fresh (and not ``stale``); otherwise a new one, stored for everyone."""
        return await self._shared(f"wechat:access_token:{self._app_id}", self._request_token,
                                  margin=REFRESH_MARGIN, stale=stale)

    async def _request_token(self) -> tuple[str, timedelta]:
        self.token_requests += 1
        answer = await self._checked("GET", "/cgi-bin/token", params={
            "grant_type": "client_credential", "appid": self._app_id, "secret": self._app_secret})
        log.info("wechat access token refreshed", app_id=self._app_id, expires_in=answer.get("expires_in"))
        return str(answer["access_token"]), timedelta(seconds=int(answer.get("expires_in", 7200)))

    async def _token_failed(self, token: str) -> None:
        async with self._refreshing:
            if self._token is not None and self._token[0] != token:
                return  # already replaced
            self._token = await self._shared_token(stale=token)

    # -- calls --------------------------------------------------------------------------------

    async def call(self, method: str, path: str, *, body: Any = None, params: dict[str, str] | None = None,
                   form: Callable[[], aiohttp.FormData] | None = None, raw: bool = False) -> Any:
        """An authorised call; a rejected token is replaced once and the call repeated.

        ``form`` makes the multipart body afresh for each try (aiohttp sends a FormData only once).
        """
        for attempt in range(2):
            token = await self.access_token()
            try:
                return await self._checked(method, path, params={**(params or {}), "access_token": token},
                                           body=body, form=form() if form else None, raw=raw)
            except WeChatAPIError as exc:
                if exc.errcode not in TOKEN_ERRORS or attempt == 1:
                    raise
                log.warning("wechat rejected the access token; refreshing", errcode=exc.errcode)
                await self._token_failed(token)
        raise AssertionError("unreachable")

    async def _checked(self, method: str, path: str, *, params: dict[str, str], body: Any = None,
                       form: aiohttp.FormData | None = None, raw: bool = False) -> Any:
        assert self._http is not None, "start() first"
        data: Any = form
        headers = {}
        if body is not None:
            # WeChat wants UTF-8 JSON with the characters themselves, not \\u escapes.
            data = json.dumps(body, ensure_ascii=False).encode()
            headers["Content-Type"] = "application/json; charset=utf-8"
        try:
            async with self._http.request(method, self._base_url + path, params=params, data=data,
                                          headers=headers) as response:
                content = await response.read()
                content_type = response.headers.get("Content-Type", "")
                if response.status != 200:
                    raise WeChatAPIError(None, f"HTTP {response.status} from {path}")
                disposition = response.content_disposition
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise WeChatAPIError(None, f"{path} unreachable: {type(exc).__name__}") from exc
        if raw and "json" not in content_type and "text/plain" not in content_type:
            return Media(content, content_type.split(";")[0] or "application/octet-stream",
                         (disposition.filename if disposition and disposition.filename else "media"))
        try:
            answer = json.loads(content)
        except ValueError as exc:
            raise WeChatAPIError(None, f"{path} answered something other than JSON") from exc
        errcode = answer.get("errcode", 0) if isinstance(answer, dict) else None
        if errcode:
            raise WeChatAPIError(int(errcode), str(answer.get("errmsg", "")))
        return answer

    async def send_custom(self, body: dict[str, Any]) -> None:
        """A customer-service message (``touser``, ``msgtype`` and its part), within 48 hours of the resident."""
        await self.call("POST", "/cgi-bin/message/custom/send", body=body)

    async def send_template(self, body: dict[str, Any]) -> str:
        """A template message; returns WeChat's ``msgid`` (its TEMPLATESENDJOBFINISH event names it)."""
        return str((await self.call("POST", "/cgi-bin/message/template/send", body=body))["msgid"])

    async def download_media(self, media_id: str) -> Media:
        media = await self.call("GET", "/cgi-bin/media/get", params={"media_id": media_id}, raw=True)
        if not isinstance(media, Media):
            raise WeChatAPIError(None, "media/get answered JSON without an error")
        return media

    async def upload_media(self, kind: str, filename: str, data: bytes, content_type: str) -> str:
        def form() -> aiohttp.FormData:
            parts = aiohttp.FormData()
            parts.add_field("media", data, filename=filename, content_type=content_type)
            return parts

        return str((await self.call("POST", "/cgi-bin/media/upload", params={"type": kind}, form=form))["media_id"])

    async def create_menu(self, menu: dict[str, Any]) -> None:
        await self.call("POST", "/cgi-bin/menu/create", body=menu)

    async def openid_of(self, code: str) -> str:
        """The resident behind an OAuth2 ``snsapi_base`` redirect's ``code``."""
        answer = await self._checked("GET", "/sns/oauth2/access_token", params={
            "appid": self._app_id, "secret": self._app_secret, "code": code, "grant_type": "authorization_code"})
        return str(answer["openid"])
