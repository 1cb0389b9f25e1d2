"""The WeChat official account: the callback WeChat posts messages to, and sending back to residents.

WeChat waits five seconds for the callback's answer and otherwise posts the same message again (three
times in all). So every message is stored (once: retries carry the same MsgId) and answered within
``HUB_WECHAT_REPLY_SECONDS`` (4.5 s): with the bot's answer as the passive reply when it is ready by then,
otherwise with ``success``, and the answer follows as a customer-service message. Only a conversation the
bot is handling waits for an answer; messages to people are acknowledged at once.

Outbound, a message goes as the passive reply if its resident's callback is still open in this process,
otherwise through the customer-service API; a work-order notice goes as a template message when one is
configured, and so does any reply once the 48-hour window of customer-service messages has closed (45015).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import secrets
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from wechatpy import events, messages, parse_message
from wechatpy.crypto import WeChatCrypto
from wechatpy.exceptions import InvalidAppIdException, InvalidSignatureException
from wechatpy.replies import TextReply
from wechatpy.utils import check_signature

from channels.base import (
    Attachment,
    Capability,
    ChannelAdapter,
    ChannelSendError,
    DeliveryResult,
    DeliveryState,
    InboundMessage,
    OutboundMessage,
    RouterPort,
)
from channels.wechat.api import OUTSIDE_WINDOW, WeChatAPI, WeChatAPIError
from channels.wechat.menu import Menu, load_menu
from channels.wechat.messages import CHANNEL, MEDIA_TYPES, custom_message, inbound_of, template_message, text_of
from router.errors import BadRequest, Forbidden
from router.logs import get_logger
from router.residents import resident_of, resident_token

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
    """A callback still open: the first message for its resident becomes the passive reply."""

    answer: asyncio.Future[OutboundMessage] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future())
    written: asyncio.Event = field(default_factory=asyncio.Event)


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
        self._tasks: set[asyncio.Task[None]] = set()
        self._replying: dict[str, asyncio.Event] = {}  # resident → their passive reply being written

    # -- ChannelAdapter -------------------------------------------------------------------------

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/wechat", self.verify), web.post("/wechat", self.callback),
                web.get("/wechat/files/{file_id}", self.download), web.get("/wechat/orders", self.my_orders)]

    async def start(self) -> None:
        await self.api.start()
        if self._settings.wechat_push_menu:
            task = asyncio.create_task(self._push_menu())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
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
        if not as_template and message.attachment is None and self._answer_passively(message):
            return DeliveryResult(state=DeliveryState.SENT)
        await self._after_passive_reply(message.recipient)
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
        self._check_signature(request)
        return web.Response(text=request.query.get("echostr", ""))

    async def download(self, request: web.Request) -> web.FileResponse:
        """Files of WeChat conversations: for staff, and for the resident by the signed link they were sent."""
        resident = resident_of(self.router.secret_key, request.query.get("t", ""))
        return await self.serve_file(request, resident[1] if resident and resident[0] == CHANNEL else None)

    async def my_orders(self, request: web.Request) -> web.Response:
        """The menu's 我的工单: WeChat's OAuth2 (snsapi_base) names the resident, who then sees their orders.

        Without ``code`` the browser goes to WeChat's authorisation page, which comes back here with one
        (and the ``state`` this hub put in a cookie, so that no other site can start the round trip).
        """
        code, state = request.query.get("code"), request.query.get("state", "")
        if not code:
            state = secrets.token_urlsafe(16)
            target = f"{self._settings.base_url}/wechat/orders"
            query = urlencode({"appid": self._settings.wechat_app_id, "redirect_uri": target,
                               "response_type": "code", "scope": "snsapi_base", "state": state})
            response = web.HTTPFound(f"{self._settings.wechat_oauth_base_url}/connect/oauth2/authorize?{query}"
                                     "#wechat_redirect")
            response.set_cookie(OAUTH_STATE_COOKIE, state, max_age=600, httponly=True, samesite="Lax",
                                secure=self._settings.cookie_secure, path="/wechat/orders")
            raise response
        if not state or not secrets.compare_digest(state, request.cookies.get(OAUTH_STATE_COOKIE, "")):
            raise BadRequest("请从公众号菜单“我的工单”重新进入", code="bad_oauth_state")
        try:
            openid = await self.api.openid_of(code)
        except WeChatAPIError as exc:
            log.warning("wechat oauth refused", errcode=exc.errcode)
            raise BadRequest("授权已失效,请从公众号菜单“我的工单”重新进入", code="oauth_failed") from None
        token = resident_token(self.router.secret_key, CHANNEL, openid)
        response = web.HTTPFound(f"/my/orders#{urlencode({'t': token})}")
        response.del_cookie(OAUTH_STATE_COOKIE, path="/wechat/orders")
        raise response

    async def callback(self, request: web.Request) -> web.StreamResponse:
        started = asyncio.get_running_loop().time()
        self._check_signature(request)
        if request.content_length is not None and request.content_length > MAX_BODY:
            raise BadRequest("消息过大", code="too_large")
        body = await request.content.read(MAX_BODY + 1)
        if len(body) > MAX_BODY:
            raise BadRequest("消息过大", code="too_large")
        encrypted = request.query.get("encrypt_type") == "aes"
        xml = self._decrypt(request, body) if encrypted else body
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
        finally:
            if slot is not None:
                slot.written.set()  # the next message for this resident may now go out
        return response

    def _check_signature(self, request: web.Request) -> None:
        query = request.query
        try:
            check_signature(self._token, query.get("signature", ""), query.get("timestamp", ""),
                            query.get("nonce", ""))
        except InvalidSignatureException:
            log.warning("wechat callback with a bad signature refused", path=request.path)
            raise Forbidden("签名无效", code="bad_signature") from None

    def _decrypt(self, request: web.Request, body: bytes) -> str:
        if self._crypto is None:
            log.warning("encrypted wechat message but no HUB_WECHAT_ENCODING_AES_KEY")
            raise BadRequest("未配置消息加解密密钥", code="no_aes_key")
        query = request.query
        try:
            return self._crypto.decrypt_message(body, query.get("msg_signature", ""), query.get("timestamp", ""),
                                                query.get("nonce", ""))
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
        try:
            # Shielded: should WeChat hang up, the message is still stored and routed (its retry is a duplicate).
            result = await asyncio.shield(self.router.ingest(inbound))
            if result.duplicate or result.conversation_state != "bot":
                return None  # a retry (answered by the first delivery), or people answer
            remaining = started + self._settings.wechat_reply_seconds - asyncio.get_running_loop().time()
            try:
                answer = await asyncio.wait_for(asyncio.shield(slot.answer), max(0.0, remaining))
            except TimeoutError:
                return None  # the answer follows as a customer-service message
            return text_of(answer), slot
        finally:
            slots.remove(slot)
            if not slots:
                del self._slots[inbound.external_id]
            if not slot.answer.done():
                slot.answer.cancel()

    def _answer_passively(self, message: OutboundMessage) -> bool:
        """Hand ``message`` to its resident's open callback, if one waits for an answer in this process."""
        for slot in self._slots.get(message.recipient, ()):
            if not slot.answer.done():
                slot.answer.set_result(message)
                self._replying[message.recipient] = slot.written
                return True
        return False

    async def _after_passive_reply(self, recipient: str) -> None:
        """Keep a resident's messages in order: the next one leaves once the passive reply was written."""
        written = self._replying.pop(recipient, None)
        if written is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(written.wait(), PASSIVE_WRITE_WAIT)

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

    # -- sending --------------------------------------------------------------------------------

    def _with_resident_link(self, message: OutboundMessage) -> OutboundMessage:
        """A file goes as a link the resident can open in WeChat's browser: absolute, with their signed token."""
        attachment = message.attachment
        if attachment is None or not attachment.url.startswith("/"):
            return message
        token = resident_token(self.router.secret_key, CHANNEL, message.recipient)
        link = f"{self._settings.base_url}{attachment.url}?{urlencode({'t': token})}"
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


def _send_error(exc: WeChatAPIError) -> ChannelSendError:
    reason = ERRORS_FOR_AGENTS.get(exc.errcode, "") if exc.errcode is not None else "微信接口无法访问"
    return ChannelSendError(f"{reason}({exc})" if reason else str(exc), retryable=exc.retryable)
