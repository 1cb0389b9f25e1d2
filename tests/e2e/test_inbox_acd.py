"""Several agents at once in their own browsers on /app/inbox, chats assigned by the ACD as residents write."""

from __future__ import annotations

import asyncio
import re

import pytest
from playwright.async_api import expect

from router.models import Role
from tests.support.desks import assignee_of, conversation


# The sweep is a minute away, so a seat filled within seconds was filled by the close itself.
@pytest.mark.parametrize("acd_hub", [{"acd_sweep_seconds": 60}], indirect=True)
async def test_a_waiting_chat_goes_to_the_agent_who_frees_a_seat_never_to_the_away_one(acd_hub, desks, residents):
    busy, away = await desks(max_chats=1), await desks(max_chats=1)
    await busy.becomes("ready")
    await away.becomes("away", "培训")
    for desk in (busy, away):
        await desk.show("mine")

    first = await (await residents()).says("第一位居民:水表在漏水")
    await expect(busy.page.locator("[data-testid=toast]")).to_have_text(re.compile("^新会话已分配"))
    await expect(busy.my_chats()).to_have_count(1)
    await expect(busy.load()).to_have_text("接待 1/1")

    second = await (await residents()).says("第二位居民:大家都忙吗")
    await asyncio.sleep(1)
    assert (await conversation(acd_hub, second["conversation_id"])).state == "queued"
    await expect(away.my_chats()).to_have_count(0)

    await busy.my_chats().first.click()
    await busy.closes_open_chat("repair")
    await expect(busy.my_chats()).to_have_count(1)
    await expect(busy.my_chats()).to_have_attribute("data-conversation-id", str(second["conversation_id"]))
    closed = await conversation(acd_hub, first["conversation_id"])
    taken = await conversation(acd_hub, second["conversation_id"])
    assert taken.assignee_id == busy.staff.user["id"]
    assert (taken.assigned_at - closed.closed_at).total_seconds() < 10  # the freed seat is filled at once
    await expect(away.my_chats()).to_have_count(0)
    await expect(away.load()).to_have_text("接待 0/1")


@pytest.mark.parametrize("strategy", ["round_robin", "least_busy"])
async def test_thirty_chats_are_spread_evenly(acd_hub, desks, residents, strategy):
    supervisor = await acd_hub.staff(Role.SUPERVISOR, listen=False)
    team_id = (await supervisor.call("GET", "/api/queues"))["items"][0]["team_id"]
    await supervisor.call("PUT", f"/api/queues/{team_id}", {"strategy": strategy})
    agents = [await desks(max_chats=20) for _ in range(3)]
    for desk in agents:
        await desk.becomes("ready")
        await desk.show("mine")
    people = [await residents() for _ in range(30)]
    said = await asyncio.gather(*(person.says(f"第{n}位居民求助") for n, person in enumerate(people, 1)))
    owners = [await assignee_of(acd_hub, message["conversation_id"]) for message in said]
    counts = [owners.count(desk.staff.user["id"]) for desk in agents]
    assert sum(counts) == 30 and max(counts) - min(counts) <= 2, counts  # each within ±1 of ten
    for desk, count in zip(agents, counts, strict=True):
        await expect(desk.my_chats()).to_have_count(count)  # every chat reached its agent's inbox, live
        await expect(desk.load()).to_have_text(f"接待 {count}/20")
    await supervisor.close()


async def test_a_returning_resident_gets_the_same_agent_and_a_long_wait_overflows(acd_hub, desks, residents):
    supervisor = await acd_hub.staff(Role.SUPERVISOR, listen=False)
    hotline = await desks()
    colleague = await desks()
    night = await desks(teams=["夜间组"])
    queues = {q["name"]: q["team_id"] for q in (await supervisor.call("GET", "/api/queues"))["items"]}
    await supervisor.call("PUT", f"/api/queues/{queues['热线坐席']}",
                          {"strategy": "round_robin", "prefer_last_agent": True,
                           "overflow_team_id": queues["夜间组"], "overflow_after_seconds": 5})
    await hotline.becomes("ready")
    await colleague.becomes("ready")
    for desk in (hotline, colleague, night):
        await desk.show("mine")

    resident = await residents()
    first = await resident.says("我家水压很低")
    server = hotline if await assignee_of(acd_hub, first["conversation_id"]) == hotline.staff.user["id"] else colleague
    await server.staff.closes(first["conversation_id"])
    again = await resident.says("还是很低,还是找刚才那位")
    await expect(server.my_chats()).to_have_attribute("data-conversation-id", str(again["conversation_id"]))
    assert (await conversation(acd_hub, again["conversation_id"])).assignee_id == server.staff.user["id"]

    # Everyone of the hotline away: after five seconds the night team's agent gets the chat.
    await hotline.becomes("away")
    await colleague.becomes("busy")
    await night.becomes("ready")
    late = await (await residents()).says("白班都不在吗")
    await expect(night.my_chats()).to_have_attribute("data-conversation-id", str(late["conversation_id"]),
                                                     timeout=10_000)
    moved = await conversation(acd_hub, late["conversation_id"])
    assert moved.assignee_id == night.staff.user["id"]
    assert (moved.assigned_at - moved.queued_at).total_seconds() >= 5
    await supervisor.close()


async def test_a_supervisor_takes_over_and_the_resident_hears_the_new_voice(acd_hub, desks, residents):
    agent = await desks()
    boss = await desks(Role.SUPERVISOR, teams=[])
    await agent.becomes("ready")
    await agent.show("mine")
    resident = await residents()
    said = await resident.says("我要投诉抄表员")
    await expect(agent.my_chats()).to_have_count(1)

    await boss.show("monitor")
    await boss.page.click(f"[data-testid=conversation-item][data-conversation-id='{said['conversation_id']}']")
    await boss.page.click("[data-testid=take-over]")
    await expect(boss.page.locator("[data-testid=reply-input]")).to_be_enabled()
    await boss.page.fill("[data-testid=reply-input]", "您好,我是值班班长,由我来处理")
    await boss.page.click("[data-testid=reply-send]")
    heard = await resident.hears("agent")
    assert (heard["text"], heard["author_name"]) == ("您好,我是值班班长,由我来处理", boss.staff.user["display_name"])
    await expect(agent.my_chats()).to_have_count(0)
    taken = await conversation(acd_hub, said["conversation_id"])
    assert taken.assignee_id == boss.staff.user["id"]
    await expect(agent.load()).to_have_text("接待 0/5")
