"""The callback list (router/callbacks.py): a web chat resident asks to be called back, changes their mind, clicks
twice; agents take, call and finish; bad numbers and times are refused; only the taker sees the number."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import aiohttp
from sqlalchemy import func, select

from router.callbacks import MAX_ATTEMPTS
from router.models import CallbackRequest, Message, Role, utcnow
from tests.conftest import RunningHub
from tests.support.actors import Resident


async def ask(http: aiohttp.ClientSession, hub: RunningHub, resident: Resident, *, token: str | None = None,
              **body: Any) -> tuple[int, Any]:
    payload = {"client_id": uuid.uuid4().hex, **body}
    headers = {"X-Visitor-Token": token if token is not None else resident.token or ""}
    async with http.post(f"{hub.url}/webchat/callback", json=payload, headers=headers) as response:
        return response.status, await response.json()


async def active_requests(hub: RunningHub, conversation_id: int) -> list[CallbackRequest]:
    async with hub.hub.sessions() as session:
        return list(await session.scalars(select(CallbackRequest).where(
            CallbackRequest.conversation_id == conversation_id, CallbackRequest.state.in_(["open", "taken"]))))


async def test_a_resident_asks_changes_their_mind_and_an_agent_calls_back(
        http: aiohttp.ClientSession, running_hub: RunningHub, resident: Resident) -> None:
    await resident.says("家里没水了")
    status, first = await ask(http, running_hub, resident, phone="138 0013 8000", note="下午在家")
    assert status == 201, first
    assert first["callback"]["phone"] == "+*********8000" and first["callback"]["when"] == "尽快"
    assert first["message"]["type"] == "event" and "请给我回电" in first["message"]["text"]
    assert "13800138000" not in str(first)  # masked to the resident's widget too
    conversation_id = first["message"]["conversation_id"]

    # A change of mind: another number, a time tomorrow. Still one request, now with those.
    tomorrow = (utcnow() + timedelta(days=1)).replace(microsecond=0)
    status, second = await ask(http, running_hub, resident, phone="010-6512 3456", preferred_after=tomorrow.isoformat())
    assert status == 201 and second["callback"]["id"] == first["callback"]["id"]
    [request] = await active_requests(running_hub, conversation_id)
    assert (request.phone, request.preferred_after, request.note) == ("+861065123456", tomorrow, None)

    # The widget's retry of one request (the same client id) stores one event message.
    client_id = uuid.uuid4().hex
    for _ in range(2):
        async with http.post(f"{running_hub.url}/webchat/callback", headers={"X-Visitor-Token": resident.token},
                             json={"client_id": client_id, "phone": "13900139000"}) as response:
            assert response.status == 201
    async with running_hub.hub.sessions() as session:
        events = await session.scalar(select(func.count()).select_from(Message).where(
            Message.conversation_id == conversation_id, Message.channel_message_id == f"callback-{client_id}"))
    assert events == 1

    agent = await running_hub.staff(Role.AGENT, listen=False)
    other = await running_hub.staff(Role.AGENT, listen=False)
    supervisor = await running_hub.staff(Role.SUPERVISOR, listen=False)
    try:
        listed = {item["id"]: item for item in (await agent.call("GET", "/api/callbacks"))["items"]}
        item = listed[request.id]
        assert item["phone"] == "+*********9000" and item["state"] == "open" and "full_phone" not in item

        status, body = await other.attempt("POST", f"/api/callbacks/{request.id}/finish", {"outcome": "reached"})
        assert (status, body["error"]["code"]) == (409, "callback_not_taken")
        taken = await agent.call("POST", f"/api/callbacks/{request.id}/take")
        assert taken["full_phone"] == "+8613900139000" and taken["state"] == "taken"
        assert (await agent.call("POST", f"/api/callbacks/{request.id}/take"))["state"] == "taken"  # a double click
        status, body = await other.attempt("POST", f"/api/callbacks/{request.id}/take")
        assert (status, body["error"]["code"]) == (409, "callback_taken")
        status, body = await other.attempt("POST", f"/api/callbacks/{request.id}/finish", {"outcome": "reached"})
        assert (status, body["error"]["code"]) == (409, "callback_taken")

        # No answer: back on the list for anyone, until the last attempt closes it as unreachable.
        for attempt in range(1, MAX_ATTEMPTS + 1):
            if attempt > 1:
                await (agent if attempt % 2 else other).call("POST", f"/api/callbacks/{request.id}/take")
            taker = agent if attempt % 2 else other
            after = await taker.call("POST", f"/api/callbacks/{request.id}/finish",
                                     {"outcome": "no_answer", "note": f"第{attempt}次无人接听"})
            assert after["attempts"] == attempt
            assert after["state"] == ("unreachable" if attempt == MAX_ATTEMPTS else "open")
        assert request.id not in {i["id"] for i in (await agent.call("GET", "/api/callbacks"))["items"]}
        closed = (await supervisor.call("GET", "/api/callbacks?state=unreachable"))["items"]
        assert request.id in {i["id"] for i in closed}
        status, body = await agent.attempt("POST", f"/api/callbacks/{request.id}/take")
        assert (status, body["error"]["code"]) == (409, "callback_closed")

        # Asking again after that is a new request; a supervisor may cancel one an agent has taken.
        status, fresh = await ask(http, running_hub, resident, phone="13900139000")
        assert status == 201 and fresh["callback"]["id"] != request.id
        await agent.call("POST", f"/api/callbacks/{fresh['callback']['id']}/take")
        cancelled = await supervisor.call("POST", f"/api/callbacks/{fresh['callback']['id']}/finish",
                                          {"outcome": "cancelled", "note": "居民已来电解决"})
        assert cancelled["state"] == "cancelled"

        audit = (await running_hub.staff(Role.ADMIN, listen=False))
        try:
            entries = await audit.call("GET", f"/api/audit?action=callback.take&target_id={request.id}")
            assert len(entries["items"]) == MAX_ATTEMPTS + 1  # every showing of the number, the double click's too
        finally:
            await audit.close()
    finally:
        for person in (agent, other, supervisor):
            await person.close()


async def test_bad_callback_requests_are_refused_and_nothing_is_stored(
        http: aiohttp.ClientSession, running_hub: RunningHub, resident: Resident) -> None:
    said = await resident.says("想预约回电")
    past = (utcnow() - timedelta(hours=1)).isoformat()
    too_far = (utcnow() + timedelta(days=8)).isoformat()
    naive = (utcnow() + timedelta(hours=1)).replace(tzinfo=None).isoformat()
    for body, code in [({"phone": "12345"}, "bad_phone"), ({"phone": "请回电"}, "bad_phone"),
                       ({"phone": "13800138000", "preferred_after": past}, "time_passed"),
                       ({"phone": "13800138000", "preferred_after": too_far}, "time_too_far"),
                       ({"phone": "13800138000", "preferred_after": naive}, "invalid"),
                       ({"phone": "13800138000", "note": "长" * 201}, "invalid"),
                       ({"phone": "13800138000", "extra": 1}, "invalid")]:
        status, answer = await ask(http, running_hub, resident, **body)
        assert (status, answer["error"]["code"]) == (422, code), body
    status, answer = await ask(http, running_hub, resident, token="forged", phone="13800138000")
    assert (status, answer["error"]["code"]) == (401, "bad_token")
    async with http.post(f"{running_hub.url}/webchat/callback", data=b"{not json",
                         headers={"X-Visitor-Token": resident.token}) as response:
        assert response.status == 400
    async with running_hub.hub.sessions() as session:
        texts = list(await session.scalars(select(Message.text).where(
            Message.conversation_id == said["conversation_id"], Message.direction == "in")))
        stored = await session.scalar(select(func.count()).select_from(CallbackRequest).where(
            CallbackRequest.conversation_id == said["conversation_id"]))
    assert texts == ["想预约回电"] and stored == 0  # no event, no request
