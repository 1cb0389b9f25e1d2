"""A resident's message reaches an agent; the agent's reply reaches the resident; states move on."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import aiohttp
from sqlalchemy import func, select, update

from channels.base import InboundMessage
from router.hub import TOPIC
from router.inbound import Ingestor
from router.models import Conversation, Message, Role, utcnow
from tests.support.actors import Resident


async def test_resident_and_agent_talk(resident: Resident, agent, running_hub) -> None:
    said = await resident.says("楼下马路在冒水,水很大")
    conversation_id = said["conversation_id"]
    assert said["author"] == "resident" and said["direction"] == "in"

    queued = await agent.sees(lambda e: e["type"] == "conversation"
                              and e["conversation"]["id"] == conversation_id)
    assert queued["conversation"]["state"] == "queued"
    seen = await agent.sees_message("楼下马路在冒水,水很大")
    assert seen["id"] == said["id"]

    claimed = await agent.claims(conversation_id)
    assert claimed["state"] == "assigned" and claimed["assignee"]["id"] == agent.user["id"]
    state = await resident.expect(lambda f: f["type"] == "state" and f["conversation"]["state"] == "assigned")
    assert state["conversation"]["agent_name"] == agent.user["display_name"]

    await agent.replies(conversation_id, "您好,请提供具体地址,我们马上派人")
    heard = await resident.hears("agent")
    assert heard["text"] == "您好,请提供具体地址,我们马上派人"
    assert heard["author_name"] == agent.user["display_name"]

    # The widget acknowledges what it showed; the agent sees the message delivered.
    await resident.send_raw({"type": "ack", "ids": [heard["id"]]})
    delivered = await agent.sees(lambda e: e["type"] == "delivery" and e["message_id"] == heard["id"]
                                 and e["delivery"] == "delivered")
    assert delivered["delivery"] == "delivered"

    closed = await agent.closes(conversation_id, "repair")
    assert closed["state"] == "closed" and closed["disposition"] == "repair"
    history = await agent.call("GET", f"/api/conversations/{conversation_id}/messages")
    events = [m["payload"]["event"] for m in history["items"] if m["type"] == "event"]
    assert events == ["queued", "assign", "close"]


async def test_same_message_twice_is_stored_once(resident: Resident, running_hub) -> None:
    first = await resident.says("停水了吗", client_id="dup-0000-0001")
    again = await resident.says("停水了吗", client_id="dup-0000-0001")
    assert again["id"] == first["id"]

    # Also when the copies race each other (a platform retrying while the first is in flight).
    inbound = InboundMessage(channel="webchat", external_id=resident.hello["visitor_id"],
                             channel_message_id="dup-0000-0002", text="水压很低")
    results = await asyncio.gather(*(running_hub.hub.ingest(inbound) for _ in range(8)))
    assert len({r.message["id"] for r in results}) == 1
    assert sum(not r.duplicate for r in results) == 1
    async with running_hub.hub.sessions() as session:
        stored = await session.scalar(select(func.count()).select_from(Message).where(
            Message.channel_message_id.in_(["dup-0000-0001", "dup-0000-0002"])))
    assert stored == 2


async def test_two_visitors_with_the_same_client_id_each_get_their_own_message(
        http: aiohttp.ClientSession, resident: Resident, running_hub) -> None:
    """The client id is the visitor's browser's choice: another visitor's copy must not be taken for a retry."""
    other = await Resident(http, running_hub.url).connect()
    try:
        mine = await resident.says("我家停水了", client_id="same-client-id-0001")
        theirs = await other.says("我家水表漏水", client_id="same-client-id-0001")
        assert theirs["text"] == "我家水表漏水" and mine["text"] == "我家停水了"
        assert theirs["id"] != mine["id"] and theirs["conversation_id"] != mine["conversation_id"]
        retried = await other.says("我家水表漏水", client_id="same-client-id-0001")  # a real retry: the same message
        assert retried["id"] == theirs["id"]
    finally:
        await other.close()
    # Also when both arrive together, as first messages and into open conversations.
    for round_ in ("first", "again"):
        inbound = [InboundMessage(channel="webchat", external_id=f"same-id-visitor-{n}",
                                  channel_message_id=f"same-id-{round_}", text=f"访客{n}") for n in range(6)]
        results = await asyncio.gather(*(running_hub.hub.ingest(m) for m in [*inbound, *inbound]))
        assert [r.message["text"] for r in results] == [f"访客{n}" for n in range(6)] * 2
        assert [r.message["id"] for r in results[:6]] == [r.message["id"] for r in results[6:]]
        assert len({r.message["id"] for r in results}) == 6
        assert sum(r.duplicate for r in results) == 6


async def test_first_messages_racing_open_one_conversation(running_hub) -> None:
    hub = running_hub.hub
    messages = [InboundMessage(channel="webchat", external_id="race-visitor-1", channel_message_id=f"race-{i}",
                               text=f"第{i}条") for i in range(10)]
    results = await asyncio.gather(*(hub.ingest(m) for m in messages))
    assert len({r.conversation_id for r in results}) == 1


async def test_a_crowd_of_first_messages_opens_its_conversations_together(running_hub) -> None:
    """A main break: many residents write for the first time at once; each gets one conversation of their own,
    announced to staff, and a resident who needs more (blacklisted, or back within the reopen window) still
    takes the careful path."""
    hub = running_hub.hub
    returning = await hub.ingest(InboundMessage(channel="webchat", external_id="crowd-returning",
                                                channel_message_id="crowd-returning-0", text="上次的问题"))
    blocked = await hub.ingest(InboundMessage(channel="webchat", external_id="crowd-blocked",
                                              channel_message_id="crowd-blocked-0", text="骚扰"))
    async with hub.sessions.begin() as session:
        await session.execute(update(Conversation).where(Conversation.id == returning.conversation_id)
                              .values(state="closed", closed_at=utcnow()))
        conversation = await session.get(Conversation, blocked.conversation_id)
        assert conversation is not None
        conversation.contact.blacklisted = True
        conversation.state, conversation.closed_at = "closed", utcnow()
    crowd = [InboundMessage(channel="webchat", external_id=f"crowd-{n}", channel_message_id=f"crowd-{n}-1",
                            text=f"停水了{n}") for n in range(60)]
    crowd.append(InboundMessage(channel="webchat", external_id="crowd-returning", channel_message_id="crowd-r-1",
                                text="又停水了"))
    crowd.append(InboundMessage(channel="webchat", external_id="crowd-blocked", channel_message_id="crowd-b-1",
                                text="还在骚扰"))
    seconds = [InboundMessage(channel="webchat", external_id=f"crowd-{n}", channel_message_id=f"crowd-{n}-2",
                              text=f"地址是{n}号") for n in range(60)]
    published: list[dict] = []

    async def record(event: dict) -> None:
        published.append(event)

    unsubscribe = hub.bus.subscribe(TOPIC, record)
    together = hub.ingestor.stored["opened_together"]
    try:
        results = await asyncio.gather(*(hub.ingest(m) for m in [*crowd, *seconds]))
    finally:
        unsubscribe()
    assert hub.ingestor.stored["opened_together"] > together  # not one careful transaction each
    firsts, back, again, thens = results[:60], results[60], results[61], results[62:]
    assert len({r.conversation_id for r in firsts}) == 60 and all(r.conversation_state == "queued" for r in firsts)
    assert [r.conversation_id for r in thens] == [r.conversation_id for r in firsts]
    assert all(r.message["id"] > f.message["id"] for r, f in zip(thens, firsts, strict=True))
    assert back.conversation_id == returning.conversation_id and back.conversation_state == "queued"
    assert again.conversation_state == "closed"
    opened = {e["conversation"]["id"] for e in published if e["type"] == "conversation"}
    assert {r.conversation_id for r in firsts} <= opened
    async with hub.sessions() as session:
        contacts = await session.scalar(select(func.count(func.distinct(Conversation.contact_id))).where(
            Conversation.external_id.like("crowd-%")))
        queued_events = await session.scalar(select(func.count()).select_from(Message).where(
            Message.conversation_id.in_([r.conversation_id for r in firsts]), Message.type == "event"))
    assert contacts == 62 and queued_events == 60


async def test_two_processes_opening_the_same_residents_conversations_open_each_once(running_hub) -> None:
    hub = running_hub.hub
    other = Ingestor(hub.engine, hub.sessions, hub.settings, bot_enabled=False,
                     default_team_id=lambda: hub.default_team_id)
    other.start()
    try:
        messages = [InboundMessage(channel="webchat", external_id=f"twice-open-{n}", channel_message_id=f"to-{n}",
                                   text=f"第{n}位") for n in range(40)]
        results = [i.result for i in await asyncio.gather(*(ingestor.ingest(m) for m in messages
                                                            for ingestor in (hub.ingestor, other)))]
    finally:
        await other.stop()
    mine, theirs = results[0::2], results[1::2]
    assert [r.conversation_id for r in mine] == [r.conversation_id for r in theirs]
    assert [r.message["id"] for r in mine] == [r.message["id"] for r in theirs]
    assert len({r.conversation_id for r in mine}) == 40
    assert all(a.duplicate != b.duplicate for a, b in zip(mine, theirs, strict=True))


async def test_message_after_close_reopens_within_window_else_starts_new(running_hub) -> None:
    hub = running_hub.hub
    agent = await running_hub.staff(Role.AGENT)
    try:
        first = await hub.ingest(InboundMessage(channel="webchat", external_id="reopen-visitor",
                                                channel_message_id="reopen-1", text="咨询水费"))
        conversation_id = first.conversation_id
        await agent.claims(conversation_id)
        await agent.closes(conversation_id)

        reopened = await hub.ingest(InboundMessage(channel="webchat", external_id="reopen-visitor",
                                                   channel_message_id="reopen-2", text="还有一个问题"))
        assert reopened.conversation_id == conversation_id
        assert reopened.conversation_state == "queued"  # a person handled it: back to people

        await agent.claims(conversation_id)
        await agent.closes(conversation_id)
        async with hub.sessions.begin() as session:  # the window has passed
            await session.execute(update(Conversation).where(Conversation.id == conversation_id).values(
                closed_at=utcnow() - timedelta(seconds=hub.settings.reopen_window_seconds + 60)))
        fresh = await hub.ingest(InboundMessage(channel="webchat", external_id="reopen-visitor",
                                                channel_message_id="reopen-3", text="新的问题"))
        assert fresh.conversation_id != conversation_id
    finally:
        await agent.close()


async def test_claim_race_assigns_once(running_hub) -> None:
    hub = running_hub.hub
    result = await hub.ingest(InboundMessage(channel="webchat", external_id="claim-race",
                                             channel_message_id="claim-race-1", text="有人吗"))
    agents = [await running_hub.staff(Role.AGENT, listen=False) for _ in range(4)]
    try:
        answers = await asyncio.gather(*(
            a.call("POST", f"/api/conversations/{result.conversation_id}/claim", expect=None) for a in agents))
        winners = [a for a in answers if a.get("state") == "assigned"]
        assert len(winners) == 1
        assert sorted(a.get("error", {}).get("code", "") for a in answers if a not in winners) == ["not_queued"] * 3
    finally:
        for a in agents:
            await a.close()


async def test_invalid_transition_is_409(agent, running_hub) -> None:
    result = await running_hub.hub.ingest(InboundMessage(channel="webchat", external_id="conflict-visitor",
                                                         channel_message_id="conflict-1", text="你好"))
    conversation_id = result.conversation_id
    body = await agent.call("POST", f"/api/conversations/{conversation_id}/messages", {"text": "未接入就回复"},
                            expect=409)
    assert body["error"]["code"] == "not_assigned"
    await agent.claims(conversation_id)
    await agent.closes(conversation_id)
    body = await agent.call("POST", f"/api/conversations/{conversation_id}/claim", expect=409)
    assert body["error"]["code"] == "not_queued"


async def test_transfer_to_an_agent_and_to_a_team_with_a_note(running_hub) -> None:
    hub = running_hub.hub
    first, second = await running_hub.staff(Role.AGENT), await running_hub.staff(Role.AGENT)
    billing = await running_hub.staff(Role.AGENT, teams=["营业收费组"])
    supervisor = await running_hub.staff(Role.SUPERVISOR, listen=False)
    try:
        result = await hub.ingest(InboundMessage(channel="webchat", external_id="transfer-visitor",
                                                 channel_message_id="transfer-1", text="水费怎么这么高"))
        conversation_id = result.conversation_id
        await first.claims(conversation_id)
        moved = await first.call("POST", f"/api/conversations/{conversation_id}/transfer",
                                 {"agent_id": second.user["id"], "note": "请帮忙看下抄表记录"})
        assert moved["assignee"]["id"] == second.user["id"] and moved["state"] == "assigned"
        assert (await second.sees(lambda e: e["type"] == "conversation" and e["conversation"]["id"] == conversation_id
                                  and e["conversation"]["assignee"] is not None))
        # The first agent no longer handles it.
        await first.call("POST", f"/api/conversations/{conversation_id}/messages", {"text": "还在吗"}, expect=403)

        teams = await supervisor.call("GET", "/api/teams")
        billing_team = next(t for t in teams["items"] if t["name"] == "营业收费组")
        queued = await second.call("POST", f"/api/conversations/{conversation_id}/transfer",
                                   {"team_id": billing_team["id"], "note": "转营业收费组核对水费"})
        assert queued["state"] == "queued" and queued["team"]["name"] == "营业收费组" and queued["assignee"] is None
        await billing.sees(lambda e: e["type"] == "conversation" and e["conversation"]["id"] == conversation_id)
        await billing.claims(conversation_id)

        history = await supervisor.call("GET", f"/api/conversations/{conversation_id}/messages")
        notes = [m["text"] for m in history["items"] if (m["payload"] or {}).get("kind") == "transfer_note"]
        assert notes == ["请帮忙看下抄表记录", "转营业收费组核对水费"]
        await first.call("POST", f"/api/conversations/{conversation_id}/transfer", {"agent_id": 1, "team_id": 1},
                         expect=422)
    finally:
        for staff in (first, second, billing, supervisor):
            await staff.close()


async def test_a_supervisor_assigns_a_queued_conversation_to_an_agent(running_hub) -> None:
    hub = running_hub.hub
    supervisor = await running_hub.staff(Role.SUPERVISOR, listen=False)
    agent = await running_hub.staff(Role.AGENT)
    try:
        result = await hub.ingest(InboundMessage(channel="webchat", external_id="assign-visitor",
                                                 channel_message_id="assign-1", text="我要投诉"))
        conversation_id = result.conversation_id
        assigned = await supervisor.call("POST", f"/api/conversations/{conversation_id}/assign",
                                         {"agent_id": agent.user["id"]})
        assert assigned["assignee"]["id"] == agent.user["id"]
        await agent.replies(conversation_id, "您好,我是值班坐席")
        crew = await running_hub.staff(Role.FIELD_CREW, listen=False)
        body = await supervisor.call("POST", f"/api/conversations/{conversation_id}/assign",
                                     {"agent_id": crew.user["id"]}, expect=422)
        assert body["error"]["code"] == "unknown_agent"
        await crew.close()
    finally:
        await supervisor.close()
        await agent.close()


async def test_sign_out_ends_the_session(running_hub) -> None:
    agent = await running_hub.staff(Role.AGENT, listen=False)
    try:
        await agent.call("GET", "/api/auth/me")
        await agent.call("POST", "/api/auth/logout", expect=204)
        await agent.call("GET", "/api/auth/me", expect=401)
        wrong = await agent.call("POST", "/api/auth/login", {"username": agent.user["username"], "password": "x"},
                                 expect=401)
        assert wrong["error"]["code"] == "bad_credentials"
    finally:
        await agent.close()


async def test_messages_arriving_together_are_stored_together_in_order(running_hub) -> None:
    """A burst mixes plain messages, copies, first messages and a waiting conversation; each ends up right."""
    hub = running_hub.hub
    known = [await hub.ingest(InboundMessage(channel="webchat", external_id=f"burst-known-{i}",
                                             channel_message_id=f"burst-known-{i}-0", text="开始"))
             for i in range(5)]
    burst = []
    for n in range(1, 21):
        for i in range(5):
            burst.append(InboundMessage(channel="webchat", external_id=f"burst-known-{i}",
                                        channel_message_id=f"burst-known-{i}-{n}", text=f"第{n}条"))
        burst.append(InboundMessage(channel="webchat", external_id=f"burst-new-{n % 3}",
                                    channel_message_id=f"burst-new-{n}", text=f"新访客第{n}条"))
    copies = burst[:10]
    batched_before = hub.ingestor.stored["batched"]
    results = await asyncio.gather(*(hub.ingest(m) for m in [*burst, *copies]))
    fresh, repeated = results[:len(burst)], results[len(burst):]
    assert [m.channel_message_id for m, r in zip(burst, fresh, strict=True) if r.duplicate] == []
    assert all(r.duplicate for r in repeated)
    assert [r.message["id"] for r in repeated] == [r.message["id"] for r in fresh[:10]]
    assert len({r.message["id"] for r in fresh}) == len(burst)
    for i, first in enumerate(known):
        mine = [r for m, r in zip(burst, fresh, strict=True) if m.external_id == f"burst-known-{i}"]
        assert {r.conversation_id for r in mine} == {first.conversation_id}
        assert [r.message["id"] for r in mine] == sorted(r.message["id"] for r in mine)  # arrival order kept
    assert len({r.conversation_id for m, r in zip(burst, fresh, strict=True) if m.external_id.startswith("burst-new")}
               ) == 3
    async with hub.sessions() as session:
        stored = await session.scalar(select(func.count()).select_from(Message).where(
            Message.channel_message_id.like("burst-%")))
    assert stored == len(known) + len(burst)
    assert hub.ingestor.stored["batched"] - batched_before >= 50  # the known residents' messages went in batches
