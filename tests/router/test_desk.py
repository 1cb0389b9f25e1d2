"""The agent's desk through the API: internal notes and whispers (never sent to the resident), closing with a
consultation type, canned replies in their three scopes, and whom a conversation can be transferred to."""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select

from router.models import Conversation, Direction, Message, Role
from tests.support.actors import Resident, Staff
from tests.support.files import png_bytes


async def assigned_chat(acd_hub, residents, text: str = "你好,想咨询一下水费") -> tuple[Staff, Resident, dict]:
    agent = await acd_hub.staff(Role.AGENT)
    await agent.becomes("ready")
    resident = await residents()
    said = await resident.says(text)
    await agent.gets_assigned(said["conversation_id"])
    return agent, resident, said


async def test_notes_and_whispers_reach_staff_only(acd_hub, residents) -> None:
    agent, resident, said = await assigned_chat(acd_hub, residents)
    boss = await acd_hub.staff(Role.SUPERVISOR, teams=[])
    base = f"/api/conversations/{said['conversation_id']}"

    note = await agent.call("POST", base + "/notes", {"text": "居民户号待核实"}, expect=201)
    whisper = await boss.call("POST", base + "/notes", {"text": "先查一下是否有停水公告"}, expect=201)
    assert (note["direction"], note["payload"]["kind"]) == ("internal", "note")
    assert (whisper["direction"], whisper["payload"]["kind"], whisper["author_name"]) == (
        "internal", "whisper", boss.user["display_name"])
    seen = await agent.sees(lambda e: e["type"] == "message" and e["message"]["id"] == whisper["id"])
    assert seen["message"]["text"] == "先查一下是否有停水公告"

    await agent.replies(said["conversation_id"], "您好,请提供户号")
    heard = await resident.hears("agent")
    assert heard["text"] == "您好,请提供户号"  # the reply arrives; the notes before it never do
    assert not [f for f in resident.frames.unclaimed() if f.get("type") == "message" and "公告" in str(f)]
    listed = (await agent.call("GET", base))["last_message"]
    assert listed["text"] == "您好,请提供户号"  # a note is never a conversation's preview
    async with acd_hub.hub.sessions() as session:
        internal = await session.scalar(select(func.count()).select_from(Message).where(
            Message.conversation_id == said["conversation_id"], Message.direction == Direction.INTERNAL,
            Message.author == "agent"))
        assert internal == 2

    await agent.call("POST", base + "/notes", {"text": "   "}, expect=422)
    await agent.call("POST", base + "/notes", {"text": "长" * 2001}, expect=422)
    for staff in (agent, boss):
        await staff.close()


async def test_a_conversation_closes_with_a_known_consultation_type(acd_hub, residents) -> None:
    agent, _, said = await assigned_chat(acd_hub, residents)
    admin = await acd_hub.staff(Role.ADMIN, teams=[])
    base = f"/api/conversations/{said['conversation_id']}"
    types = (await agent.call("GET", "/api/dispositions"))["items"]
    assert {"consultation", "repair", "complaint"} <= {t["code"] for t in types}
    assert all(t["label"] for t in types)

    refused = await agent.call("POST", base + "/close", {"disposition": "no_such_type"}, expect=422)
    assert refused["error"]["code"] == "unknown_disposition"
    async with acd_hub.hub.sessions() as session:
        assert (await session.get(Conversation, said["conversation_id"])).state == "assigned"  # nothing changed

    await admin.call("PUT", "/api/dispositions", {"code": "invalid", "label": "无效会话", "active": False})
    assert "invalid" not in {t["code"] for t in (await agent.call("GET", "/api/dispositions"))["items"]}
    assert "invalid" in {t["code"] for t in (await admin.call("GET", "/api/dispositions?all=true"))["items"]}
    await agent.call("POST", base + "/close", {"disposition": "invalid"}, expect=422)
    await agent.call("PUT", "/api/dispositions", {"code": "x", "label": "x"}, expect=403)

    closed = await agent.call("POST", base + "/close", {"disposition": "billing"})
    assert (closed["state"], closed["disposition"]) == ("closed", "billing")
    for staff in (agent, admin):
        await staff.close()


async def test_canned_replies_in_three_scopes(acd_hub) -> None:
    agent = await acd_hub.staff(Role.AGENT)
    other = await acd_hub.staff(Role.AGENT, teams=["账务组"])
    boss = await acd_hub.staff(Role.SUPERVISOR, teams=[])
    shared = (await agent.call("GET", "/api/canned-replies"))["items"]
    assert {"nh", "dz", "hh"} <= {r["shortcut"] for r in shared} and {r["scope"] for r in shared} == {"global"}

    mine = await agent.call("POST", "/api/canned-replies", {"shortcut": "nh", "text": "您好,我是小王"}, expect=201)
    assert mine["scope"] == "personal"
    await agent.call("POST", "/api/canned-replies", {"shortcut": "nh", "text": "again"}, expect=409)
    await agent.call("POST", "/api/canned-replies", {"shortcut": "g1", "text": "全体", "scope": "global"},
                     expect=403)
    await agent.call("POST", "/api/canned-replies", {"shortcut": "bad code", "text": "x"}, expect=422)
    await agent.call("POST", "/api/canned-replies", {"shortcut": "t", "text": "x", "scope": "team"}, expect=422)

    queues = {q["name"]: q["team_id"] for q in (await boss.call("GET", "/api/queues"))["items"]}
    team_reply = await boss.call("POST", "/api/canned-replies", {
        "shortcut": "zd", "text": "账务组专用", "scope": "team", "team_id": queues["账务组"]}, expect=201)

    listed = (await agent.call("GET", "/api/canned-replies"))["items"]
    assert listed[0]["id"] == mine["id"]  # one's own first, before the shared one of the same shortcut
    assert team_reply["id"] not in {r["id"] for r in listed}  # another team's
    assert team_reply["id"] in {r["id"] for r in (await other.call("GET", "/api/canned-replies"))["items"]}
    assert mine["id"] not in {r["id"] for r in (await other.call("GET", "/api/canned-replies"))["items"]}

    await other.call("PUT", f"/api/canned-replies/{mine['id']}", {"shortcut": "nh", "text": "改"}, expect=404)
    await other.call("DELETE", f"/api/canned-replies/{team_reply['id']}", expect=403)
    changed = await agent.call("PUT", f"/api/canned-replies/{mine['id']}", {"shortcut": "nh2", "text": "您好!"})
    assert (changed["shortcut"], changed["text"]) == ("nh2", "您好!")
    await agent.call("DELETE", f"/api/canned-replies/{mine['id']}", expect=204)
    assert mine["id"] not in {r["id"] for r in (await agent.call("GET", "/api/canned-replies"))["items"]}
    for staff in (agent, other, boss):
        await staff.close()


async def test_transfer_targets_and_a_transfer_with_a_note(acd_hub, residents) -> None:
    agent, resident, said = await assigned_chat(acd_hub, residents, "水表箱漏水,想找懂维修的")
    colleague = await acd_hub.staff(Role.AGENT)
    await colleague.becomes("busy")
    stranger = await acd_hub.staff(Role.AGENT, teams=["账务组"])
    await stranger.becomes("ready")
    asleep = await acd_hub.staff(Role.AGENT)  # never signs in

    targets = await agent.call("GET", "/api/transfer-targets")
    ids = {a["id"] for a in targets["agents"]}
    assert colleague.user["id"] in ids and agent.user["id"] in ids
    assert stranger.user["id"] not in ids and asleep.user["id"] not in ids
    assert {"热线坐席", "账务组"} <= {t["name"] for t in targets["teams"]}

    moved = await agent.call("POST", f"/api/conversations/{said['conversation_id']}/transfer",
                             {"agent_id": colleague.user["id"], "note": "居民要求上门维修"})
    assert moved["assignee"]["id"] == colleague.user["id"]
    got = await colleague.gets_assigned(said["conversation_id"])
    assert got["id"] == said["conversation_id"]
    messages = (await colleague.call("GET", f"/api/conversations/{said['conversation_id']}/messages"))["items"]
    assert [m["text"] for m in messages if (m["payload"] or {}).get("kind") == "transfer_note"] == ["居民要求上门维修"]
    await asyncio.sleep(0.3)
    assert not [f for f in resident.frames.unclaimed() if "上门维修" in str(f)]
    for staff in (agent, colleague, stranger, asleep):
        await staff.close()


async def test_an_agent_sends_the_resident_an_image_and_a_document(acd_hub, residents) -> None:
    agent, resident, said = await assigned_chat(acd_hub, residents, "能发一张缴费单的样例吗")
    colleague = await acd_hub.staff(Role.AGENT)
    base = f"/api/conversations/{said['conversation_id']}"
    picture = png_bytes(4, 3)

    sent = await agent.upload(base + "/attachments", "缴费单样例.png", picture)
    assert (sent["type"], sent["attachment"]["name"], sent["attachment"]["size"]) == (
        "image", "缴费单样例.png", len(picture))
    heard = await resident.hears("agent")
    assert heard["type"] == "image" and heard["attachment"]["url"].startswith(sent["attachment"]["url"] + "?s=")
    async with resident.http.get(f"{acd_hub.url}{heard['attachment']['url']}") as response:  # the resident's link
        assert response.status == 200 and await response.read() == picture
    async with resident.http.get(f"{acd_hub.url}{sent['attachment']['url']}") as response:
        assert response.status == 404  # without the link, nobody else's

    document = await agent.upload(base + "/attachments", "办理须知.txt", "带上身份证和房产证".encode())
    assert document["type"] == "file"
    assert (await resident.hears("agent"))["attachment"]["name"] == "办理须知.txt"

    refused = await agent.upload(base + "/attachments", "run.sh", b"#!/bin/sh\nrm -rf /\n", expect=415)
    assert refused["error"]["code"] == "unsupported_type"
    await colleague.upload(base + "/attachments", "x.png", picture, expect=403)  # not their chat
    async with acd_hub.hub.sessions() as session:
        files = await session.scalar(select(func.count()).select_from(Message).where(
            Message.conversation_id == said["conversation_id"], Message.author == "agent",
            Message.type.in_(["image", "file"])))
        assert files == 2
    for staff in (agent, colleague):
        await staff.close()
