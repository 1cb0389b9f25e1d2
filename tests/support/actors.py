"""Residents and staff as the tests see them: they say, reply, claim and wait for what arrives."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import aiohttp

from router.access import BOT_TOKEN_NAME
from router.accounts import ensure_api_token
from router.companions import actions_token
from router.models import Role

WAIT = 10.0


class Inbox:
    """Frames received on a socket; a wait takes the first frame that matches and leaves the others."""

    def __init__(self) -> None:
        self._frames: list[dict[str, Any]] = []
        self._arrived = asyncio.Condition()

    async def put(self, frame: dict[str, Any]) -> None:
        async with self._arrived:
            self._frames.append(frame)
            self._arrived.notify_all()

    def unclaimed(self) -> list[dict[str, Any]]:
        """Frames received so far that no wait has taken."""
        return list(self._frames)

    async def take(self, predicate: Any, timeout: float) -> dict[str, Any]:
        async def wait() -> dict[str, Any]:
            async with self._arrived:
                while True:
                    for index, frame in enumerate(self._frames):
                        if predicate(frame):
                            return self._frames.pop(index)
                    await self._arrived.wait()

        try:
            return await asyncio.wait_for(wait(), timeout)
        except TimeoutError:
            raise AssertionError(f"no matching frame within {timeout}s; received: {self._frames[-10:]}") from None


class SocketReader:
    """Reads a WebSocket's JSON frames into an :class:`Inbox` in the background."""

    def __init__(self) -> None:
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.frames = Inbox()
        self._reader: asyncio.Task[None] | None = None

    def start_reading(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self._reader = asyncio.create_task(self._read(ws))

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for frame in ws:
            if frame.type == aiohttp.WSMsgType.TEXT:
                data = json.loads(frame.data)
                for event in data if isinstance(data, list) else [data]:  # events sent together: an array
                    await self.frames.put(event)

    async def closed(self, timeout: float = WAIT) -> None:
        """Wait until the hub has closed the socket."""
        assert self._reader is not None
        await asyncio.wait_for(self._reader, timeout)

    async def stop_reading(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
        if self.ws is not None:
            await self.ws.close()


class Resident(SocketReader):
    """A visitor of the web chat, speaking the widget's WebSocket protocol."""

    def __init__(self, http: aiohttp.ClientSession, base_url: str, token: str | None = None) -> None:
        super().__init__()
        self.http = http
        self.base_url = base_url
        self.token = token
        self.hello: dict[str, Any] = {}

    async def connect(self) -> Resident:
        if self.token is None:
            async with self.http.post(f"{self.base_url}/webchat/visitors", json={}) as response:
                assert response.status == 201, await response.text()
                self.token = (await response.json())["token"]
        ws = await self.http.ws_connect(f"{self.base_url.replace('http', 'ws', 1)}/webchat/ws",
                                        params={"token": self.token})
        self.hello = await ws.receive_json(timeout=WAIT)
        assert self.hello["type"] == "hello", self.hello
        self.start_reading(ws)
        return self

    async def says(self, text: str, client_id: str | None = None) -> dict[str, Any]:
        """Send a message and return the stored message the hub echoes back."""
        client_id = client_id or str(uuid.uuid4())
        assert self.ws is not None
        await self.ws.send_json({"type": "message", "client_id": client_id, "text": text})
        frame = await self.expect(lambda f: f["type"] == "message" and f["message"]["client_id"] == client_id)
        return frame["message"]

    async def send_raw(self, data: Any) -> None:
        assert self.ws is not None
        await (self.ws.send_str(data) if isinstance(data, str) else self.ws.send_json(data))

    async def expect(self, predicate: Any, timeout: float = WAIT) -> dict[str, Any]:
        """The first received frame matching ``predicate`` (waiting for it if needed)."""
        return await self.frames.take(predicate, timeout)

    async def hears(self, author: str, timeout: float = WAIT) -> dict[str, Any]:
        frame = await self.expect(
            lambda f: f["type"] == "message" and f["message"]["author"] == author, timeout=timeout
        )
        return frame["message"]

    async def close(self) -> None:
        await self.stop_reading()


class Staff(SocketReader):
    """A signed-in member of staff using the REST API and the staff WebSocket."""

    def __init__(self, base_url: str) -> None:
        super().__init__()
        self.base_url = base_url
        self.http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        self.csrf = ""
        self.user: dict[str, Any] = {}
        self.last_status = 0

    async def login(self, username: str, password: str) -> Staff:
        async with self.http.post(f"{self.base_url}/api/auth/login",
                                  json={"username": username, "password": password}) as response:
            body = await response.json()
            assert response.status == 200, body
        self.csrf, self.user = body["csrf_token"], body["user"]
        return self

    async def attempt(self, method: str, path: str, json_body: Any = None) -> tuple[int, Any]:
        """One call whose outcome the caller judges: the status and the JSON body (None when it is not JSON).
        Safe to run concurrently, unlike reading ``last_status`` after ``call``."""
        headers = {"X-CSRF-Token": self.csrf} if method != "GET" else {}
        async with self.http.request(method, f"{self.base_url}{path}", json=json_body, headers=headers) as response:
            body = await response.json() if response.content_type == "application/json" else None
            return response.status, body

    async def call(self, method: str, path: str, json_body: Any = None, expect: int | None = 200) -> Any:
        status, body = await self.attempt(method, path, json_body)
        self.last_status = status
        if expect is not None:
            assert status == expect, (status, body)
        return body

    async def upload(self, path: str, name: str, data: bytes, expect: int | None = 201, method: str = "POST") -> Any:
        """Send one file as the ``file`` part of a multipart form."""
        form = aiohttp.FormData()
        form.add_field("file", data, filename=name)
        async with self.http.request(method, f"{self.base_url}{path}", data=form,
                                     headers={"X-CSRF-Token": self.csrf}) as response:
            body = await response.json() if response.content_type == "application/json" else None
            self.last_status = response.status
            if expect is not None:
                assert response.status == expect, (response.status, body)
            return body

    async def fetch(self, path: str) -> tuple[int, bytes, str]:
        """A non-JSON resource: status, body and content type."""
        async with self.http.get(f"{self.base_url}{path}") as response:
            return response.status, await response.read(), response.content_type

    async def listen(self) -> Staff:
        self.start_reading(await self.http.ws_connect(f"{self.base_url.replace('http', 'ws', 1)}/api/ws"))
        return self

    async def sees(self, predicate: Any, timeout: float = WAIT) -> dict[str, Any]:
        return await self.frames.take(predicate, timeout)

    async def ping(self) -> float:
        """Seconds from a ping on the staff socket to the hub's pong."""
        assert self.ws is not None
        started = time.perf_counter()
        await self.ws.send_json({"type": "ping"})
        await self.sees(lambda e: e["type"] == "pong")
        return time.perf_counter() - started

    async def sees_message(self, text: str, timeout: float = WAIT) -> dict[str, Any]:
        event = await self.sees(lambda e: e["type"] == "message" and e["message"]["text"] == text, timeout)
        return event["message"]

    async def claims(self, conversation_id: int) -> dict[str, Any]:
        return await self.call("POST", f"/api/conversations/{conversation_id}/claim")

    async def replies(self, conversation_id: int, text: str) -> dict[str, Any]:
        return await self.call("POST", f"/api/conversations/{conversation_id}/messages", {"text": text}, expect=201)

    async def becomes(self, state: str, reason: str | None = None) -> dict[str, Any]:
        """Change this agent's presence (ready, away, busy, acw, signed_out)."""
        return (await self.call("PUT", "/api/presence", {"state": state, "reason": reason}))["agent"]

    async def gets_assigned(self, conversation_id: int | None = None, timeout: float = WAIT) -> dict[str, Any]:
        """The next conversation (or the one of ``conversation_id``) assigned to this agent."""
        event = await self.sees(lambda e: e["type"] == "conversation" and e["conversation"]["state"] == "assigned"
                                and (e["conversation"]["assignee"] or {}).get("id") == self.user["id"]
                                and conversation_id in (None, e["conversation"]["id"]), timeout)
        return event["conversation"]

    async def closes(self, conversation_id: int, disposition: str | None = None) -> dict[str, Any]:
        return await self.call("POST", f"/api/conversations/{conversation_id}/close", {"disposition": disposition})

    async def close(self) -> None:
        await self.stop_reading()
        await self.http.close()


class ActionServer:
    """Calls the hub the way the bot's action server does: with the token the hub made for it."""

    def __init__(self, http: aiohttp.ClientSession, base_url: str, token: str) -> None:
        self._http, self._base, self._headers = http, base_url, {"Authorization": f"Bearer {token}"}

    @classmethod
    async def of(cls, running_hub: Any, http: aiohttp.ClientSession) -> ActionServer:
        """The action server of a running hub (its token exists once the hub has started the bot, or now)."""
        token = actions_token(running_hub.hub.secret_key)
        async with running_hub.hub.sessions.begin() as session:
            await ensure_api_token(session, BOT_TOKEN_NAME, Role.AGENT, token)
        return cls(http, running_hub.url, token)

    async def call(self, method: str, path: str, body: Any = None, expect: int = 200) -> Any:
        async with self._http.request(method, self._base + path, json=body, headers=self._headers) as response:
            payload = await response.json()
            assert response.status == expect, (response.status, payload)
            return payload

    async def account(self, conversation_id: int, number: str, phone_last4: str | None = None,
                      expect: int = 200) -> dict[str, Any]:
        body = {"conversation_id": conversation_id, "number": number}
        if phone_last4 is not None:
            body["phone_last4"] = phone_last4
        return await self.call("POST", "/api/bot/account-lookup", body, expect)

    async def order(self, conversation_id: int, number: str | None = None, phone_last4: str | None = None,
                    expect: int = 200) -> dict[str, Any]:
        body: dict[str, Any] = {"conversation_id": conversation_id}
        if number is not None:
            body["number"] = number
        if phone_last4 is not None:
            body["phone_last4"] = phone_last4
        return await self.call("POST", "/api/bot/order-lookup", body, expect)
