"""A bot turn that does not finish is taken up again: the resident is answered once, or handed to people."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.exc import OperationalError

from router.botturns import HANDOFF_NOTICE
from router.models import Conversation, ConversationState, Message, PendingBotTurn
from tests.conftest import RunningHub, start_hub
from tests.support.actors import Resident
from tests.support.restbot import StandInBot, running_bot

ANSWER = "阶梯水价按年用水量分三档计价。"
# A turn left unfinished is taken up 3 s later: the sweep looks every 0.2 s. A shorter lease runs out on a loaded
# machine between a turn's claim and its start, which takes the turn up again without asking the bot.
QUICK_SWEEP = {"bot_turn_sweep_seconds": 0.2, "bot_turn_lease_seconds": 3.0, "bot_timeout_seconds": 2.0}


@pytest.fixture
async def bot() -> AsyncIterator[StandInBot]:
    async with running_bot([{"recipient_id": "x", "text": ANSWER}]) as bot:
        yield bot


@pytest.fixture
async def bot_hub(own_settings, bot, request: pytest.FixtureRequest) -> AsyncIterator[RunningHub]:
    """A hub whose bot is the stand-in, sweeping quickly; ``indirect`` parametrization adds settings."""
    running = await start_hub(own_settings(rasa_url=bot.url, **QUICK_SWEEP, **getattr(request, "param", {})))
    yield running
    await running.runner.cleanup()


@contextlib.contextmanager
def answers_fail_to_be_stored(hub: RunningHub, times: int) -> Iterator[list[int]]:
    """The next ``times`` writes of a bot's answer fail as a lost database connection does; yields failures."""
    failures: list[int] = []

    def before_execute(_connection: Any, _cursor: Any, statement: str, parameters: Any, _context: Any,
                       _executemany: bool) -> None:
        if len(failures) < times and statement.lstrip().upper().startswith("INSERT INTO MESSAGE") \
                and isinstance(parameters, tuple | list) and "bot" in parameters:
            failures.append(1)
            raise OperationalError(statement, parameters, ConnectionResetError("the database went away"))

    engine = hub.hub.engine.sync_engine
    event.listen(engine, "before_cursor_execute", before_execute)
    try:
        yield failures
    finally:
        event.remove(engine, "before_cursor_execute", before_execute)


async def stored(hub: RunningHub, conversation_id: int) -> tuple[list[Message], int]:
    """The conversation's messages, and the bot turns still pending in it."""
    async with hub.hub.sessions() as session:
        messages = list(await session.scalars(
            select(Message).where(Message.conversation_id == conversation_id).order_by(Message.id)))
        pending = await session.scalar(
            select(func.count()).select_from(PendingBotTurn).where(PendingBotTurn.conversation_id == conversation_id))
    return messages, pending or 0


async def test_an_answer_the_database_failed_to_store_is_asked_for_again_and_given_once(bot_hub, bot, http) -> None:
    resident = await Resident(http, bot_hub.url).connect()
    try:
        with answers_fail_to_be_stored(bot_hub, times=1) as failures:
            said = await resident.says("阶梯水价怎么收费")
            heard = await resident.hears("bot", timeout=20)
        assert failures and heard["text"] == ANSWER
        assert len(bot.received) == 2  # asked again once the first turn's lease had run out
        with pytest.raises(AssertionError, match="no matching frame"):
            await resident.hears("bot", timeout=2)  # and answered once
        messages, pending = await stored(bot_hub, said["conversation_id"])
        assert [m.text for m in messages if m.author == "bot"] == [ANSWER] and pending == 0
    finally:
        await resident.close()


@pytest.mark.parametrize("bot_hub", [{"bot_turn_max_attempts": 2}], indirect=True)
async def test_a_turn_that_keeps_failing_is_handed_to_people_after_the_last_attempt(bot_hub, bot, http) -> None:
    resident = await Resident(http, bot_hub.url).connect()
    try:
        with answers_fail_to_be_stored(bot_hub, times=100):
            said = await resident.says("阶梯水价怎么收费")
            notice = await resident.hears("system", timeout=20)
        assert notice["text"] == HANDOFF_NOTICE
        assert len(bot.received) == 2
        messages, pending = await stored(bot_hub, said["conversation_id"])
        handoff = [m for m in messages if (m.payload or {}).get("event") == "handoff"]
        assert len(handoff) == 1 and "机器人2次未能作答" in (handoff[0].text or "") and pending == 0
        assert not [m for m in messages if m.author == "bot"]
        async with bot_hub.hub.sessions() as session:
            conversation = await session.get(Conversation, said["conversation_id"])
            assert conversation is not None and conversation.state == ConversationState.QUEUED
    finally:
        await resident.close()


async def test_a_turn_unfinished_at_shutdown_is_given_up_for_the_next_process_at_once(own_settings, bot,
                                                                                       http) -> None:
    """The hub stops while the bot is still thinking, past its grace period: the next process to sweep (here the
    one started after it) asks the bot again without waiting for the lease to run out."""
    settings = {**QUICK_SWEEP, "rasa_url": bot.url, "bot_timeout_seconds": 10.0, "bot_turn_lease_seconds": 60.0,
                "shutdown_grace_seconds": 0.5}
    first = await start_hub(own_settings(**settings))
    resident = await Resident(http, first.url).connect()
    bot.hold()
    said = await resident.says("阶梯水价怎么收费")
    await bot.wait_asked(1)
    await resident.close()
    await first.runner.cleanup()
    bot.release()
    second = await start_hub(own_settings(**settings))
    try:
        deadline = asyncio.get_running_loop().time() + 10  # well within the 60 s lease
        while not [m for m in (await stored(second, said["conversation_id"]))[0] if m.author == "bot"]:
            assert asyncio.get_running_loop().time() < deadline, "the turn was not taken up"
            await asyncio.sleep(0.2)
        await asyncio.sleep(1.0)
        messages, pending = await stored(second, said["conversation_id"])
        assert [m.text for m in messages if m.author == "bot"] == [ANSWER] and pending == 0
        assert len(bot.received) == 2
    finally:
        await second.runner.cleanup()
