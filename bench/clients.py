"""The load generator's clients: web chat residents and one signed-in member of staff.

Every send and every arrival is stamped with ``time.perf_counter()`` in this one process, so the
time a resident sent a message and the time the staff socket received it are on the same clock.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from typing import Any

import aiohttp

OPEN_TIMEOUT = 30.0


class Refused(Exception):
    """The hub answered a resident's message with an ``error`` frame naming it."""


class Ledger:
    """One scenario's messages: when each was sent, and when it reached the resident and the agent.

    Keys are client ids for resident messages and the (unique) text for agent replies. Arrivals of
    keys this ledger did not send (stragglers of an earlier scenario) are ignored.
    """

    def __init__(self) -> None:
        self.sent: dict[str, float] = {}
        self.at_resident: dict[str, float] = {}
        self.at_agent: dict[str, float] = {}
        self.refused: dict[str, str] = {}  # key → error code of the hub's refusal
        self.repeats = 0  # a message that reached the same side twice
        self._waiters: dict[str, asyncio.Future[float]] = {}
        self._watch: tuple[dict[str, float], asyncio.Event] | None = None

    def arrival_at_resident(self, key: str) -> asyncio.Future[float]:
        """A future resolved with the time ``key`` reaches its resident; register it before sending."""
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._waiters[key] = future
        return future

    def _first_arrival(self, arrivals: dict[str, float], key: str, at: float) -> bool:
        """Record ``key`` arriving; False for a key not sent here or seen before (a repeat)."""
        if key not in self.sent:
            return False
        if key in arrivals:
            self.repeats += 1
            return False
        arrivals[key] = at
        self._arrived(arrivals)
        return True

    def resident_got(self, key: str, at: float) -> None:
        if not self._first_arrival(self.at_resident, key, at):
            return
        waiter = self._waiters.pop(key, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(at)

    def resident_refused(self, key: str, code: str) -> None:
        if key not in self.sent or key in self.refused:
            return
        self.refused[key] = code
        # A refused message will never arrive: count it as settled for all_arrived().
        self._arrived(self.at_resident)
        self._arrived(self.at_agent)
        waiter = self._waiters.pop(key, None)
        if waiter is not None and not waiter.done():
            waiter.set_exception(Refused(code))

    def refusal_codes(self) -> Counter[str]:
        return Counter(self.refused.values())

    def agent_got(self, key: str, at: float) -> None:
        self._first_arrival(self.at_agent, key, at)

    async def all_arrived(self, arrivals: dict[str, float]) -> None:
        """Return once every key sent so far is in ``arrivals`` (one of the two dicts) or was refused.

        Bound it with a timeout.
        """
        if len(arrivals) + len(self.refused) >= len(self.sent):
            return
        complete = asyncio.Event()
        self._watch = (arrivals, complete)
        try:
            await complete.wait()
        finally:
            self._watch = None

    def _arrived(self, arrivals: dict[str, float]) -> None:
        if (self._watch is not None and self._watch[0] is arrivals
                and len(arrivals) + len(self.refused) >= len(self.sent)):
            self._watch[1].set()


class Recorder:
    """Holds the ledger of the scenario under way; every client reports its arrivals to it."""

    def __init__(self) -> None:
        self.ledger = Ledger()


class TimedSocket:
    """A WebSocket whose JSON frames are handed to :meth:`on_frame` with the time they arrived."""

    def __init__(self, recorder: Recorder) -> None:
        self._recorder = recorder
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None
        self._closing = False
        self.dropped = False  # the hub closed the socket (it does so to a client that falls behind)

    def _start_reading(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws
        self._reader = asyncio.create_task(self._read(ws))

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for frame in ws:
            if frame.type == aiohttp.WSMsgType.TEXT:
                at = time.perf_counter()
                data = json.loads(frame.data)
                for event in data if isinstance(data, list) else [data]:  # events sent together: an array
                    self.on_frame(event, at)
        self.dropped = not self._closing

    def on_frame(self, data: dict[str, Any], at: float) -> None:
        raise NotImplementedError

    async def _close_socket(self) -> None:
        self._closing = True
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            await self._reader


class Resident(TimedSocket):
    """A web chat visitor on its own WebSocket, speaking the widget's protocol."""

    def __init__(self, http: aiohttp.ClientSession, base_url: str, recorder: Recorder) -> None:
        super().__init__(recorder)
        self._http = http
        self._base_url = base_url
        self.conversation_id: int | None = None

    async def connect(self) -> None:
        async with self._http.post(f"{self._base_url}/webchat/visitors", json={}) as response:
            if response.status != 201:
                raise RuntimeError(f"POST /webchat/visitors answered {response.status}: {await response.text()}")
            token = (await response.json())["token"]
        ws = await self._http.ws_connect(f"{self._base_url.replace('http', 'ws', 1)}/webchat/ws",
                                         params={"token": token})
        hello = await ws.receive_json(timeout=OPEN_TIMEOUT)
        if hello.get("type") != "hello":
            raise RuntimeError(f"expected a hello frame, got {hello}")
        self._start_reading(ws)

    async def send(self, key: str, text: str) -> None:
        """Send a message whose client id is ``key``; the ledger notes the time just before it leaves."""
        assert self._ws is not None
        frame = json.dumps({"type": "message", "client_id": key, "text": text}, ensure_ascii=False)
        self._recorder.ledger.sent[key] = time.perf_counter()
        await self._ws.send_str(frame)

    def on_frame(self, data: dict[str, Any], at: float) -> None:
        if data.get("type") == "error":
            self._recorder.ledger.resident_refused(str(data.get("client_id")), str(data.get("code")))
        if data.get("type") != "message":
            return
        message = data["message"]
        if message["direction"] == "in":
            self.conversation_id = message["conversation_id"]
            self._recorder.ledger.resident_got(message["client_id"], at)
        elif message["direction"] == "out" and message["text"]:
            self._recorder.ledger.resident_got(message["text"], at)

    async def close(self) -> None:
        await self._close_socket()


class Staff(TimedSocket):
    """A signed-in member of staff: cookie session with CSRF header, REST calls and ``/api/ws``."""

    def __init__(self, base_url: str, recorder: Recorder) -> None:
        super().__init__(recorder)
        self._base_url = base_url
        # unsafe=True: keep cookies set by a host that is an IP address (127.0.0.1).
        self._http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        self._csrf = ""

    async def login(self, username: str, password: str) -> None:
        async with self._http.post(f"{self._base_url}/api/auth/login",
                                   json={"username": username, "password": password}) as response:
            body = await response.json()
            if response.status != 200:
                raise RuntimeError(f"login answered {response.status}: {body}")
        self._csrf = body["csrf_token"]

    async def listen(self) -> None:
        self._start_reading(await self._http.ws_connect(f"{self._base_url.replace('http', 'ws', 1)}/api/ws"))

    def on_frame(self, data: dict[str, Any], at: float) -> None:
        if data.get("type") == "message" and data["message"]["direction"] == "in":
            self._recorder.ledger.agent_got(data["message"]["client_id"], at)

    async def _get(self, path: str) -> tuple[int, Any]:
        return await self._send("GET", path, None)

    async def _post(self, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        return await self._send("POST", path, body)

    async def _put(self, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        return await self._send("PUT", path, body)

    async def _send(self, method: str, path: str, body: dict[str, Any] | None) -> tuple[int, Any]:
        async with self._http.request(method, f"{self._base_url}{path}", json=body,
                                      headers={"X-CSRF-Token": self._csrf}) as response:
            return response.status, await response.json()

    async def claim(self, conversation_id: int) -> None:
        status, body = await self._post(f"/api/conversations/{conversation_id}/claim", {})
        if status != 200:
            raise RuntimeError(f"claim of conversation {conversation_id} answered {status}: {body}")

    async def reply(self, conversation_id: int, text: str) -> tuple[int, float]:
        """Post a reply whose text is its ledger key; returns the HTTP status and how long the POST took."""
        started = time.perf_counter()
        self._recorder.ledger.sent[text] = started
        status, _ = await self._post(f"/api/conversations/{conversation_id}/messages", {"text": text})
        return status, time.perf_counter() - started

    async def close(self) -> None:
        await self._close_socket()
        await self._http.close()
