"""Call records (GET /api/calls…) and the IVR key statistics (GET /api/ivr/stats), on calls written through the
hub's call log as the voice adapter writes them, with a stored WAV as recording; the call log's writes."""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from urllib.parse import quote

import pytest
from sqlalchemy import select

from router.models import Call, CallEvent, CallEventKind, Role, utcnow
from tests.conftest import RunningHub
from tests.support.actors import Resident, Staff
from tests.support.calls import INVALID, TIMEOUT, far_day, new_number, record_call, wav_bytes


@pytest.fixture
async def supervisor(running_hub: RunningHub) -> AsyncIterator[Staff]:
    staff = await running_hub.staff(Role.SUPERVISOR, listen=False)
    yield staff
    await staff.close()


async def test_search_by_number_masked_and_paginated_newest_first(running_hub, supervisor) -> None:
    number = new_number()
    day = far_day()
    ids = [await record_call(running_hub, number, day + timedelta(minutes=i), [("main", ["1"])]) for i in range(3)]
    other = await record_call(running_hub, new_number(), day, [("main", [])])

    first = await supervisor.call("GET", f"/api/calls?number={number[-6:]}&limit=2")
    assert [c["id"] for c in first["items"]] == [ids[2], ids[1]]
    assert first["next_before_id"] == ids[1]
    assert all(c["caller"] == "+" + "*" * (len(number) - 5) + number[-4:] for c in first["items"])
    assert number not in str(first)
    second = await supervisor.call("GET", f"/api/calls?number={quote(number)}&limit=2&before_id={ids[1]}")
    assert [c["id"] for c in second["items"]] == [ids[0]] and second["next_before_id"] is None

    since, until = quote(day.isoformat()), quote((day + timedelta(minutes=1, seconds=30)).isoformat())
    ranged = await supervisor.call("GET", f"/api/calls?since={since}&until={until}&limit=100")
    assert {c["id"] for c in ranged["items"]} == {ids[0], ids[1], other}

    for bad in ("number=12", "number=abc123", "since=2031-01-01T00:00:00", "limit=0", "outcome=DROP%20TABLE"):
        assert (await supervisor.call("GET", f"/api/calls?{bad}", expect=422))["error"]


async def test_search_by_work_order_and_outcome(running_hub, supervisor) -> None:
    number, order = new_number(), f"WO{random.randrange(10**8):08d}"
    filed = await record_call(running_hub, number, far_day(), [("main", ["9"]), ("voicemail", [])],
                              outcome="voicemail", order_number=order)
    await record_call(running_hub, number, far_day(), [("main", ["1"])], outcome="self_service")
    found = await supervisor.call("GET", f"/api/calls?order={order}")
    assert [c["id"] for c in found["items"]] == [filed]
    by_outcome = await supervisor.call("GET", f"/api/calls?number={quote(number)}&outcome=voicemail")
    assert [c["id"] for c in by_outcome["items"]] == [filed]


async def test_search_by_a_work_order_of_the_calls_conversation(running_hub, http, supervisor) -> None:
    """An order filed by an agent in the conversation the call belongs to finds the call too."""
    resident = await Resident(http, running_hub.url).connect()
    try:
        conversation_id = (await resident.says("楼道水管漏水了"))["conversation_id"]
        category = (await supervisor.call("GET", "/api/workorder-categories"))["items"][0]
        order = await supervisor.call("POST", "/api/workorders", {
            "category": category["code"], "title": "楼道水管漏水", "description": "三楼楼道水管接头漏水",
            "address": "昆山市清源路18号", "conversation_id": conversation_id}, expect=201)
        call_id = await record_call(running_hub, new_number(), far_day(), [("main", ["0"])], outcome="agent",
                                    conversation_id=conversation_id)
        found = await supervisor.call("GET", f"/api/calls?order={order['number']}")
        assert [c["id"] for c in found["items"]] == [call_id]
    finally:
        await resident.close()


async def test_detail_with_path_keys_and_playable_recording(running_hub, supervisor) -> None:
    number = new_number()
    call_id = await record_call(running_hub, number, far_day(), [("main", ["2"]), ("bill", ["1", "2", "#"])])
    detail = await supervisor.call("GET", f"/api/calls/{call_id}")
    assert detail["ivr_path"] == ["main", "bill"]
    assert [(e["node"], e["key"]) for e in detail["events"] if e["kind"] == "key"] == [
        ("main", "2"), ("bill", "1"), ("bill", "2"), ("bill", "#")]
    assert detail["recording_url"] == f"/api/calls/{call_id}/recording"
    assert detail["hangup_side"] == "caller" and detail["duration_seconds"] > 0
    async with supervisor.http.get(supervisor.base_url + detail["recording_url"]) as response:
        assert response.status == 200 and response.content_type == "audio/wav"
        assert await response.read() == wav_bytes()

    bare = await record_call(running_hub, number, far_day(), [("main", [])], recording=False)
    assert (await supervisor.call("GET", f"/api/calls/{bare}"))["recording_url"] is None
    await supervisor.call("GET", f"/api/calls/{bare}/recording", expect=404)
    await supervisor.call("GET", "/api/calls/2147483000", expect=404)


async def test_agents_see_the_calls_of_conversations_they_see(running_hub, http) -> None:
    resident = await Resident(http, running_hub.url).connect()
    member = await running_hub.staff(Role.AGENT, listen=False)
    stranger = await running_hub.staff(Role.AGENT, teams=[f"别的组-{uuid.uuid4().hex[:6]}"], listen=False)
    handler = await running_hub.staff(Role.HANDLER, teams=[], listen=False)
    try:
        conversation_id = (await resident.says("我家停水了"))["conversation_id"]
        number = new_number()
        seen = await record_call(running_hub, number, far_day(), [("main", [])], conversation_id=conversation_id)
        orphan = await record_call(running_hub, number, far_day(), [("main", [])])

        listed = await member.call("GET", f"/api/calls?number={quote(number)}")
        assert [c["id"] for c in listed["items"]] == [seen]
        await member.call("GET", f"/api/calls/{seen}")
        await member.call("GET", f"/api/calls/{orphan}", expect=404)
        async with member.http.get(f"{running_hub.url}/api/calls/{seen}/recording") as response:
            assert response.status == 200

        assert (await stranger.call("GET", f"/api/calls?number={quote(number)}"))["items"] == []
        await stranger.call("GET", f"/api/calls/{seen}", expect=404)
        await stranger.call("GET", f"/api/calls/{seen}/recording", expect=404)
        await member.call("GET", "/api/ivr/stats", expect=403)

        await handler.call("GET", "/api/calls", expect=403)
        await handler.call("GET", f"/api/calls/{seen}", expect=403)
        async with http.get(f"{running_hub.url}/api/calls") as response:  # a resident: no staff session
            assert response.status == 401
        async with http.get(f"{running_hub.url}/api/calls/{seen}/recording") as response:
            assert response.status == 401
    finally:
        for staff in (member, stranger, handler):
            await staff.close()
        await resident.close()


async def test_ivr_key_statistics_per_node(running_hub, supervisor) -> None:
    day = far_day()
    await record_call(running_hub, new_number(), day, [("main", ["2"]), ("bill", ["1", "#"])],
                      outcome="self_service")
    await record_call(running_hub, new_number(), day + timedelta(hours=1),
                      [("main", ["7", INVALID, "2"]), ("bill", ["*"]), ("main", ["9", INVALID]), ("voicemail", [])],
                      outcome="voicemail")
    await record_call(running_hub, new_number(), day + timedelta(hours=2), [("main", [TIMEOUT])], outcome=None)
    await record_call(running_hub, new_number(), day + timedelta(days=1), [("main", ["3"])])  # out of range

    since, until = quote(day.isoformat()), quote((day + timedelta(hours=3)).isoformat())
    stats = await supervisor.call("GET", f"/api/ivr/stats?from={since}&to={until}")
    assert stats["calls"] == 3
    nodes = {n["node"]: n for n in stats["nodes"]}
    assert nodes["main"] == {"node": "main", "calls": 3, "entries": 4, "keys": {"2": 2, "7": 1, "9": 1},
                             "timeouts": 1, "invalid": 2, "ended": {"none": 1}}
    assert nodes["bill"] == {"node": "bill", "calls": 2, "entries": 2, "keys": {"1": 1, "#": 1, "*": 1},
                             "timeouts": 0, "invalid": 0, "ended": {"self_service": 1}}
    assert nodes["voicemail"] == {"node": "voicemail", "calls": 1, "entries": 1, "keys": {}, "timeouts": 0,
                                  "invalid": 0, "ended": {"voicemail": 1}}
    assert [n["node"] for n in stats["nodes"]] == ["main", "bill", "voicemail"]
    await supervisor.call("GET", "/api/ivr/stats?from=2031-01-01T00:00:00", expect=422)


async def test_an_event_and_the_call_facts_it_sets_are_one_write(running_hub: RunningHub) -> None:
    """Together or not at all: a hub stopping between them cannot leave a record a restarted hub misreads (one
    that says connected without its ``connect`` event)."""
    calls = running_hub.hub.calls
    call_id = await calls.open(f"test-{uuid.uuid4()}", new_number(), "962740", utcnow())
    await calls.event(call_id, CallEventKind.CONNECT, detail={"agent_id": None},
                      fields={"connected_at": utcnow(), "outcome": "agent"})
    with pytest.raises(ValueError, match="not a call field"):
        await calls.event(call_id, CallEventKind.SURVEY, detail={"score": 5}, fields={"ended_at": utcnow()})
    with pytest.raises(ValueError, match="unknown call event kind"):
        await calls.event(call_id, "chat", fields={"outcome": "abandoned"})

    async with running_hub.hub.sessions() as session:
        call = await session.get(Call, call_id)
        kinds = list(await session.scalars(select(CallEvent.kind).where(CallEvent.call_id == call_id)))
    assert (call.connected_at is not None, call.outcome, call.ended_at) == (True, "agent", None)
    assert kinds == ["connect"]  # the refused writes left neither their event nor their fields
