"""A stand-in for WeChat's servers, for the tests and the demo: the API the hub calls, and residents' phones.

:class:`StandInWeChat` serves the endpoints the hub uses (``/cgi-bin/token``, ``message/custom/send``,
``message/template/send``, ``media/get``, ``media/upload``, ``menu/create``, ``/sns/oauth2/access_token``)
with WeChat's JSON shapes and error codes, keeps what was sent, and can be told to fail
(:meth:`StandInWeChat.fail_next`, :meth:`StandInWeChat.expire_tokens`, a ``delay``) or to hold
customer-service sends unanswered (:meth:`StandInWeChat.hold_sends`).

:class:`Simulator` posts messages to the hub's callback exactly as WeChat does: signed query string, XML
in plain, compatible or safe (AES) mode, a 5-second limit and up to three retries of the same message.

``make run`` (demo mode) runs it inside the hub process for a demo account and prints how to write to the
hub as a WeChat resident: ``python -m channels.wechat.standin say --wechat <its URL> "我家停水了"``.
``python -m channels.wechat.standin serve --port 8090`` runs it alone.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import aiohttp
from aiohttp import web
from wechatpy.crypto import WeChatCrypto
from wechatpy.utils import WeChatSigner

from router.logs import get_logger

log = get_logger(__name__)

ERRMSG = {  # what WeChat says with each code
    40001: "invalid credential, access_token is invalid or not latest",
    40013: "invalid appid",
    40125: "invalid appsecret",
    40029: "invalid code",
    40007: "invalid media_id",
    40003: "invalid openid",
    42001: "access_token expired",
    44002: "empty post data",
    45015: "response out of time limit or subscription is canceled",
    45047: "out of response count limit",
    45009: "reach max api daily quota limit",
    47001: "data format error",
    -1: "system error",
}


def error(code: int) -> web.Response:
    return web.json_response({"errcode": code, "errmsg": ERRMSG.get(code, "error")})


OK = {"errcode": 0, "errmsg": "ok"}


@dataclass
class Fault:
    path: str
    errcode: int
    times: int


@dataclass
class StandInWeChat:
    app_id: str
    app_secret: str
    token_lifetime: int = 7200
    delay: float = 0.0  # seconds before every API answer (a slow WeChat)
    tokens: dict[str, float] = field(default_factory=dict)  # token → expiry (monotonic)
    token_requests: int = 0
    sent: list[dict[str, Any]] = field(default_factory=list)  # custom and template messages, as posted
    menus: list[dict[str, Any]] = field(default_factory=list)
    media: dict[str, tuple[bytes, str, str]] = field(default_factory=dict)  # media_id → data, type, name
    oauth_codes: dict[str, str] = field(default_factory=dict)  # code → openid
    window_closed: set[str] = field(default_factory=set)  # openids outside the 48-hour window
    faults: deque[Fault] = field(default_factory=deque)
    browser_openid: str = ""  # the resident whose WeChat browser opens pages (OAuth2)
    held: list[dict[str, Any]] = field(default_factory=list)  # customer-service sends being held, as posted
    _holding: Callable[[dict[str, Any]], bool] | None = field(default=None, init=False)
    _released: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    _deliver_orphans: bool = field(default=True, init=False)

    def app(self) -> web.Application:
        app = web.Application(client_max_size=20 * 1024 * 1024)
        app.router.add_get("/cgi-bin/token", self._token)
        app.router.add_post("/cgi-bin/message/custom/send", self._custom_send)
        app.router.add_post("/cgi-bin/message/template/send", self._template_send)
        app.router.add_get("/cgi-bin/media/get", self._media_get)
        app.router.add_post("/cgi-bin/media/upload", self._media_upload)
        app.router.add_post("/cgi-bin/menu/create", self._menu_create)
        app.router.add_get("/sns/oauth2/access_token", self._oauth)
        app.router.add_get("/connect/oauth2/authorize", self._authorize)
        return app

    # -- what tests arrange ----------------------------------------------------------------------

    def fail_next(self, path: str, errcode: int, times: int = 1) -> None:
        """The next ``times`` calls of ``path`` answer ``errcode``."""
        self.faults.append(Fault(path, errcode, times))

    def expire_tokens(self) -> None:
        """Every token issued so far is expired (42001), as after two hours."""
        self.tokens = dict.fromkeys(self.tokens, 0.0)

    def hold_sends(self, matching: Callable[[dict[str, Any]], bool]) -> None:
        """Customer-service sends ``matching`` their posted body wait, unanswered, until :meth:`release_sends`."""
        self._holding, self._released = matching, asyncio.Event()

    def release_sends(self, deliver_orphans: bool = True) -> None:
        """Answer the held sends and hold no more. A held send whose sender hung up meanwhile (its process died) is
        delivered when ``deliver_orphans``: WeChat had the whole request. Otherwise it is dropped, as a request
        that never reached WeChat."""
        self._holding, self._deliver_orphans = None, deliver_orphans
        self._released.set()

    def add_media(self, data: bytes, content_type: str, filename: str) -> str:
        media_id = secrets.token_urlsafe(48)[:64]
        self.media[media_id] = (data, content_type, filename)
        return media_id

    def oauth_code_for(self, openid: str) -> str:
        code = secrets.token_hex(16)
        self.oauth_codes[code] = openid
        return code

    async def wait_sent(self, count: int, within: float = 10.0) -> list[dict[str, Any]]:
        """Once at least ``count`` messages were sent, all of them."""
        deadline = time.monotonic() + within
        while len(self.sent) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(self.sent)} of {count} messages reached the stand-in WeChat")
            await asyncio.sleep(0.05)
        return list(self.sent)

    async def sent_view(self, request: web.Request) -> web.Response:
        """What was sent to one resident (a control endpoint of the stand-in; WeChat has none such)."""
        touser = request.query.get("touser", "")
        return web.json_response([m for m in self.sent if m.get("touser") == touser])

    # -- the API ---------------------------------------------------------------------------------

    async def _pause(self) -> None:
        if self.delay:
            await asyncio.sleep(self.delay)

    def _fault(self, path: str) -> web.Response | None:
        for fault in self.faults:
            if fault.path == path:
                fault.times -= 1
                if fault.times <= 0:
                    self.faults.remove(fault)
                return error(fault.errcode)
        return None

    def _authorised(self, request: web.Request) -> web.Response | None:
        token = request.query.get("access_token", "")
        if token not in self.tokens:
            return error(40001)
        if self.tokens[token] < time.monotonic():
            return error(42001)
        return self._fault(request.path)

    async def _json(self, request: web.Request) -> dict[str, Any] | None:
        try:
            body = await request.json()
        except ValueError:
            return None
        return body if isinstance(body, dict) else None

    def _wrong_credentials(self, query: Any) -> web.Response | None:
        if query.get("appid") != self.app_id:
            return error(40013)
        if query.get("secret") != self.app_secret:
            return error(40125)
        return None

    async def _token(self, request: web.Request) -> web.Response:
        await self._pause()
        if (refused := self._wrong_credentials(request.query)) is not None:
            return refused
        if (fault := self._fault(request.path)) is not None:
            return fault
        self.token_requests += 1
        token = secrets.token_urlsafe(96)[:128]
        # A new token ends the old ones (WeChat keeps the old one valid five more minutes).
        self.tokens = {t: min(expiry, time.monotonic() + 300) for t, expiry in self.tokens.items()}
        self.tokens[token] = time.monotonic() + self.token_lifetime
        return web.json_response({"access_token": token, "expires_in": self.token_lifetime})

    async def _custom_send(self, request: web.Request) -> web.Response:
        await self._pause()
        if (refused := self._authorised(request)) is not None:
            return refused
        body = await self._json(request)
        if body is None or "touser" not in body or body.get("msgtype") not in {"text", "image", "news", "voice"}:
            return error(47001)
        if body["touser"] in self.window_closed:
            return error(45015)
        if self._holding is not None and self._holding(body):
            self.held.append(body)
            await self._released.wait()
            if not self._deliver_orphans and (request.transport is None or request.transport.is_closing()):
                return error(-1)  # nobody is left to read it
        self.sent.append({"api": "custom", **body})
        return web.json_response(OK)

    async def _template_send(self, request: web.Request) -> web.Response:
        await self._pause()
        if (refused := self._authorised(request)) is not None:
            return refused
        body = await self._json(request)
        if body is None or not body.get("touser") or not body.get("template_id") or not isinstance(
                body.get("data"), dict):
            return error(47001)
        msgid = int.from_bytes(secrets.token_bytes(7), "big")
        self.sent.append({"api": "template", "msgid": msgid, **body})
        return web.json_response({**OK, "msgid": msgid})

    async def _media_get(self, request: web.Request) -> web.Response:
        await self._pause()
        if (refused := self._authorised(request)) is not None:
            return refused
        found = self.media.get(request.query.get("media_id", ""))
        if found is None:
            return error(40007)
        data, content_type, filename = found
        return web.Response(body=data, content_type=content_type,
                            headers={"Content-Disposition": f'attachment; filename="{filename}"'})

    async def _media_upload(self, request: web.Request) -> web.Response:
        await self._pause()
        if (refused := self._authorised(request)) is not None:
            return refused
        kind = request.query.get("type", "")
        form = await request.post()
        media = form.get("media")
        if kind not in {"image", "voice", "video", "thumb"} or not isinstance(media, web.FileField):
            return error(44002)
        data = media.file.read()
        media_id = self.add_media(data, media.content_type, media.filename)
        return web.json_response({"type": kind, "media_id": media_id, "created_at": int(time.time())})

    async def _menu_create(self, request: web.Request) -> web.Response:
        await self._pause()
        if (refused := self._authorised(request)) is not None:
            return refused
        body = await self._json(request)
        if body is None or not isinstance(body.get("button"), list) or not 1 <= len(body["button"]) <= 3:
            return error(47001)
        self.menus.append(body)
        return web.json_response(OK)

    async def _authorize(self, request: web.Request) -> web.Response:
        """The resident's WeChat browser at the authorisation page: back to the site with a code (snsapi_base)."""
        query = request.query
        if query.get("appid") != self.app_id or query.get("response_type") != "code" or not query.get(
                "redirect_uri") or query.get("scope") not in {"snsapi_base", "snsapi_userinfo"}:
            return web.Response(text="参数错误", status=400)  # WeChat shows an error page, not JSON
        if not self.browser_openid:
            return web.Response(text="请在微信客户端打开链接", status=403)
        target = query["redirect_uri"]
        separator = "&" if "?" in target else "?"
        back = {"code": self.oauth_code_for(self.browser_openid), "state": query.get("state", "")}
        raise web.HTTPFound(f"{target}{separator}{urlencode(back)}")

    async def _oauth(self, request: web.Request) -> web.Response:
        await self._pause()
        query = request.query
        if (refused := self._wrong_credentials(query)) is not None:
            return refused
        openid = self.oauth_codes.pop(query.get("code", ""), None)  # a code is good for one use
        if openid is None:
            return error(40029)
        return web.json_response({"access_token": secrets.token_urlsafe(64), "expires_in": 7200,
                                  "refresh_token": secrets.token_urlsafe(64), "openid": openid,
                                  "scope": "snsapi_base"})


class Simulator:
    """WeChat's side of the callback: posts residents' messages to the hub as WeChat's servers do."""

    def __init__(self, http: aiohttp.ClientSession, callback_url: str, token: str, *, app_id: str = "",
                 encoding_aes_key: str = "", mode: str = "plain", account: str = "gh_1234567890ab",
                 timeout: float = 5.0, retries: int = 3) -> None:
        if mode not in {"plain", "compat", "safe"}:
            raise ValueError(f"unknown mode {mode}")
        self._http = http
        self._url = callback_url
        self._token = token
        self._crypto = WeChatCrypto(token, encoding_aes_key, app_id) if mode != "plain" else None
        self.mode = mode
        self.account = account
        self.timeout = timeout
        self.retries = retries
        self.attempts = 0  # posts made, retries included

    def xml(self, openid: str, msg_type: str, fields: dict[str, Any], *, msg_id: int | None = None,
            create_time: int | None = None) -> str:
        """A message as WeChat writes it (text fields in CDATA, numbers bare)."""
        parts = [f"<ToUserName><![CDATA[{self.account}]]></ToUserName>",
                 f"<FromUserName><![CDATA[{openid}]]></FromUserName>",
                 f"<CreateTime>{create_time or int(time.time())}</CreateTime>",
                 f"<MsgType><![CDATA[{msg_type}]]></MsgType>"]
        for name, value in fields.items():
            parts.append(f"<{name}>{value}</{name}>" if isinstance(value, int | float)
                         else f"<{name}><![CDATA[{value}]]></{name}>")
        if msg_id is not None:
            parts.append(f"<MsgId>{msg_id}</MsgId>")
        return "<xml>" + "".join(parts) + "</xml>"

    def _signed_query(self, body: str, at: float | None = None) -> tuple[dict[str, str], str]:
        """The query string and body of one post, signed now (or at ``at``, seconds since the epoch)."""
        timestamp, nonce = str(int(time.time() if at is None else at)), str(secrets.randbelow(10**10))
        signer = WeChatSigner()
        signer.add_data(self._token, timestamp, nonce)
        signature = signer.signature
        query = {"signature": signature, "timestamp": timestamp, "nonce": nonce, "openid": "sim"}
        if self._crypto is None:
            return query, body
        encrypted = self._crypto.encrypt_message(body, nonce, timestamp)
        envelope = encrypted if self.mode == "safe" else self._compat(body, encrypted)
        query |= {"encrypt_type": "aes", "msg_signature": _msg_signature(encrypted)}
        return query, envelope

    @staticmethod
    def _compat(plain: str, encrypted: str) -> str:
        """Compatible mode: the plain fields and the ciphertext side by side."""
        cipher = encrypted.split("<Encrypt><![CDATA[", 1)[1].split("]]></Encrypt>", 1)[0]
        return plain.replace("</xml>", f"<Encrypt><![CDATA[{cipher}]]></Encrypt></xml>")

    async def post(self, body: str) -> str:
        """Deliver one message; the hub's answer (decrypted in safe mode), retried as WeChat retries."""
        for attempt in range(1 + self.retries):
            query, envelope = self._signed_query(body)
            self.attempts += 1
            try:
                async with self._http.post(f"{self._url}?{urlencode(query)}", data=envelope.encode(),
                                           headers={"Content-Type": "text/xml"},
                                           timeout=aiohttp.ClientTimeout(total=self.timeout)) as response:
                    text = await response.text()
                    if response.status != 200:
                        raise AssertionError(f"the hub answered HTTP {response.status}: {text}")
            except TimeoutError:
                log.info("simulated wechat retries after its time limit", attempt=attempt + 1)
                continue
            return self._open(text, query)
        return ""  # WeChat gives up; the resident sees nothing from this delivery

    def _open(self, text: str, query: dict[str, str]) -> str:
        if self._crypto is None or not text.startswith("<xml>"):
            return text
        return self._crypto.decrypt_message(text, _msg_signature(text), _field(text, "TimeStamp"),
                                            _field(text, "Nonce"))


def _field(xml: str, name: str) -> str:
    start = xml.index(f"<{name}>") + len(name) + 2
    value = xml[start:xml.index(f"</{name}>", start)]
    return value.removeprefix("<![CDATA[").removesuffix("]]>")


def _msg_signature(encrypted_xml: str) -> str:
    return _field(encrypted_xml, "MsgSignature")


DEMO_ACCOUNT = {  # the demo's official account (make run): values of no real account
    "wechat_app_id": "wx5f3e2d1c0b9a8776", "wechat_app_secret": "demo-app-secret-not-a-real-one",
    "wechat_token": "shuiwu-demo-token", "wechat_encoding_aes_key": "ShuiwuDemoEncodingAesKey0123456789abcdefghi",
}
DEMO_OPENID = "oShuiwuDemoResident000000001"


async def serve(host: str, port: int, *, app_id: str = DEMO_ACCOUNT["wechat_app_id"],
                app_secret: str = DEMO_ACCOUNT["wechat_app_secret"], browser_openid: str = "",
                ) -> tuple[StandInWeChat, web.AppRunner, str]:
    """A stand-in for one account (the demo's by default), listening (``port`` 0: any free one); its URL."""
    standin = StandInWeChat(app_id, app_secret, browser_openid=browser_openid)
    app = standin.app()
    app.router.add_get("/_standin/sent", standin.sent_view)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = runner.addresses[0][1]
    return standin, runner, f"http://{host}:{bound}"


async def _say(hub: str, standin_url: str, openid: str, text: str, wait: float) -> None:
    async with aiohttp.ClientSession() as http:
        simulator = Simulator(http, f"{hub.rstrip('/')}/wechat", DEMO_ACCOUNT["wechat_token"],
                              app_id=DEMO_ACCOUNT["wechat_app_id"],
                              encoding_aes_key=DEMO_ACCOUNT["wechat_encoding_aes_key"], mode="safe")
        answer = await simulator.post(simulator.xml(openid, "text", {"Content": text},
                                                    msg_id=secrets.randbits(63)))
        print(f"公众号被动回复: {_field(answer, 'Content') if answer.startswith('<xml>') else answer}")
        deadline = time.monotonic() + wait
        seen = 0
        while time.monotonic() < deadline:  # answers that follow as customer-service messages
            async with http.get(f"{standin_url}/_standin/sent", params={"touser": openid}) as response:
                sent = await response.json()
            for message in sent[seen:]:
                print(f"客服消息: {message.get('text', {}).get('content') or message}")
            seen = len(sent)
            await asyncio.sleep(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    serving = commands.add_parser("serve", help="serve the demo account's API")
    serving.add_argument("--host", default="127.0.0.1")
    serving.add_argument("--port", type=int, default=8090)
    say = commands.add_parser("say", help="write to the hub as a WeChat resident of the demo account")
    say.add_argument("--hub", default="http://127.0.0.1:8080")
    say.add_argument("--wechat", required=True, help="the stand-in's URL (make run prints it)")
    say.add_argument("--openid", default=DEMO_OPENID)
    say.add_argument("--wait", type=float, default=10.0, help="seconds to watch for answers that follow")
    say.add_argument("text")
    args = parser.parse_args()
    if args.command == "say":
        asyncio.run(_say(args.hub, args.wechat, args.openid, args.text, args.wait))
        return

    async def forever() -> None:
        _, runner, url = await serve(args.host, args.port, browser_openid=DEMO_OPENID)
        print(f"stand-in WeChat at {url}", flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    asyncio.run(forever())


if __name__ == "__main__":
    main()
