"""The WeChat official account: the callback WeChat posts messages to, and sending back to residents.

WeChat waits five seconds for the callback's answer and otherwise posts the same message again (three
times in all). So every message is stored (once: retries carry the same MsgId) and answered within
``HUB_WECHAT_REPLY_SECONDS`` (4.5 s): with the bot's answer as the passive reply when it is ready by then,
otherwise with ``success``, and the answer follows as a customer-service message. Only a conversation the
bot is handling waits for an answer; messages to people are acknowledged at once. A passive reply is sent only
once it was written: if WeChat hung up before (its retry is then answered ``success``, as a duplicate), the
answer goes as a customer-service message.

Outbound, a message goes as the passive reply if its resident's callback is still open in this process,
otherwise through the customer-service API; a work-order notice goes as a template message when one is
configured, and so does any reply once the 48-hour window of customer-service messages has closed (45015).

A callback counts once: its signature must be fresh (``HUB_WECHAT_TIMESTAMP_WINDOW_SECONDS`` either side of
now) and its nonce unused (remembered for that long by :mod:`router.nonces`), so a captured request cannot be
sent again, nor its signed query reused for another body. A used nonce is answered ``success`` and nothing
more: WeChat's retries of a message are answered that way too, whether they bring a new nonce (the message
is then recognised by its MsgId) or the first one. ``HUB_WECHAT_MODE=safe`` refuses plaintext.

While the hub's database is unreachable a message is journaled on the hub's disk and answered ``success``
(its answer follows as a customer-service message once the database is back); should the journal be full,
WeChat gets 503 and retries.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hmac
import secrets
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import xmltodict
from aiohttp import web
from multidict import MultiMapping
from wechatpy import events, messages, parse_message
from wechatpy.crypto import WeChatCrypto
from wechatpy.exceptions import InvalidAppIdException, InvalidSignatureException
from wechatpy.replies import TextReply
from wechatpy.utils import WeChatSigner

from channels.base import (
    Attachment,
    Capability,
    ChannelAdapter,
    ChannelSendError,
    DeliveryResult,
    DeliveryState,
    InboundMessage,
    Journaled,
    OutboundMessage,
    RouterPort,
)
from channels.wechat.api import OUTSIDE_WINDOW, WeChatAPI, WeChatAPIError
from channels.wechat.menu import Menu, load_menu
from channels.wechat.messages import CHANNEL, MEDIA_TYPES, custom_message, inbound_of, template_message, text_of
from router.bodies import read_body
from router.db import unreachable
from router.errors import BadRequest, Forbidden
from router.filelinks import MESSAGE_LINK_SECONDS, signed_file_link
from router.logs import get_logger
from router.residents import resident_token
from router.spool import SpoolFull
from router.tasks import TaskSet

log = get_logger(__name__)

MAX_BODY = 64 * 1024  # WeChat's messages are a few hundred bytes
MEDIA_TIMEOUT = 2.0  # fetching a picture or voice clip must leave time to answer WeChat
PASSIVE_WRITE_WAIT = 2.0
SUCCESS = "success"
OAUTH_STATE_COOKIE = "wechat_oauth_state"
ERRORS_FOR_AGENTS = {  # what an agent reads beside a message that did not go out
    OUTSIDE_WINDOW: "居民超过48小时未互动,客服消息无法送达",
    45047: "居民回复前客服消息已达上限(20条)",
    45009: "微信接口今日调用次数已达上限",
    43004: "居民已取消关注公众号",
    40003: "居民的 openid 无效",
    -1: "微信系统繁忙",
}


@dataclass
class _ReplySlot:
    """A callback still open: the first message for its resident becomes the passive reply.

    ``written`` is set once the callback is over, and ``delivered`` tells whether the reply went out in it.
    """

    answer: asyncio.Future[OutboundMessage] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future())
    written: asyncio.Event = field(default_factory=asyncio.Event)
    delivered: bool = False
    waiting: bool = False  # the callback waits for the bot's answer (only then may it carry one)


class WeChatAdapter(ChannelAdapter):
    name = CHANNEL
    capabilities = frozenset({Capability.TEXT, Capability.IMAGE, Capability.VOICE, Capability.LOCATION,
                              Capability.TEMPLATE})

    def __init__(self, router: RouterPort) -> None:
        super().__init__(router)
        settings = router.settings
        self._settings = settings
        self._token = settings.wechat_token.get_secret_value()
        aes_key = settings.wechat_encoding_aes_key.get_secret_value()
        self._crypto = WeChatCrypto(self._token, aes_key, settings.wechat_app_id) if aes_key else None
        self.api = WeChatAPI(settings.wechat_api_base_url, settings.wechat_app_id,
                             settings.wechat_app_secret.get_secret_value(), router.shared_value,
                             timeout=settings.wechat_api_timeout_seconds)
        self.menu: Menu = load_menu(settings.wechat_menu_path, settings.base_url)
        self._slots: defaultdict[str, deque[_ReplySlot]] = defaultdict(deque)
        self._tasks = TaskSet()

    # -- ChannelAdapter -------------------------------------------------------------------------

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/wechat", self.verify), web.post("/wechat", self.callback),
                web.get("/wechat/orders", self.my_orders), web.get("/wechat/callback", self.ask_callback)]

    async def start(self) -> None:
        await self.api.start()
        if self._settings.wechat_push_menu:
            self._tasks.spawn(self._push_menu())

    async def stop(self) -> None:
        await self._tasks.cancel()
        await self.api.stop()

    def parse(self, raw: Any, external_id: str) -> InboundMessage:
        message = parse_message(raw)
        inbound = inbound_of(message, buttons=self.menu.buttons)
        if inbound is None or inbound.external_id != external_id:
            raise ValueError("不是居民发来的消息")
        return inbound

    async def send(self, message: OutboundMessage) -> DeliveryResult:
        message = self._with_resident_link(message)
        template = self._settings.wechat_progress_template_id
        as_template = bool(template and (message.payload or {}).get("work_order"))
        if not as_template and message.attachment is None and await self._answered_passively(message):
            return DeliveryResult(state=DeliveryState.SENT)
        if as_template:
            return await self._send_template(message, template)
        try:
            await self.api.send_custom(custom_message(message, media_id=await self._media_of(message)))
        except WeChatAPIError as exc:
            fallback = self._settings.wechat_fallback_template_id
            if exc.errcode == OUTSIDE_WINDOW and fallback:
                log.info("outside the 48-hour window; sending a template message", message_id=message.message_id)
                return await self._send_template(message, fallback)
            raise _send_error(exc) from exc
        return DeliveryResult(state=DeliveryState.SENT)

    # -- the callback ---------------------------------------------------------------------------

    async def verify(self, request: web.Request) -> web.Response:
        """WeChat checks the server address once: echo ``echostr`` if the signature is ours."""
        self._check_signature(request.query)
        return web.Response(text=request.query.get("echostr", ""))

    async def my_orders(self, request: web.Request) -> web.Response:
        """The menu's 我的工单: the resident's own orders."""
        return await self._resident_page(request, "/wechat/orders", "/my/orders", "我的工单")

    async def ask_callback(self, request: web.Request) -> web.Response:
        """The menu's 请给我回电: the resident leaves a number and a time to be called back at."""
        return await self._resident_page(request, "/wechat/callback", "/my/callback", "请给我回电")

    async def _resident_page(self, request: web.Request, here: str, page: str, menu_item: str) -> web.Response:
        """WeChat's OAuth2 (snsapi_base) names the resident, who then goes to ``page`` with a link token naming
        them.

        Without ``code`` the browser goes to WeChat's authorisation page, which comes back here with one
        (and the ``state`` this hub put in a cookie, so that no other site can start the round trip).
        """
        code, state = request.query.get("code"), request.query.get("state", "")
        if not code:
            state = secrets.token_urlsafe(16)
            query = urlencode({"appid": self._settings.wechat_app_id, "redirect_uri": self._settings.base_url + here,
                               "response_type": "code", "scope": "snsapi_base", "state": state})
            response = web.HTTPFound(f"{self._settings.wechat_oauth_base_url}/connect/oauth2/authorize?{query}"
                                     "#wechat_redirect")
            response.set_cookie(OAUTH_STATE_COOKIE, state, max_age=600, httponly=True, samesite="Lax",
                                secure=self._settings.secure_cookies, path=here)
            raise response
        if not state or not secrets.compare_digest(state, request.cookies.get(OAUTH_STATE_COOKIE, "")):
            raise BadRequest(f"请从公众号菜单“{menu_item}”重新进入", code="bad_oauth_state")
        try:
            openid = await self.api.openid_of(code)
        except WeChatAPIError as exc:
            log.warning("wechat oauth refused", errcode=exc.errcode)
            raise BadRequest(f"授权已失效,请从公众号菜单“{menu_item}”重新进入", code="oauth_failed") from None
        token = resident_token(self.router.secret_key, CHANNEL, openid)
        response = web.HTTPFound(f"{page}#{urlencode({'t': token})}")
        response.del_cookie(OAUTH_STATE_COOKIE, path=here)
        raise response

    async def callback(self, request: web.Request) -> web.StreamResponse:
        started = asyncio.get_running_loop().time()
        self._check_signature(request.query)
        body = await read_body(request, MAX_BODY, "消息过大")
        encrypted = request.query.get("encrypt_type") == "aes"
        if not encrypted and self._settings.wechat_mode == "safe":
            log.warning("plaintext wechat callback refused in safe mode")
            raise Forbidden("安全模式下只接受加密消息", code="encryption_required")
        xml = self._decrypt(request, body) if encrypted else body
        if not await self._first_delivery(request.query):
            # The same signed query again: a replay, or WeChat retrying with the nonce it used before. The
            # first delivery stored the message (retries are answered by it), so nothing is processed.
            log.warning("wechat callback with a nonce already used; acknowledged, not processed")
            return web.Response(text=SUCCESS)
        try:
            message = parse_message(xml)
        except Exception as exc:
            log.warning("wechat sent XML that does not parse; acknowledged", error=type(exc).__name__)
            return web.Response(text=SUCCESS)
        reply = await self._answer(message, started)
        if reply is None:
            return web.Response(text=SUCCESS)
        text, slot = reply
        rendered = TextReply(source=message.target, target=message.source, content=text).render()
        if encrypted:
            assert self._crypto is not None
            rendered = self._crypto.encrypt_message(rendered, request.query["nonce"], request.query["timestamp"])
        response = web.Response(text=rendered, content_type="application/xml")
        try:
            await response.prepare(request)
            await response.write_eof()
            if slot is not None:
                slot.delivered = True
        except ConnectionError as exc:
            # WeChat hung up before the reply could be written: its retry is acknowledged as a duplicate, so
            # the answer goes out as a customer-service message instead (see send()).
            log.warning("passive reply not written; it follows as a customer-service message",
                        error=type(exc).__name__)
        finally:
            if slot is not None:
                slot.written.set()
        return response

    def _check_signature(self, query: MultiMapping[str]) -> None:
        """The query is signed with our token, at a time within the configured window of now."""
        timestamp = query.get("timestamp", "")
        if not _signed(query.get("signature", ""), self._token, timestamp, query.get("nonce", "")):
            log.warning("wechat callback with a bad signature refused")
            raise Forbidden("签名无效", code="bad_signature")
        window = self._settings.wechat_timestamp_window_seconds
        if not (timestamp.isascii() and timestamp.isdigit()) or abs(time.time() - int(timestamp)) > window:
            log.warning("wechat callback signed outside the time window refused", timestamp=timestamp[:20])
            raise Forbidden("签名已过期", code="stale_signature")

    async def _first_delivery(self, query: MultiMapping[str]) -> bool:
        """Remember the signed query's nonce for as long as its timestamp is accepted; False if seen before.

        In safe mode the key includes ``msg_signature``, which also signs the ciphertext, so that two messages
        that happen to share a second and a nonce are both accepted. Where plaintext is accepted the signature
        covers only timestamp and nonce, and those two alone must be spent.
        """
        key = f"wechat:{query['timestamp']}:{query.get('nonce', '')}"
        if self._settings.wechat_mode == "safe":
            key += f":{query.get('msg_signature', '')}"
        window = self._settings.wechat_timestamp_window_seconds
        lifetime = timedelta(seconds=int(query["timestamp"]) + window - time.time() + 1)
        return await self.router.first_use(key[:200], lifetime)

    def _decrypt(self, request: web.Request, body: bytes) -> str:
        if self._crypto is None:
            log.warning("encrypted wechat message but no HUB_WECHAT_ENCODING_AES_KEY")
            raise BadRequest("未配置消息加解密密钥", code="no_aes_key")
        query = request.query
        try:
            ciphertext = xmltodict.parse(body)["xml"]["Encrypt"]
        except Exception:
            raise BadRequest("消息无法解密", code="bad_ciphertext") from None
        if not isinstance(ciphertext, str) or not _signed(query.get("msg_signature", ""), self._token,
                                                          query.get("timestamp", ""), query.get("nonce", ""),
                                                          ciphertext):
            log.warning("wechat message with a bad msg_signature refused")
            raise Forbidden("消息签名无效", code="bad_signature")
        try:
            return self._crypto.decrypt_message({"Encrypt": ciphertext}, query.get("msg_signature", ""),
                                                query.get("timestamp", ""), query.get("nonce", ""))
        except (InvalidSignatureException, InvalidAppIdException):
            log.warning("wechat message with a bad msg_signature or app id refused")
            raise Forbidden("消息签名无效", code="bad_signature") from None
        except Exception as exc:
            log.warning("wechat message that does not decrypt", error=type(exc).__name__)
            raise BadRequest("消息无法解密", code="bad_ciphertext") from None

    async def _answer(self, message: messages.BaseMessage, started: float) -> tuple[str, _ReplySlot | None] | None:
        """Store what the resident sent; the passive reply's text (and its slot), or None for ``success``."""
        match message:
            case events.SubscribeEvent() | events.SubscribeScanEvent() | events.ScanEvent():
                return self.menu.welcome, None
            case events.TemplateSendJobFinishEvent():
                await self.router.report_provider_status(CHANNEL, str(message.id), message.status)
                return None
        inbound = inbound_of(message, buttons=self.menu.buttons, attachment=await self._fetch_media(message))
        if inbound is None:
            log.info("wechat event acknowledged", type=message.type, wechat_event=getattr(message, "event", None))
            return None
        slot = _ReplySlot()
        slots = self._slots[inbound.external_id]
        slots.append(slot)
        handed_back = False
        try:
            # Shielded: should WeChat hang up, the message is still stored and routed (its retry is a duplicate).
            try:
                result = await asyncio.shield(self.router.ingest_or_journal(inbound))
            except SpoolFull:
                log.error("database unreachable and the spool full; WeChat will retry")
                raise web.HTTPServiceUnavailable(reason="系统繁忙") from None
            if isinstance(result, Journaled):
                return None  # stored and answered once the database is back
            if result.duplicate or result.conversation_state != "bot":
                return None  # a retry (answered by the first delivery), or people answer
            remaining = started + self._settings.wechat_reply_seconds - asyncio.get_running_loop().time()
            slot.waiting = True
            try:
                answer = await asyncio.wait_for(asyncio.shield(slot.answer), max(0.0, remaining))
            except TimeoutError:
                return None  # the answer follows as a customer-service message
            handed_back = True
            slot.waiting = False  # this callback carries it
            return text_of(answer), slot
        finally:
            slots.remove(slot)
            if not slots:
                del self._slots[inbound.external_id]
            if not slot.answer.done():
                slot.answer.cancel()
            if not handed_back:
                slot.written.set()  # nothing of the answer is written in this callback

    async def _answered_passively(self, message: OutboundMessage) -> bool:
        """Whether ``message`` went out as the passive reply of its resident's open callback in this process.

        It counts as sent only once the callback wrote it (which also keeps the resident's messages in order:
        the next one leaves after it); one that could not be written is sent otherwise by the caller.
        """
        for slot in self._slots.get(message.recipient, ()):
            if slot.waiting and not slot.answer.done():
                slot.answer.set_result(message)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(slot.written.wait(), PASSIVE_WRITE_WAIT)
                return slot.delivered
        return False

    async def _fetch_media(self, message: messages.BaseMessage) -> Attachment | None:
        if message.type not in MEDIA_TYPES:
            return None
        try:
            media = await asyncio.wait_for(self.api.download_media(message.media_id), MEDIA_TIMEOUT)
            return await self.router.store_file(CHANNEL, message.source, media.filename, media.content_type,
                                                media.data)
        except (WeChatAPIError, TimeoutError, ValueError) as exc:
            log.warning("wechat media not fetched", type=message.type, error=str(exc))
            return None
        except Exception as exc:
            if not unreachable(exc):
                raise
            # The message is journaled without the file; its media_id and WeChat's picture address stay with it.
            log.warning("database unreachable; wechat media not kept", type=message.type)
            return None

    # -- sending --------------------------------------------------------------------------------

    def _with_resident_link(self, message: OutboundMessage) -> OutboundMessage:
        """A file goes as a link the resident can open in WeChat's browser: absolute, opening that one file for a
        day (the resident may read the message hours after it was sent)."""
        attachment = message.attachment
        if attachment is None or not attachment.file_id:
            return message
        link = self._settings.base_url + signed_file_link(self.router.secret_key, attachment.file_id,
                                                          MESSAGE_LINK_SECONDS)
        return dataclasses.replace(message, attachment=dataclasses.replace(attachment, url=link))

    async def _media_of(self, message: OutboundMessage) -> str | None:
        """Upload an image the agent attached; other files go as a link in the text."""
        attachment = message.attachment
        if attachment is None or not attachment.content_type.startswith("image/") or not attachment.file_id:
            return None
        opened = await self.router.open_file(attachment.file_id)
        if opened is None:
            return None
        info, path = opened
        try:
            return await self.api.upload_media("image", info.name, path.read_bytes(), info.content_type)
        except WeChatAPIError as exc:
            raise _send_error(exc) from exc

    async def _send_template(self, message: OutboundMessage, template_id: str) -> DeliveryResult:
        order = (message.payload or {}).get("work_order") or {}
        url = f"{self._settings.base_url}/wechat/orders" if order else None
        body = template_message(message, template_id, self._settings.wechat_template_fields, url)
        try:
            msgid = await self.api.send_template(body)
        except WeChatAPIError as exc:
            raise _send_error(exc) from exc
        return DeliveryResult(state=DeliveryState.SENT, provider_message_id=msgid)

    async def _push_menu(self) -> None:
        """Publish the custom menu; retried with back-off while WeChat cannot be reached."""
        delay = 1.0
        while True:
            try:
                await self.api.create_menu(self.menu.definition)
                log.info("wechat menu published", buttons=len(self.menu.definition["button"]))
                return
            except WeChatAPIError as exc:
                if not exc.retryable:
                    log.error("wechat refused the menu", errcode=exc.errcode, errmsg=exc.errmsg)
                    return
                log.warning("wechat menu not published yet", error=str(exc), retry_in=delay)
                await asyncio.sleep(delay)
                delay = min(60.0, delay * 2)


def _signed(signature: str, *parts: str) -> bool:
    """WeChat's SHA-1 over the sorted parts equals ``signature``, compared in constant time."""
    signer = WeChatSigner()
    signer.add_data(*parts)
    return hmac.compare_digest(signer.signature.encode(), signature.encode())


def _send_error(exc: WeChatAPIError) -> ChannelSendError:
    reason = ERRORS_FOR_AGENTS.get(exc.errcode, "") if exc.errcode is not None else "微信接口无法访问"
    return ChannelSendError(f"{reason}({exc})" if reason else str(exc), retryable=exc.retryable)
