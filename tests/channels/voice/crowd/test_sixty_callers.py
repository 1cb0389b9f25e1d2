"""Sixty callers at once against twenty agents on registered sipp desk phones, with web chats arriving among
them and the hub restarting in the middle: every call is put through once to one agent, an agent on a call gets
neither a second call nor a chat, callers who give up are counted as abandoned, and no caller is lost over the
restart (talking ones talk on, waiting ones keep their place in the queue)."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from itertools import pairwise

import aiohttp
import pytest
from sqlalchemy import select

from router.models import Call, CallEvent, Conversation, Role, utcnow
from router.settings import Settings
from tests.channels.voice.conftest import SETTLE, VoiceWorld, agent_with_phone
from tests.channels.voice.test_calls import caller
from tests.conftest import RunningHub, start_hub
from tests.support import sipp
from tests.support.actors import Resident, Staff
from tests.support.asterisk import Asterisk

pytestmark = pytest.mark.load_test

AGENTS, PATIENT, IMPATIENT, CHATS = 20, 50, 10, 5
TALK_MS = 3000  # each agent hangs up after talking this long
PATIENCE_MS = 30000  # after pressing 0, how long an impatient caller waits before hanging up


class Floor:
    """The hub of the moment (it is restarted mid-way) and its agents, who close each conversation once its
    call is over, as agents do after a call."""

    def __init__(self, hub: RunningHub, agents: list[Staff]) -> None:
        self.hub, self.agents = hub, {agent.user["id"]: agent for agent in agents}
        self.closed: set[int] = set()

    def moved_to(self, hub: RunningHub) -> None:
        self.hub = hub
        for agent in self.agents.values():
            agent.base_url = hub.url  # the same session cookie: the same database and secret

    async def wrap_up(self) -> None:
        """Close the conversations of calls that are over (the agent hung up) and still assigned."""
        while True:
            async with self.hub.hub.sessions() as session:
                done = (await session.execute(
                    select(Conversation.id, Conversation.assignee_id)
                    .join(Call, Call.conversation_id == Conversation.id)
                    .where(Conversation.channel == "voice", Conversation.state == "assigned",
                           Call.connected_at.is_not(None),
                           Call.id.in_(select(CallEvent.call_id).where(CallEvent.kind == "agent_hangup"))))).all()
            for conversation_id, agent_id in done:
                if conversation_id not in self.closed and agent_id in self.agents:
                    with contextlib.suppress(AssertionError, aiohttp.ClientError):
                        await self.agents[agent_id].closes(conversation_id)
                        self.closed.add(conversation_id)
            await asyncio.sleep(0.3)


@pytest.fixture
def settings(own_voice_settings: Settings) -> Settings:
    return own_voice_settings.model_copy(update={
        "voice_hours": "24x7", "voice_ring_seconds": 5, "acw_seconds": 1.0, "presence_timeout_seconds": 600.0})


@pytest.fixture
async def first_hub(settings: Settings, asterisk: Asterisk) -> AsyncIterator[RunningHub]:
    running = await start_hub(settings)
    await asyncio.wait_for(running.hub.adapters["voice"].ari.connected.wait(), 10)  # type: ignore[attr-defined]
    yield running
    await running.runner.cleanup()


@pytest.mark.timeout(400)
async def test_sixty_callers_twenty_agents_chats_among_them_and_a_restart(
        first_hub: RunningHub, settings: Settings, asterisk: Asterisk) -> None:
    admin = await first_hub.staff(Role.ADMIN, listen=False)
    phones_of = []
    world = VoiceWorld(first_hub, asterisk)
    for _ in range(AGENTS):
        phones_of.append(await agent_with_phone(world, admin))
    port = asterisk.sip_port
    async with contextlib.AsyncExitStack() as stack:
        for _, number, password in phones_of:
            await stack.enter_async_context(sipp.DeskPhone(port, number, password, ring_ms=500, talk_ms=TALK_MS))
        floor = Floor(first_hub, [agent for agent, _, _ in phones_of])
        for agent in floor.agents.values():
            await agent.becomes("away", "班前会")  # the shift is about to start: the line takes calls
        wrapping = asyncio.create_task(floor.wrap_up())
        since = utcnow()

        def place(number: str, patient: bool) -> asyncio.Task[sipp.CallResult]:
            steps: list[sipp.Step] = [SETTLE, *sipp.digits("0")]
            steps += [] if patient else [sipp.Pause(PATIENCE_MS)]
            return asyncio.create_task(sipp.call(port, number, "962740", steps, wait_for_hangup=patient,
                                                 timeout=240))

        # Sixty callers at once, all asking for a person; ten give up waiting before the shift starts.
        patient = [caller() for _ in range(PATIENT)]
        impatient = [caller() for _ in range(IMPATIENT)]
        placed = [place(number, number in patient) for number in [*impatient, *patient]]
        quitters = asyncio.gather(*placed[:IMPATIENT])
        # Sixty menus walked at once take a slow two-core machine most of a minute.
        await until_calls(floor, since, lambda calls: len(calls) == PATIENT + IMPATIENT and all(
            c.queued_at is not None for c in calls), "every caller in the queue", timeout=120)
        await quitters
        for agent in floor.agents.values():
            await agent.becomes("ready")
        async with aiohttp.ClientSession() as http:
            residents = [await Resident(http, first_hub.url).connect() for _ in range(CHATS)]
            for resident in residents:  # web chats arrive among the calls
                await resident.says("我家水表漏水了,请帮忙看看")
            await until_calls(floor, since, lambda calls: sum(c.connected_at is not None for c in calls) >= AGENTS,
                              "every agent put through to a caller")

            await first_hub.runner.cleanup()  # the hub restarts with twenty callers talking, thirty waiting
            second = await start_hub(settings)
            try:
                await asyncio.wait_for(second.hub.adapters["voice"].ari.connected.wait(), 10)  # type: ignore[attr-defined]
                floor.moved_to(second)
                results = await asyncio.gather(*placed)
                wrapping.cancel()
                calls, events, chats = await what_happened(second, since, patient + impatient)
            finally:
                wrapping.cancel()
                for resident in residents:
                    await resident.close()
                await second.runner.cleanup()

    failed = [r.output for r in results if not r.completed]
    assert not failed, failed[:2]
    by_caller = {call.caller.removeprefix("+86"): call for call in calls}
    assert set(by_caller) == set(patient + impatient)  # one record per caller, none lost
    for number in patient:
        call = by_caller[number]
        connects = [e for e in events[call.id] if e.kind == "connect"]
        assert (call.outcome, len(connects)) == ("agent", 1), story(call, events[call.id])
        assert call.agent_id == connects[0].detail["agent_id"]
    abandoned = [by_caller[n] for n in impatient]
    assert [c.outcome for c in abandoned] == ["abandoned"] * IMPATIENT
    assert all(c.connected_at is None and any(e.kind == "abandon" for e in events[c.id]) for c in abandoned)

    # No agent had two calls at once, nor a chat during a call.
    talks: defaultdict[int, list[tuple[datetime, datetime]]] = defaultdict(list)
    for call in calls:
        if call.connected_at is not None:
            [hung_up] = [e.at for e in events[call.id] if e.kind == "agent_hangup"]
            talks[call.agent_id].append((call.connected_at, hung_up))
    for spans in talks.values():
        spans.sort()
        assert all(earlier[1] <= later[0] for earlier, later in pairwise(spans)), spans
    assert len(talks) == AGENTS and sum(len(s) for s in talks.values()) == PATIENT
    assert len(chats) == CHATS
    for chat in chats:
        if chat.assignee_id is not None:
            assert not any(start <= chat.assigned_at <= end for start, end in talks[chat.assignee_id]), chat.id
    assert Counter(c.outcome for c in calls) == {"agent": PATIENT, "abandoned": IMPATIENT}


def story(call: Call, events: list[CallEvent]) -> str:
    """A call's record and every step it went through but the prompts, in full (a failure names them all)."""
    steps = "; ".join(f"{e.at:%H:%M:%S.%f} {e.kind} {e.detail or ''}" for e in events if e.kind != "prompt")
    return (f"call {call.id} from {call.caller}: outcome {call.outcome}, started {call.started_at:%H:%M:%S.%f}, "
            f"queued {call.queued_at}, connected {call.connected_at}, ended {call.ended_at}, "
            f"cause {call.hangup_cause} {call.hangup_cause_text}, side {call.hangup_side}; steps: {steps}")


async def until_calls(floor: Floor, since: datetime, done: Callable[[list[Call]], bool], what: str,
                      timeout: float = 60) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        async with floor.hub.hub.sessions() as session:
            calls = list(await session.scalars(select(Call).where(Call.started_at >= since)))
        if done(calls):
            return
        assert asyncio.get_running_loop().time() < deadline, (
            f"not {what}: {len(calls)} calls, {sum(c.queued_at is not None for c in calls)} queued; "
            f"{sorted(round((c.queued_at - c.started_at).total_seconds(), 1) for c in calls if c.queued_at)}")
        await asyncio.sleep(0.3)


async def what_happened(hub: RunningHub, since: datetime, numbers: list[str],
                        ) -> tuple[list[Call], dict[int, list[CallEvent]], list[Conversation]]:
    """Every call from ``numbers`` once they are all over, their events, and the web chats of the run."""
    deadline = asyncio.get_running_loop().time() + 60
    while True:
        async with hub.hub.sessions() as session:
            calls = list(await session.scalars(select(Call).where(Call.started_at >= since)))
        if len(calls) >= len(numbers) and all(c.ended_at is not None for c in calls):
            break
        if asyncio.get_running_loop().time() > deadline:
            async with hub.hub.sessions() as session:
                open_ids = [c.id for c in calls if c.ended_at is None]
                steps = (await session.execute(select(CallEvent.call_id, CallEvent.at, CallEvent.kind, CallEvent.detail)
                                               .where(CallEvent.call_id.in_(open_ids), CallEvent.kind != "prompt")
                                               .order_by(CallEvent.at, CallEvent.id))).all()
            still = [(c.id, c.channel_id, c.outcome, c.agent_id, c.queued_at, c.connected_at)
                     for c in calls if c.ended_at is None]
            raise AssertionError(f"{len(calls)} calls, still open: {still}; "
                                 f"their steps: {steps}")
        await asyncio.sleep(0.5)
    async with hub.hub.sessions() as session:
        rows = await session.scalars(select(CallEvent).where(CallEvent.call_id.in_([c.id for c in calls]))
                                     .order_by(CallEvent.at, CallEvent.id))
        events: defaultdict[int, list[CallEvent]] = defaultdict(list)
        for event in rows:
            events[event.call_id].append(event)
        chats = list(await session.scalars(select(Conversation).where(
            Conversation.channel == "webchat", Conversation.created_at >= since)))
    return calls, events, chats
