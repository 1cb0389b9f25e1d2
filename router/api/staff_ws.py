"""The staff WebSocket: one per browser tab, carrying live conversation events the user may see."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any
from urllib.parse import urlsplit

from aiohttp import WSMsgType, web
from pydantic import BaseModel, Field, ValidationError

from router.access import STAFF_ROLES, Principal, can_view, in_team
from router.accounts import ACCOUNT_TOPIC
from router.acd import presence
from router.api.spec import HUB, MAX_ID, PRINCIPAL_KEY
from router.bodies import loads_strict
from router.errors import BadRequest, Forbidden, Unauthorized
from router.hub import TOPIC
from router.logs import get_logger

log = get_logger(__name__)
QUEUE_LIMIT = 2000  # a tab that falls this far behind is disconnected and resynchronises
BATCH_LIMIT = 200  # events waiting for a tab go out together, up to this many in one frame
SIGNED_OUT_CLOSE = 4401  # the user's sessions were ended (disabled, password reset …): sign in again


class TypingFrame(BaseModel):
    type: str
    conversation_id: int = Field(ge=1, le=MAX_ID)


def check_origin(request: web.Request) -> None:
    """Refuse cross-site WebSocket hijacking: a browser always sends Origin on a WebSocket."""
    origin = request.headers.get("Origin")
    if origin and urlsplit(origin).netloc != request.host:
        raise Forbidden("WebSocket 来源不被允许", code="bad_origin")


class _LastFrame:
    """The bus hands one event to every open staff socket in turn, as the same dict: serialise it once.

    The cache holds the event itself, so its identity cannot be reused while it is cached.
    """

    event: dict[str, Any] | None = None
    text = ""


def _frame_text(event: dict[str, Any]) -> str:
    """The frame a staff tab receives for a bus event: the event without its visibility key."""
    if _LastFrame.event is not event:
        frame = {k: v for k, v in event.items() if k != "key"}
        if event.get("type") == "typing":
            frame["conversation_id"] = event["key"]["conversation_id"]
        _LastFrame.event, _LastFrame.text = event, json.dumps(frame, ensure_ascii=False)
    return _LastFrame.text


async def staff_socket(request: web.Request) -> web.StreamResponse:
    principal: Principal | None = request.get(PRINCIPAL_KEY)
    if principal is None:
        raise Unauthorized("请先登录", code="not_authenticated")
    if principal.role not in STAFF_ROLES:
        raise Forbidden("当前角色无权访问此接口", code="role_forbidden")
    check_origin(request)
    hub = request.app[HUB]
    ws = web.WebSocketResponse(heartbeat=25, max_msg_size=hub.settings.ws_max_frame_bytes)
    await ws.prepare(request)
    queue: asyncio.Queue[str] = asyncio.Queue(maxsize=QUEUE_LIMIT)

    shown: set[int] = set()  # conversations this tab has been told about

    async def on_event(event: dict[str, Any]) -> None:
        key = event["key"]
        if not can_view(principal, key):
            # Taken over, claimed by a colleague, transferred away: the tab drops what it may still show.
            known = key["conversation_id"] in shown or in_team(principal, key["team_id"])
            if event["type"] == "conversation" and known:
                shown.discard(key["conversation_id"])
                await push({"type": "conversation_hidden", "conversation_id": key["conversation_id"]})
            return
        shown.add(key["conversation_id"])
        await push(_frame_text(event))

    async def on_presence(event: dict[str, Any]) -> None:
        if principal.is_overseer or event["user_id"] == principal.user_id:
            await push(_frame_text(event))

    async def push(frame: dict[str, Any] | str) -> None:
        try:
            queue.put_nowait(frame if isinstance(frame, str) else json.dumps(frame, ensure_ascii=False))
        except asyncio.QueueFull:
            log.warning("staff socket too slow; closing", user=principal.username)
            await ws.close(code=1013, message=b"too slow, reconnect")

    async def on_account(event: dict[str, Any]) -> None:
        if event.get("type") == "signed_out" and event.get("user_id") == principal.user_id:
            await ws.close(code=SIGNED_OUT_CLOSE, message=b"signed out")

    async def forward() -> None:
        """One event as it is; several waiting (a pass assigning many, a flood of new chats) as one JSON array:
        a frame and a write each would cost more than the events themselves, times every open tab."""
        while True:
            frames = [await queue.get()]
            while not queue.empty() and len(frames) < BATCH_LIMIT:
                frames.append(queue.get_nowait())
            await ws.send_str(frames[0] if len(frames) == 1 else f"[{','.join(frames)}]")

    async def heartbeat() -> None:
        """While this inbox is open its agent stays signed in (see router.acd.presence)."""
        while principal.user_id is not None:
            try:
                await hub.touch_presence(principal.user_id)
            except Exception:
                log.exception("presence heartbeat failed", user=principal.username)
            await asyncio.sleep(hub.settings.presence_heartbeat_seconds)

    unsubscribes = [hub.subscribe(TOPIC, on_event), hub.subscribe(presence.TOPIC, on_presence),
                    hub.subscribe(ACCOUNT_TOPIC, on_account)]
    hub.staff_sockets.add(ws)
    tasks = [asyncio.create_task(forward()), asyncio.create_task(heartbeat())]
    try:
        async for frame in ws:
            if frame.type != WSMsgType.TEXT:
                continue
            await _handle_frame(hub, principal, ws, frame.data)
    finally:
        for unsubscribe in unsubscribes:
            unsubscribe()
        hub.staff_sockets.discard(ws)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await task
    return ws


async def _handle_frame(hub: Any, principal: Principal, ws: web.WebSocketResponse, data: str) -> None:
    try:
        frame = loads_strict(data)
    except BadRequest:
        frame = None
    kind = frame.get("type") if isinstance(frame, dict) else None
    if kind == "ping":
        await ws.send_json({"type": "pong"})
    elif kind == "typing":
        try:
            typing = TypingFrame.model_validate(frame)
        except ValidationError:
            await ws.send_json({"type": "error", "code": "invalid_frame", "message": "conversation_id 无效"})
            return
        await hub.staff_typing(principal, typing.conversation_id)
    else:
        await ws.send_json({"type": "error", "code": "invalid_frame", "message": "无法识别的消息"})
