"""The ACD behind the API: presence decides who gets chats, freed capacity is used at once, overflow, sticky
residents, after-call work, silent inboxes, supervisors forcing a state, and what agents may see."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import select

from router.models import Contact, Conversation, PresenceLog, Role, utcnow
from tests.conftest import RunningHub, start_hub
from tests.support.actors import Staff
from tests.support.desks import conversation

QUIET = 1.0  # long enough for a pass that should not assign anything to have run several times


async def ready_agents(hub: RunningHub, count: int, **kwargs: Any) -> list[Staff]:
    agents = [await hub.staff(Role.AGENT, **kwargs) for _ in range(count)]
    for agent in agents:
        await agent.becomes("ready")
    return agents


async def stays_queued(hub: RunningHub, conversation_id: int) -> None:
    await asyncio.sleep(QUIET)
    waiting = await conversation(hub, conversation_id)
    assert (waiting.state, waiting.assignee_id) == ("queued", None)


async def test_ready_agents_get_chats_away_ones_nothing_and_a_freed_seat_is_filled_at_once(acd_hub, residents):
    (busy,) = await ready_agents(acd_hub, 1, max_chats=1)
    away = await acd_hub.staff(Role.AGENT)
    assert (await away.becomes("away", "培训"))["state"] == "away"

    first = await (await residents()).says("第一位居民")
    assert (await busy.gets_assigned())["id"] == first["conversation_id"]

    second = await (await residents()).says("第二位居民,坐席都忙")
    await stays_queued(acd_hub, second["conversation_id"])  # the only ready agent is full, the other away

    await busy.closes(first["conversation_id"], "consultation")
    assigned = await busy.gets_assigned(timeout=3)
    assert assigned["id"] == second["conversation_id"]
    async with acd_hub.hub.sessions() as session:
        log = list(await session.scalars(select(PresenceLog).where(PresenceLog.user_id == away.user["id"])))
    assert [(entry.state, entry.reason) for entry in log] == [("away", "培训")]
    for agent in (busy, away):
        await agent.close()


async def test_an_agent_signed_in_without_an_open_inbox_is_signed_out(own_settings, residents):
    running = await start_hub(own_settings(acd_sweep_seconds=0.2, presence_timeout_seconds=1,
                                           presence_heartbeat_seconds=0.3))
    try:
        agent = await running.staff(Role.AGENT, listen=False)  # signed in over the API, no inbox open
        await agent.becomes("ready")
        listening = (await ready_agents(running, 1))[0]
        await asyncio.sleep(2)
        me = await agent.call("GET", "/api/presence")
        assert (me["agent"]["state"], me["agent"]["reason"]) == ("signed_out", "连接断开")
        still = await listening.call("GET", "/api/presence")
        assert still["agent"]["state"] == "ready"  # its open inbox keeps it signed in
        for staff in (agent, listening):
            await staff.close()
    finally:
        await running.runner.cleanup()


@pytest.mark.parametrize("acd_hub", [{"acw_seconds": 2.0}], indirect=True)
async def test_after_call_work_returns_to_ready_and_then_takes_the_waiting_chat(acd_hub, residents):
    agent = await acd_hub.staff(Role.AGENT)
    acw = await agent.becomes("acw")
    assert acw["state"] == "acw" and acw["acw_until"] is not None
    said = await (await residents()).says("整理完了就轮到我")
    await asyncio.sleep(0.5)
    waiting = await conversation(acd_hub, said["conversation_id"])
    assert waiting.state == "queued" or utcnow() >= datetime.fromisoformat(acw["acw_until"])  # a slow machine
    assert (await agent.gets_assigned(timeout=5))["id"] == said["conversation_id"]
    back = await agent.sees(lambda e: e["type"] == "presence" and e["presence"]["state"] == "ready")
    assert back["presence"]["reason"] == "整理时间结束"
    await agent.close()


async def test_overflow_moves_a_long_wait_to_the_other_team(acd_hub, residents):
    supervisor = await acd_hub.staff(Role.SUPERVISOR)
    night = (await ready_agents(acd_hub, 1, teams=["夜间组"]))[0]
    queues = {q["name"]: q for q in (await supervisor.call("GET", "/api/queues"))["items"]}
    main, backup = queues["热线坐席"], queues["夜间组"]
    bad = await supervisor.call("PUT", f"/api/queues/{main['team_id']}",
                                {"strategy": "least_busy", "overflow_team_id": main["team_id"],
                                 "overflow_after_seconds": 5}, expect=422)
    assert bad["error"]["code"] == "bad_overflow_team"
    changed = await supervisor.call("PUT", f"/api/queues/{main['team_id']}",
                                    {"strategy": "least_busy", "overflow_team_id": backup["team_id"],
                                     "overflow_after_seconds": 5})
    assert changed["items"][0]["overflow_after_seconds"] == 5

    said = await (await residents()).says("白班没人,夜班接")
    await asyncio.sleep(2)
    waiting = (await supervisor.call("GET", "/api/queues"))["items"]
    line = next(q for q in waiting if q["name"] == "热线坐席")
    assert line["waiting"] == 1 and line["longest_wait_seconds"] >= 2
    assigned = await night.gets_assigned(timeout=8)
    assert assigned["id"] == said["conversation_id"] and assigned["team"]["name"] == "夜间组"
    events = await supervisor.call("GET", f"/api/conversations/{said['conversation_id']}/messages")
    assert "等待超时,溢出至 夜间组" in [m["text"] for m in events["items"]]
    for staff in (supervisor, night):
        await staff.close()


async def test_a_returning_resident_goes_back_to_the_agent_who_served_them(acd_hub, residents):
    supervisor = await acd_hub.staff(Role.SUPERVISOR)
    team_id = (await supervisor.call("GET", "/api/queues"))["items"][0]["team_id"]
    await supervisor.call("PUT", f"/api/queues/{team_id}", {"strategy": "round_robin", "prefer_last_agent": True})
    agents = await ready_agents(acd_hub, 3)
    resident = await residents()
    first = await resident.says("上次的问题")
    served_by = await asyncio.wait_for(_first_assignment(agents), 5)
    await served_by.closes(first["conversation_id"])

    again = await resident.says("我又来了")  # reopen window 0: a new conversation
    assert again["conversation_id"] != first["conversation_id"]
    assert (await served_by.gets_assigned(again["conversation_id"]))["assignee"]["id"] == served_by.user["id"]
    for staff in (supervisor, *agents):
        await staff.close()


async def _first_assignment(agents: list[Staff]) -> Staff:
    while True:
        for agent in agents:
            me = await agent.call("GET", "/api/presence")
            if me["agent"]["load"]:
                return agent
        await asyncio.sleep(0.05)


async def test_a_phone_call_fills_the_agent_whatever_their_chat_capacity(acd_hub, residents):
    (agent,) = await ready_agents(acd_hub, 1, max_chats=5)
    async with acd_hub.hub.sessions.begin() as session:  # a phone call put through to the agent
        caller = Contact(display_name="来电 1391234")
        session.add(caller)
        await session.flush()
        call = Conversation(channel="voice", external_id="13912345678", contact_id=caller.id, state="assigned",
                            assignee_id=agent.user["id"], assigned_at=utcnow())
        session.add(call)
    assert (await agent.call("GET", "/api/presence"))["agent"]["load"] == 5  # full, with one conversation

    said = await (await residents()).says("电话占线,我先在网上问")
    await stays_queued(acd_hub, said["conversation_id"])
    async with acd_hub.hub.sessions.begin() as session:
        (await session.get(Conversation, call.id)).state = "closed"
    acd_hub.hub.distributor.wake()  # closing through the hub publishes the event that does this
    assert (await agent.gets_assigned(said["conversation_id"]))["id"] == said["conversation_id"]
    assert (await agent.call("GET", "/api/presence"))["agent"]["load"] == 1
    await agent.close()


async def test_supervisors_force_states_agents_cannot(acd_hub):
    supervisor, agent, other = (await acd_hub.staff(Role.SUPERVISOR), await acd_hub.staff(Role.AGENT),
                                await acd_hub.staff(Role.AGENT))
    await agent.becomes("ready")
    forced = await supervisor.call("PUT", f"/api/agents/{agent.user['id']}/presence",
                                   {"state": "signed_out", "reason": "下班未签出"})
    assert forced["agent"]["state"] == "signed_out"
    seen = await agent.sees(lambda e: e["type"] == "presence" and e["presence"]["state"] == "signed_out")
    assert seen["presence"]["reason"] == "下班未签出"
    await other.call("PUT", f"/api/agents/{agent.user['id']}/presence", {"state": "ready"}, expect=403)
    await other.call("GET", "/api/agents", expect=403)
    await agent.call("PUT", "/api/presence", {"state": "lunch"}, expect=422)
    board = {a["id"]: a for a in (await supervisor.call("GET", "/api/agents"))["items"]}
    assert board[agent.user["id"]]["state"] == "signed_out" and board[other.user["id"]]["capacity"] == 5
    async with acd_hub.hub.sessions() as session:
        actors = list(await session.scalars(select(PresenceLog.actor).where(PresenceLog.user_id == agent.user["id"])
                                            .order_by(PresenceLog.id)))
    assert actors == [None, supervisor.user["username"]]
    for staff in (supervisor, agent, other):
        await staff.close()


async def test_an_agent_cannot_read_another_teams_conversation(acd_hub, residents):
    hotline = (await ready_agents(acd_hub, 1))[0]
    billing = await acd_hub.staff(Role.AGENT, teams=["账务组"])
    said = await (await residents()).says("只给热线组看")
    await hotline.gets_assigned()
    base = f"/api/conversations/{said['conversation_id']}"
    for path in (base, base + "/messages"):
        denied = await billing.call("GET", path, expect=403)
        assert denied["error"]["message"] == "无权查看该会话"
    for path in ("/messages", "/notes"):
        await billing.call("POST", base + path, {"text": "越权写入"}, expect=403)
    await billing.call("POST", base + "/close", {"disposition": "consultation"}, expect=403)
    queues = (await billing.call("GET", "/api/queues"))["items"]
    assert [q["name"] for q in queues] == ["账务组"]
    for staff in (hotline, billing):
        await staff.close()


async def test_a_pass_assigning_many_reaches_a_watching_tab_in_few_frames_each_event_once_in_order(acd_hub, residents):
    """Twenty waiting chats taken at once by an agent who turns ready: the supervisor's tab, watching the team,
    gets the events that waited for it together as JSON arrays rather than a frame and a write each."""
    agent = await acd_hub.staff(Role.AGENT, max_chats=20)
    supervisor = await acd_hub.staff(Role.SUPERVISOR, listen=False)
    asked = [await (await residents()).says(f"第{n}位居民") for n in range(20)]
    waiting = [said["conversation_id"] for said in asked]
    for conversation_id in waiting:
        assert (await conversation(acd_hub, conversation_id)).state == "queued"

    tab = await supervisor.http.ws_connect(f"{acd_hub.url.replace('http', 'ws', 1)}/api/ws")
    await agent.becomes("ready")
    frames: list[Any] = []
    events: list[dict[str, Any]] = []
    while sum(e["type"] == "conversation" and e["conversation"]["state"] == "assigned" for e in events) < 20:
        frame = await tab.receive_json(timeout=10)
        frames.append(frame)
        events.extend(frame if isinstance(frame, list) else [frame])
    assigned = [e["conversation"]["id"] for e in events
                if e["type"] == "conversation" and e["conversation"]["state"] == "assigned"]
    assert sorted(assigned) == sorted(waiting)  # each once
    # Each assignment's system note comes before the conversation's event, as they were published.
    notes = [e["message"]["conversation_id"] for e in events if e["type"] == "message"]
    assert notes == assigned
    assert any(isinstance(frame, list) and len(frame) > 1 for frame in frames)
    assert len(frames) < len(events)
    await tab.close()
    for staff in (agent, supervisor):
        await staff.close()
