"""A call with the bot on: the caller is the IVR's, so the call's arrival asks the bot nothing."""

from __future__ import annotations

import asyncio

from sqlalchemy import select

from router.models import Conversation, Message, utcnow
from router.settings import Settings
from tests.channels.voice.conftest import VoiceWorld
from tests.channels.voice.test_calls import caller
from tests.conftest import start_hub
from tests.support import sipp
from tests.support.asterisk import Asterisk
from tests.support.restbot import StandInBot


async def test_a_call_coming_in_is_no_question_for_the_bot(asterisk: Asterisk, own_voice_settings: Settings,
                                                           bot: StandInBot) -> None:
    world = VoiceWorld(await start_hub(own_voice_settings.model_copy(update={"rasa_url": bot.url})), asterisk)
    try:
        await asyncio.wait_for(world.adapter.ari.connected.wait(), 10)
        number, since = caller(), utcnow()
        result = await world.call(number, [sipp.Pause(500)])
        assert result.completed, result.output
        call = await world.ended_call(number, since)
        async with world.hub.hub.sessions() as session:
            conversation = await session.get(Conversation, call.conversation_id)
            messages = list(await session.scalars(select(Message).where(Message.conversation_id == conversation.id)))
        assert conversation.state == "bot"
        assert [(m.author, m.type) for m in messages] == [("resident", "event")]
        assert bot.received == []
    finally:
        await world.hub.runner.cleanup()
