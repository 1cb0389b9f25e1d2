"""A hub that stops mid-call: the next one takes the call up again from Asterisk, the caller goes on in the IVR
and the call is seen to the end."""

from __future__ import annotations

import asyncio

from channels.voice.ivr import DEFAULT_MENU, parse_menu
from router.models import Call, utcnow
from router.settings import Settings
from tests.channels.voice.conftest import VoiceWorld
from tests.channels.voice.test_calls import caller, wav_seconds
from tests.conftest import start_hub
from tests.support import sipp
from tests.support.asterisk import Asterisk

MENU = parse_menu(DEFAULT_MENU.read_text("utf-8"))
WELCOME = MENU.prompts.welcome["zh"]


async def path_of(world: VoiceWorld) -> list[str]:
    """The IVR path so far of the one call ``world`` follows."""
    call_id = next(iter(world.adapter.calls.values())).call_id
    async with world.hub.hub.sessions() as session:
        call = await session.get(Call, call_id)
    return list(call.ivr_path) if call is not None else []


async def test_a_call_survives_the_hub_restarting_mid_call(asterisk: Asterisk, own_voice_settings: Settings,
                                                            ) -> None:
    settings = own_voice_settings
    first = VoiceWorld(await start_hub(settings), asterisk)
    number, since = caller(), utcnow()
    placed = asyncio.create_task(first.call(number, [sipp.Pause(6000), *sipp.digits("1"), sipp.Pause(4000),
                                                     *sipp.digits("2"), sipp.Voice(3500)]))
    try:
        # The hub goes away once the caller has pressed 1 and reached the bill node.
        while not first.adapter.calls or not await first.events(next(iter(first.adapter.calls.values())).call_id,
                                                                "key") or "bill" not in await path_of(first):
            assert not placed.done(), (await placed).output
            await asyncio.sleep(0.1)
    finally:
        await first.hub.runner.cleanup()  # the hub goes away; the caller stays on the line

    second = VoiceWorld(await start_hub(settings), asterisk)
    try:
        result = await placed
        assert result.completed, result.output
        call = await second.ended_call(number, since)
        assert [k.key for k in await second.events(call.id, "key")] == ["1", "2"]
        assert (call.hangup_side, call.hangup_cause) == ("caller", 16)
        # The caller went on: back at the menu after the restart (1 had taken them to the bill, 2 now to the
        # work orders), and was not welcomed a second time.
        assert call.ivr_path == ["main", "bill", "main", "work_order"]
        said = [p.detail["text"] for p in await second.events(call.id, "prompt")]
        assert said.count(WELCOME) == 1
        assert said[-1] == MENU.nodes["work_order"].prompt["zh"]
        assert call.recording_file_id is not None
        # Asterisk writes the bridge's audio as it flows (sipp sends none between its pcaps): the prompts
        # before the restart, then the caller's voice after it, in one recording.
        assert 6.5 < wav_seconds(await second.recording(call.recording_file_id)) < 20.0
    finally:
        await second.hub.runner.cleanup()
