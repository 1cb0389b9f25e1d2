"""The web chat adapter: visitor tokens, the visitor WebSocket, uploads, and sending to visitors.

A visitor is identified by a random id inside a token signed with the hub's secret; the widget
keeps the token so that a reload resumes the same conversation. Each hub process keeps the
sockets of the visitors connected to it; what a visitor must receive travels on the event bus, so
a reply sent by an agent on another process still reaches them.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable
from pathlib import Path
from typing import Any
from uuid import UUID

from aiohttp import WSMsgType, web
from itsdangerous import BadSignature, URLSafeTimedSerializer
from pydantic import BaseModel, Field, ValidationError

from channels.base import (
    Capability,
    ChannelAdapter,
    DeliveryResult,
    DeliveryState,
    InboundMessage,
    Journaled,
    OutboundMessage,
    RouterPort,
)
from channels.callbacks import CallbackBody, ask_to_be_called_back
from router.bodies import loads_strict
from router.bot import CHOICE, CHOICE_MAX_CHARS
from router.db import unreachable
from router.errors import BadRequest, Invalid, Unauthorized
from router.filelinks import WIDGET_LINK_SECONDS, signed_file_link
from router.logs import get_logger
from router.models import ConversationState
from router.uploads import read_upload
from router.web import CHATKIT

log = get_logger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
TOKEN_MAX_AGE = 180 * 24 * 3600
TYPING_INTERVAL = 2.0
CLOSE_BAD_TOKEN = 4401
TOPIC = "webchat"
MAX_FILE_LINKS = 100  # files shown in one widget whose links are renewed at once


class MessageFrame(BaseModel):
    type: str
    client_id: str = Field(pattern=r"^[A-Za-z0-9\-]{8,64}$")
    text: str = Field(min_length=1)
    # A click on one of a bot message's buttons: ``text`` is its title, ``choice`` its payload.
    choice: str | None = Field(None, min_length=1, max_length=CHOICE_MAX_CHARS)


class FileLinksBody(BaseModel):
    file_ids: list[UUID] = Field(min_length=1, max_length=MAX_FILE_LINKS)


class AckFrame(BaseModel):
    type: str
    ids: list[int] = Field(max_length=500)


class WebChatAdapter(ChannelAdapter):
    name = "webchat"
    capabilities = frozenset({Capability.TEXT, Capability.IMAGE, Capability.FILE, Capability.BUTTONS,
                              Capability.TYPING, Capability.READ_RECEIPT})
    cross_origin_paths = ("/widget.js", "/webchat/")

    def __init__(self, router: RouterPort) -> None:
        super().__init__(router)
        self._tokens = URLSafeTimedSerializer(router.secret_key, salt="webchat-visitor")
        self._sockets: defaultdict[str, set[web.WebSocketResponse]] = defaultdict(set)
        self._unsubscribe: list[Any] = []
        # The widget is one file for the embedding site: the shared chat kit and the widget in one scope.
        self._widget_bundle = ("(() => {\n" + CHATKIT.read_text("utf-8") + "\n"
                               + (STATIC / "widget.js").read_text("utf-8") + "\n})();\n").encode()

    # -- ChannelAdapter -------------------------------------------------------------------------

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/", self.demo_page),
            web.get("/widget.js", self.widget_script),
            web.post("/webchat/visitors", self.new_visitor),
            web.get("/webchat/ws", self.visitor_socket),
            web.post("/webchat/upload", self.upload),
            web.post("/webchat/file-links", self.file_links),
            web.post("/webchat/callback", self.ask_callback),
        ]

    async def start(self) -> None:
        self._unsubscribe = [
            self.router.subscribe("conversation", self._on_conversation_event),
            self.router.subscribe(TOPIC, self._on_delivery),
        ]

    async def disconnect(self) -> None:
        for sockets in list(self._sockets.values()):
            for ws in list(sockets):
                await ws.close(code=1001, message=b"server shutdown")

    async def stop(self) -> None:
        for unsubscribe in self._unsubscribe:
            unsubscribe()

    def parse(self, raw: Any, external_id: str) -> InboundMessage:
        frame = MessageFrame.model_validate(raw)
        text = frame.text.strip()
        if not text:
            raise ValueError("消息不能为空")
        if len(text) > self.router.settings.message_max_chars:
            raise ValueError(f"消息不能超过 {self.router.settings.message_max_chars} 字")
        return InboundMessage(channel=self.name, external_id=external_id, channel_message_id=frame.client_id,
                              text=text, payload={CHOICE: frame.choice} if frame.choice is not None else {})

    async def send(self, message: OutboundMessage) -> DeliveryResult:
        await self.router.publish(TOPIC, {"visitor_id": message.recipient,
                                          "frame": {"type": "message",
                                                    "message": self._with_file_link(_message_frame(message))}})
        return DeliveryResult(state=DeliveryState.SENT)

    # -- visitors -------------------------------------------------------------------------------

    def visitor_of(self, token: str | None) -> str | None:
        if not token:
            return None
        try:
            data = self._tokens.loads(token, max_age=TOKEN_MAX_AGE)
        except BadSignature:
            return None
        visitor = data.get("v") if isinstance(data, dict) else None
        return visitor if isinstance(visitor, str) else None

    def _visitor(self, request: web.Request) -> str:
        """The visitor an HTTP request's ``X-Visitor-Token`` names; 401 without a valid one."""
        visitor_id = self.visitor_of(request.headers.get("X-Visitor-Token"))
        if visitor_id is None:
            raise Unauthorized("访客令牌无效", code="bad_token")
        return visitor_id

    async def new_visitor(self, request: web.Request) -> web.Response:
        visitor_id = str(uuid.uuid4())
        return web.json_response({"token": self._tokens.dumps({"v": visitor_id}), "visitor_id": visitor_id},
                                 status=201)

    async def demo_page(self, request: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC / "demo.html", headers={"Cache-Control": "no-cache"})

    async def widget_script(self, request: web.Request) -> web.Response:
        return web.Response(body=self._widget_bundle, headers={
            "Content-Type": "application/javascript; charset=utf-8",
            "Cache-Control": "no-cache",
        })

    async def visitor_socket(self, request: web.Request) -> web.WebSocketResponse:
        settings = self.router.settings
        ws = web.WebSocketResponse(heartbeat=25, max_msg_size=settings.ws_max_frame_bytes)
        await ws.prepare(request)
        visitor_id = self.visitor_of(request.query.get("token"))
        if visitor_id is None:
            await ws.close(code=CLOSE_BAD_TOKEN, message=b"bad visitor token")
            return ws
        self._sockets[visitor_id].add(ws)
        try:
            await ws.send_json(await self._hello(visitor_id))
            last_typing = 0.0
            budget = MessageBudget(rate=settings.webchat_messages_per_second, burst=settings.webchat_message_burst)
            async for frame in ws:
                if frame.type != WSMsgType.TEXT:
                    continue
                try:
                    data = loads_strict(frame.data)
                except BadRequest:
                    await _send_error(ws, "malformed_json", "消息不是有效的 JSON")
                    continue
                kind = data.get("type") if isinstance(data, dict) else None
                if kind == "message":
                    if budget.spend():
                        await self._resident_message(ws, visitor_id, data)
                    else:
                        log.info("visitor over the message rate; frame refused", visitor=visitor_id)
                        await _send_error(ws, "rate_limited", "发送太频繁,请稍后再试", client_id=data.get("client_id"))
                elif kind == "typing":
                    if time.monotonic() - last_typing >= TYPING_INTERVAL:
                        last_typing = time.monotonic()
                        await _unless_database_away(self.router.resident_typing(self.name, visitor_id))
                elif kind == "ack":
                    await _unless_database_away(self._ack(ws, visitor_id, data))
                elif kind == "ping":
                    await ws.send_json({"type": "pong"})
                else:
                    await _send_error(ws, "unknown_frame", "无法识别的消息类型")
        finally:
            self._sockets[visitor_id].discard(ws)
            if not self._sockets[visitor_id]:
                del self._sockets[visitor_id]
        if ws.close_code == 1009:
            log.info("visitor frame too large; socket closed", visitor=visitor_id)
        return ws

    async def _hello(self, visitor_id: str) -> dict[str, Any]:
        """The first frame: the visitor's conversation and history; ``messages`` is null while the database is
        unreachable (the widget keeps what it shows, and messages sent meanwhile are journaled)."""
        try:
            conversation, messages = await self.router.history(self.name, visitor_id)
        except Exception as exc:
            if not unreachable(exc):
                raise
            log.warning("database unreachable; visitor greeted without history", visitor=visitor_id)
            return {"type": "hello", "visitor_id": visitor_id, "conversation": None, "messages": None}
        return {
            "type": "hello",
            "visitor_id": visitor_id,
            "conversation": _conversation_frame(conversation) if conversation else None,
            "messages": [self._with_file_link(message) for message in messages],
        }

    async def _resident_message(self, ws: web.WebSocketResponse, visitor_id: str, data: dict[str, Any]) -> None:
        try:
            inbound = self.parse(data, visitor_id)
        except (ValidationError, ValueError) as exc:
            message = str(exc) if isinstance(exc, ValueError) and not isinstance(exc, ValidationError) else (
                f"消息格式无效:需要 client_id 与 text(choice 可选,为不超过 {CHOICE_MAX_CHARS} 字的文本)"
            )
            log.info("visitor frame rejected", visitor=visitor_id, reason=message)
            await _send_error(ws, "invalid_message", message, client_id=data.get("client_id"))
            return
        try:
            result = await self.router.ingest_or_journal(inbound)
        except Exception:
            # Neither stored nor journaled (the database fails, the journal is full): the widget sends it again.
            log.exception("visitor message not stored", visitor=visitor_id)
            await _send_error(ws, "unavailable", "系统繁忙,消息稍后自动重发", client_id=inbound.channel_message_id)
            return
        if isinstance(result, Journaled):
            # Kept while the database is away: stored, shown and answered once it is back.
            await ws.send_json({"type": "accepted", "client_id": result.channel_message_id})
            return
        if result.duplicate or result.conversation_state == ConversationState.CLOSED:
            # A resend after a reconnect (nothing is stored twice), or a blacklisted visitor's message (stored
            # but published to no one): confirmed to this socket only.
            await ws.send_json({"type": "message", "message": self._with_file_link(result.message)})

    async def _ack(self, ws: web.WebSocketResponse, visitor_id: str, data: dict[str, Any]) -> None:
        try:
            ack = AckFrame.model_validate(data)
        except ValidationError:
            await _send_error(ws, "invalid_ack", "ack 需要 ids 数组")
            return
        await self.router.report_delivery(self.name, visitor_id, ack.ids, DeliveryState.DELIVERED)

    # -- events to visitors ---------------------------------------------------------------------

    async def _push(self, visitor_id: str, frame: dict[str, Any]) -> None:
        sockets = self._sockets.get(visitor_id)
        if not sockets:
            return
        text = json.dumps(frame, ensure_ascii=False)
        # One after the other, not gathered: a visitor has a tab or two, and a task per frame cost more than the
        # write (the bus hands every conversation event to this handler).
        for ws in list(sockets):
            if not ws.closed:
                with contextlib.suppress(ConnectionError):
                    await ws.send_str(text)

    async def _on_delivery(self, event: dict[str, Any]) -> None:
        await self._push(event["visitor_id"], event["frame"])

    async def _on_conversation_event(self, event: dict[str, Any]) -> None:
        key = event["key"]
        if key["channel"] != self.name or key["external_id"] not in self._sockets:
            return
        if event["type"] == "message" and event["message"]["direction"] == "in":
            await self._push(key["external_id"], {"type": "message", "message": self._with_file_link(event["message"])})
        elif event["type"] == "conversation":
            await self._push(key["external_id"], {"type": "state",
                                                  "conversation": _conversation_frame(event["conversation"])})
        elif event["type"] == "typing" and event["author"] == "agent":
            await self._push(key["external_id"], {"type": "typing", "author": "agent"})

    # -- files ----------------------------------------------------------------------------------

    async def upload(self, request: web.Request) -> web.Response:
        visitor_id = self._visitor(request)
        upload = await read_upload(request, self.router.settings.upload_max_bytes)
        kind = upload.kind
        attachment = await self.router.store_file(self.name, visitor_id, upload.name, kind.content_type, upload.data,
                                                  from_resident=True)
        result = await self.router.ingest(InboundMessage(
            channel=self.name, external_id=visitor_id, channel_message_id=f"upload-{attachment.file_id}",
            type=kind.message_type, attachment=attachment,
        ))
        return web.json_response({"message": self._with_file_link(result.message)}, status=201)

    async def file_links(self, request: web.Request) -> web.Response:
        """Fresh links to the visitor's own files (the widget renews the ones it shows before they expire)."""
        visitor_id = self._visitor(request)
        try:
            body = FileLinksBody.model_validate(loads_strict(await request.text()))
        except ValidationError as exc:
            raise Invalid("file_ids 须为 1 至 100 个文件编号", code="invalid_file_ids") from exc
        links = {}
        for file_id in dict.fromkeys(str(i) for i in body.file_ids):
            found = await self.router.open_file(file_id)
            if found is not None and (found[0].owner_channel, found[0].owner_external_id) == (self.name, visitor_id):
                links[file_id] = signed_file_link(self.router.secret_key, file_id, WIDGET_LINK_SECONDS)
        return web.json_response({"links": links})

    async def ask_callback(self, request: web.Request) -> web.Response:
        """The visitor asks to be called back: an event in their conversation, and their request on the list."""
        visitor_id = self._visitor(request)
        try:
            body = CallbackBody.model_validate(loads_strict(await request.text()))
        except ValidationError as exc:
            fields = {".".join(str(p) for p in error["loc"]): error["msg"] for error in exc.errors()}
            raise Invalid("回电信息不完整或格式不对", code="invalid", details={"fields": fields}) from exc
        return web.json_response(await ask_to_be_called_back(self.router, self.name, visitor_id, body), status=201)

    def _with_file_link(self, message: dict[str, Any]) -> dict[str, Any]:
        """A message as the visitor gets it: a stored file's address carries a short-lived link to that file."""
        attachment = message.get("attachment")
        if not attachment or not attachment.get("file_id"):
            return message
        link = signed_file_link(self.router.secret_key, attachment["file_id"], WIDGET_LINK_SECONDS)
        return {**message, "attachment": {**attachment, "url": link}}


class MessageBudget:
    """A token bucket per socket: a person types a few messages a second at most; a script does not."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, float(burst)
        self.tokens, self.at = float(burst), time.monotonic()

    def spend(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


async def _unless_database_away(call: Awaitable[None]) -> None:
    """Typing notices and read receipts are dropped while the database is unreachable; the socket stays."""
    try:
        await call
    except Exception as exc:
        if not unreachable(exc):
            raise
        log.info("database unreachable; typing notice or read receipt dropped")


async def _send_error(ws: web.WebSocketResponse, code: str, message: str, **extra: Any) -> None:
    await ws.send_json({"type": "error", "code": code, "message": message, **extra})


def _conversation_frame(conversation: dict[str, Any]) -> dict[str, Any]:
    assignee = conversation.get("assignee")
    return {"id": conversation["id"], "state": conversation["state"],
            "agent_name": assignee["display_name"] if assignee else None}


def _message_frame(message: OutboundMessage) -> dict[str, Any]:
    attachment = message.attachment
    return {
        "id": message.message_id,
        "conversation_id": message.conversation_id,
        "direction": "out",
        "author": message.author,
        "author_name": message.author_name,
        "type": message.type,
        "text": message.text,
        "attachment": None if attachment is None else {
            "url": attachment.url, "name": attachment.name, "size": attachment.size,
            "content_type": attachment.content_type, "file_id": attachment.file_id,
        },
        "payload": message.payload or None,
        "created_at": message.created_at.isoformat() if message.created_at else None,
        "client_id": None,
        "delivery": "sent",
    }
