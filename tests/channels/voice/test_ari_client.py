"""The ARI client against a stand-in of Asterisk's events WebSocket: bad events, lost connections, re-sync."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from channels.voice.ari import AriClient
from router.models import Call
from router.net import free_port
from tests.conftest import start_hub

USER, PASSWORD = "hub", "stand-in-secret"
OURS = {"id": "1.1", "dialplan": {"app_name": "Stasis", "app_data": "hub"}}
OTHERS = [{"id": "1.2", "dialplan": {"app_name": "Stasis", "app_data": "other"}},
          {"id": "1.3", "dialplan": {"app_name": "Dial", "app_data": "PJSIP/x"}}]


class StandInAri:
    """Asterisk's ARI as far as the client's connection goes: ``/ari/events`` sends ``script`` to each
    connection (a list per connection; after the last, the socket stays open), ``/ari/channels`` lists channels."""

    def __init__(self, scripts: list[list[str]], *, close_after: int = 0) -> None:
        self.scripts, self.close_after = scripts, close_after
        self.connected_at: list[float] = []
        self.authorizations: list[str] = []

    async def events(self, request: web.Request) -> web.WebSocketResponse:
        self.authorizations.append(request.headers.get("Authorization", ""))
        assert request.query["app"] == "hub"
        self.connected_at.append(asyncio.get_running_loop().time())
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        index = len(self.connected_at) - 1
        for message in self.scripts[index] if index < len(self.scripts) else []:
            await ws.send_str(message)
        if index < self.close_after:
            await ws.close()
            return ws
        async for _ in ws:
            pass
        return ws

    async def channels(self, request: web.Request) -> web.Response:
        return web.json_response([OURS, *OTHERS])


@asynccontextmanager
async def serving(standin: StandInAri) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_get("/ari/events", standin.events)
    app.router.add_get("/ari/channels", standin.channels)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


GOOD = json.dumps({"type": "ChannelDtmfReceived", "digit": "5", "channel": {"id": "1.1"}})
MALFORMED = ["not json at all", "[1, 2]", json.dumps({"type": 5}), json.dumps({"no": "type"})]


async def test_malformed_events_are_logged_and_dropped_and_the_stream_goes_on(
        caplog: pytest.LogCaptureFixture) -> None:
    got: list[dict[str, Any]] = []
    done = asyncio.Event()

    async def handler(event: dict[str, Any]) -> None:
        got.append(event)
        done.set()

    async with serving(StandInAri([[*MALFORMED, GOOD]])) as url:
        client = AriClient(url, USER, PASSWORD, "hub")
        client.on("ChannelDtmfReceived", handler)
        await client.start()
        try:
            await asyncio.wait_for(done.wait(), 5)
        finally:
            await client.stop()
    assert [e["digit"] for e in got] == ["5"]
    assert caplog.text.count("malformed ARI event dropped") == len(MALFORMED)
    assert client.connections == 1


async def test_a_lost_connection_is_opened_again_with_growing_back_off_and_live_channels_resynced() -> None:
    resyncs: list[list[str]] = []
    standin = StandInAri([[], [], [], []], close_after=3)

    async def resync(channels: list[dict[str, Any]]) -> None:
        resyncs.append([c["id"] for c in channels])

    async with serving(standin) as url:
        client = AriClient(url, USER, PASSWORD, "hub", on_resync=resync, backoff_initial=0.1, backoff_max=5)
        await client.start()
        try:
            await _until(lambda: len(resyncs) == 4)
        finally:
            await client.stop()
    gaps = [b - a for a, b in zip(standin.connected_at, standin.connected_at[1:], strict=False)]
    assert len(gaps) == 3 and gaps[0] >= 0.07
    assert gaps[1] > gaps[0] * 1.3 and gaps[2] > gaps[1] * 1.3, gaps  # 0.1, 0.2, 0.4 s, each ±20 %
    assert resyncs == [["1.1"]] * 4  # only the channels in the hub's application
    assert set(standin.authorizations) == {aiohttp.encode_basic_auth(USER, PASSWORD)}


async def test_the_voice_adapter_drops_events_it_cannot_use_and_keeps_listening(
        own_settings: Callable[..., Any], caplog: pytest.LogCaptureFixture) -> None:
    """Typed events without what the adapter needs, and events of channels it does not know."""
    events = [json.dumps({"type": "StasisStart"}), json.dumps({"type": "StasisStart", "channel": {"id": 7}}),
              json.dumps({"type": "PlaybackFinished", "playback": "x"}),
              json.dumps({"type": "RecordingFinished", "recording": {}}),
              json.dumps({"type": "ChannelDtmfReceived", "channel": {"id": "9.9"}, "digit": "1"}),
              json.dumps({"type": "StasisEnd", "channel": {"id": "9.9"}}), *MALFORMED]
    async with serving(StandInAri([events])) as url:
        running = await start_hub(own_settings(channels="webchat,voice", voice_ari_url=url, voice_ari_username=USER,
                                               voice_ari_password=PASSWORD))
        try:
            adapter = running.hub.adapters["voice"]
            await asyncio.wait_for(adapter.ari.connected.wait(), 5)
            await _until(lambda: caplog.text.count("malformed ARI event dropped") == 8)
            assert adapter.connected and adapter.ari.connections == 1
            assert not adapter.calls
            async with running.hub.sessions() as session:
                assert (await session.get(Call, 1)) is None
        finally:
            await running.runner.cleanup()
    assert "ARI event handler failed" not in caplog.text


async def _until(condition: Callable[[], bool], within: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)
