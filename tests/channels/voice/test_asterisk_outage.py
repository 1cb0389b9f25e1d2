"""Asterisk going away: the voice channel is reported down while the hub stays ready, the call that was on
is closed, and calls are taken again once Asterisk is back."""

from __future__ import annotations

import asyncio

import aiohttp

from router.models import Call
from router.settings import Settings
from tests.channels.voice.conftest import VoiceWorld
from tests.channels.voice.test_calls import caller
from tests.conftest import start_hub
from tests.support import sipp
from tests.support.asterisk import Asterisk
from tests.support.waiting import until


async def readiness(http: aiohttp.ClientSession, world: VoiceWorld) -> tuple[int, dict[str, bool]]:
    async with http.get(f"{world.hub.url}/readyz") as response:
        return response.status, (await response.json())["checks"]


async def test_the_voice_channel_goes_down_with_asterisk_and_comes_back(
        asterisk: Asterisk, own_voice_settings: Settings, http: aiohttp.ClientSession) -> None:
    world = VoiceWorld(await start_hub(own_voice_settings), asterisk)
    try:
        await asyncio.wait_for(world.adapter.ari.connected.wait(), 10)
        assert await readiness(http, world) == (200, {"database": True, "events": True, "voice": True})

        number = caller()
        cut_off = asyncio.create_task(world.call(number, [sipp.Pause(6000)], timeout=10))
        await until(lambda: bool(world.adapter.calls))
        [live] = world.adapter.calls.values()
        await until(lambda: live.conversation_id is not None)  # set up: answered, bridged and recording
        try:
            asterisk.stop(kill=True)
            await until(lambda: not world.adapter.connected)
            status, checks = await readiness(http, world)
            assert (status, checks["database"], checks["voice"]) == (200, True, False)
        finally:
            asterisk.start()
        await asyncio.wait_for(world.adapter.ari.connected.wait(), 10)
        assert (await readiness(http, world))[1]["voice"] is True
        assert not (await cut_off).completed  # the caller's line went dead with Asterisk

        # The call that was on when Asterisk died is closed at the re-sync: nothing is known of its end.
        await until(lambda: not world.adapter.calls, within=20)
        async with world.hub.hub.sessions() as session:
            closed = await session.get(Call, live.call_id)
        assert closed.ended_at is not None and closed.hangup_cause is None
        assert closed.recording_file_id is not None  # what Asterisk had written of it before it died

        again = caller()
        since = closed.ended_at
        result = await world.call(again, [sipp.Pause(500)])
        assert result.completed, result.output
        call = await world.ended_call(again, since)
        assert (call.hangup_side, call.hangup_cause) == ("caller", 16)
    finally:
        await world.hub.runner.cleanup()
