"""A thin client of Asterisk's REST Interface (ARI): REST calls with basic auth, and the events WebSocket.

Shapes follow the ARI of Asterisk 22 (``/usr/share/asterisk/rest-api/*.json`` of the installed Asterisk).
The WebSocket ``/ari/events?app=<app>`` (authenticated with the same basic auth, so the password never
appears in a URL) is kept open: when it drops, it is opened again with exponential back-off (reset once a
connection has held for a while, so that a flapping one keeps backing off), and after every (re)connection
``on_resync`` receives the channels that are in the application now (``GET /channels``), so that calls that
went on while the hub was away are picked up again.

Events are handled as tasks, one lane per channel (or per playback/recording target): the events of one
call are handled in the order Asterisk sent them, while a slow handler never holds up the stream or other
calls. An event that is not a JSON object with a ``type`` is logged and dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

import aiohttp

from router.logs import get_logger
from router.tasks import TaskSet

log = get_logger(__name__)

STABLE_SECONDS = 10.0  # a WebSocket open this long resets the back-off; one that keeps dropping backs off

Event = dict[str, Any]
EventHandler = Callable[[Event], Awaitable[None]]
ResyncHandler = Callable[[list[dict[str, Any]]], Awaitable[None]]


class AriError(Exception):
    """A REST call that Asterisk refused (``status`` is the HTTP status, 0 when Asterisk was unreachable)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"ARI {status}: {message}")
        self.status = status
        self.message = message


def _flag(value: bool) -> str:
    return "true" if value else "false"  # ARI's query parameters take lower-case booleans


class AriClient:
    def __init__(self, base_url: str, username: str, password: str, app: str, *,
                 on_resync: ResyncHandler | None = None, backoff_initial: float = 0.5, backoff_max: float = 30.0,
                 request_timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/") + "/ari"
        self.app = app
        self._auth = aiohttp.encode_basic_auth(username, password)
        self._on_resync = on_resync
        self._handlers: dict[str, list[EventHandler]] = {}
        self._backoff = (backoff_initial, backoff_max)
        self._timeout = aiohttp.ClientTimeout(total=request_timeout)
        self._session: aiohttp.ClientSession | None = None
        self._runner: asyncio.Task[None] | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._lanes: dict[str, asyncio.Queue[Event]] = {}
        self._tasks = TaskSet()  # the lanes' drains
        self.connected = asyncio.Event()
        self._disconnected = asyncio.Event()
        self._disconnected.set()
        self.connections = 0  # how many times the WebSocket was opened (1 + reconnections)
        self._stopping = False

    # -- life cycle -----------------------------------------------------------------------------

    def on(self, event_type: str, handler: EventHandler) -> None:
        """Handle events of ``event_type`` (``StasisStart``, ``ChannelDtmfReceived``…); ``*`` for every event."""
        self._handlers.setdefault(event_type, []).append(handler)

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(headers={"Authorization": self._auth}, timeout=self._timeout)
        self._runner = asyncio.create_task(self._run(), name="ari-events")

    async def stop(self) -> None:
        self._stopping = True
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
        await self._tasks.cancel()
        if self._session is not None:
            await self._session.close()

    async def drop_connection(self) -> None:
        """Close the events WebSocket as a network failure would (it is opened again with back-off)."""
        if self._ws is not None:
            await self._ws.close()
            await self._disconnected.wait()

    # -- the events WebSocket -------------------------------------------------------------------

    async def _run(self) -> None:
        assert self._session is not None
        initial, most = self._backoff
        delay = initial
        url = f"{self.base_url}/events?app={quote(self.app)}&subscribeAll=false"
        loop = asyncio.get_running_loop()
        while True:
            opened_at: float | None = None
            try:
                async with self._session.ws_connect(url, heartbeat=15, timeout=aiohttp.ClientWSTimeout(ws_close=5)
                                                    ) as ws:
                    self._ws = ws
                    self.connections += 1
                    opened_at = loop.time()
                    self._disconnected.clear()
                    self.connected.set()
                    log.info("ARI events connected", app=self.app, connections=self.connections)
                    await self._resync()
                    async for message in ws:
                        if message.type == aiohttp.WSMsgType.TEXT:
                            self._dispatch(message.data)
                        elif message.type in (aiohttp.WSMsgType.ERROR, aiohttp.WSMsgType.CLOSE):
                            break
            except asyncio.CancelledError:
                raise
            except (aiohttp.ClientError, OSError, TimeoutError, AriError) as exc:
                log.warning("ARI events unreachable", error=str(exc) or type(exc).__name__, retry_in=round(delay, 2))
            finally:
                self._ws = None
                self._disconnected.set()
                if self.connected.is_set():
                    self.connected.clear()
                    if not self._stopping:
                        log.warning("ARI events disconnected", app=self.app)
            if opened_at is not None and loop.time() - opened_at >= STABLE_SECONDS:
                delay = initial  # a connection that held: the next failure starts the back-off afresh
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(delay * 2, most)

    async def _resync(self) -> None:
        if self._on_resync is None:
            return
        channels = [c for c in await self.channels() if _in_app(c, self.app)]
        try:
            await self._on_resync(channels)
        except Exception:
            log.exception("re-synchronising live channels failed")

    def _dispatch(self, data: str) -> None:
        try:
            event = json.loads(data)
        except ValueError:
            log.warning("malformed ARI event dropped", reason="not JSON", size=len(data))
            return
        if not isinstance(event, dict) or not isinstance(event.get("type"), str):
            log.warning("malformed ARI event dropped", reason="no type", size=len(data))
            return
        handlers = self._handlers.get(event["type"], []) + self._handlers.get("*", [])
        if not handlers:
            return
        lane = _lane_of(event)
        queue = self._lanes.get(lane)
        if queue is None:
            queue = self._lanes[lane] = asyncio.Queue()
            self._tasks.spawn(self._drain(lane, queue), name=f"ari-lane-{lane}")
        queue.put_nowait(event)

    async def _drain(self, lane: str, queue: asyncio.Queue[Event]) -> None:
        """Handle one lane's events in order; the lane ends when it runs dry."""
        try:
            while not queue.empty():
                event = queue.get_nowait()
                for handler in self._handlers.get(event["type"], []) + self._handlers.get("*", []):
                    try:
                        await handler(event)
                    except asyncio.CancelledError:
                        raise
                    except Exception:
                        log.exception("ARI event handler failed", type=event["type"])
        finally:
            if self._lanes.get(lane) is queue:
                del self._lanes[lane]

    # -- REST -------------------------------------------------------------------------------------

    async def request(self, method: str, path: str, params: dict[str, Any] | None = None, *,
                      payload: Any = None, body: bool = False) -> Any:
        """One REST call (``payload`` sent as JSON); the decoded JSON answer (or raw bytes with ``body``), None
        when there is none."""
        assert self._session is not None, "start() first"
        query = {k: (_flag(v) if isinstance(v, bool) else str(v)) for k, v in (params or {}).items() if v is not None}
        try:
            async with self._session.request(method, self.base_url + path, params=query, json=payload) as response:
                if response.status >= 400:
                    text = await response.text()
                    try:
                        message = json.loads(text).get("message", text)
                    except (ValueError, AttributeError):
                        message = text
                    raise AriError(response.status, str(message)[:300])
                if body:
                    return await response.read()
                if response.status == 204 or response.content_length == 0:
                    return None
                return await response.json()
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise AriError(0, str(exc) or type(exc).__name__) from exc

    async def channels(self) -> list[dict[str, Any]]:
        return await self.request("GET", "/channels") or []

    async def subscribe_channel(self, channel_id: str) -> None:
        """Keep receiving a channel's events after it leaves the application (its ``ChannelDestroyed``)."""
        await self.request("POST", f"/applications/{quote(self.app)}/subscription",
                           {"eventSource": f"channel:{channel_id}"})

    async def originate(self, endpoint: str, channel_id: str, *, app_args: str, ring_seconds: int,
                        caller_id: str | None = None, variables: dict[str, str] | None = None) -> dict[str, Any]:
        """Call ``endpoint`` (``PJSIP/1001``) as channel ``channel_id``; answered, it enters this application with
        ``app_args``; unanswered after ``ring_seconds`` it is hung up (its ``ChannelDestroyed`` tells why)."""
        return await self.request("POST", "/channels", {
            "endpoint": endpoint, "app": self.app, "appArgs": app_args, "channelId": channel_id,
            "timeout": ring_seconds, "callerId": caller_id}, payload={"variables": variables or {}})

    async def answer(self, channel_id: str) -> None:
        await self.request("POST", f"/channels/{quote(channel_id)}/answer")

    async def hangup(self, channel_id: str, reason: str = "normal") -> None:
        await self.request("DELETE", f"/channels/{quote(channel_id)}", {"reason": reason})

    async def create_bridge(self, bridge_id: str, kinds: str = "mixing,dtmf_events") -> dict[str, Any]:
        return await self.request("POST", "/bridges", {"type": kinds, "bridgeId": bridge_id})

    async def add_to_bridge(self, bridge_id: str, channel_id: str) -> None:
        await self.request("POST", f"/bridges/{quote(bridge_id)}/addChannel", {"channel": channel_id})

    async def remove_from_bridge(self, bridge_id: str, channel_id: str) -> None:
        await self.request("POST", f"/bridges/{quote(bridge_id)}/removeChannel", {"channel": channel_id})

    async def destroy_bridge(self, bridge_id: str) -> None:
        await self.request("DELETE", f"/bridges/{quote(bridge_id)}")

    async def play(self, target: str, media: str, playback_id: str, *, lang: str | None = None) -> dict[str, Any]:
        """Play ``media`` (``sound:…``) on ``target``, ``channels/<id>`` or ``bridges/<id>``."""
        kind, _, target_id = target.partition("/")
        return await self.request("POST", f"/{kind}/{quote(target_id)}/play/{quote(playback_id)}",
                                  {"media": media, "lang": lang})

    async def stop_playback(self, playback_id: str) -> None:
        await self.request("DELETE", f"/playbacks/{quote(playback_id)}")

    async def record(self, target: str, name: str, *, max_seconds: int = 0, beep: bool = False,
                     terminate_on: str = "none", fmt: str = "wav") -> dict[str, Any]:
        """Record ``target`` (``channels/<id>`` or ``bridges/<id>``; a bridge is recorded mixed) as ``name``."""
        kind, _, target_id = target.partition("/")
        return await self.request("POST", f"/{kind}/{quote(target_id)}/record", {
            "name": name, "format": fmt, "maxDurationSeconds": max_seconds, "ifExists": "overwrite", "beep": beep,
            "terminateOn": terminate_on})

    async def stop_recording(self, name: str) -> None:
        await self.request("POST", f"/recordings/live/{quote(name)}/stop")

    async def recording_file(self, name: str) -> bytes:
        data: bytes = await self.request("GET", f"/recordings/stored/{quote(name)}/file", body=True)
        return data

    async def delete_recording(self, name: str) -> None:
        await self.request("DELETE", f"/recordings/stored/{quote(name)}")


def _in_app(channel: dict[str, Any], app: str) -> bool:
    dialplan = channel.get("dialplan") or {}
    return dialplan.get("app_name") == "Stasis" and str(dialplan.get("app_data", "")).split(",")[0] == app


def _lane_of(event: Event) -> str:
    channel = event.get("channel")
    if isinstance(channel, dict) and isinstance(channel.get("id"), str):
        return channel["id"]
    for key in ("playback", "recording"):
        item = event.get(key)
        if isinstance(item, dict) and isinstance(item.get("target_uri"), str):
            return item["target_uri"]
    return ""
