"""The web chat channel: visitor tokens, resume after reload, frames, uploads and their limits."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest
from sqlalchemy import func, select

from router.models import Message
from tests.conftest import outage_settings, start_hub
from tests.support.actors import Resident
from tests.support.files import png_bytes, visitor_upload


async def test_reload_resumes_the_same_conversation_with_its_history(http, running_hub, agent) -> None:
    first_visit = await Resident(http, running_hub.url).connect()
    said = await first_visit.says("请问营业厅几点下班")
    await agent.claims(said["conversation_id"])
    await agent.replies(said["conversation_id"], "营业厅工作日 8:30-17:30 营业")
    await first_visit.hears("agent")
    await first_visit.close()

    reload = await Resident(http, running_hub.url, token=first_visit.token).connect()
    try:
        assert reload.hello["conversation"]["id"] == said["conversation_id"]
        assert reload.hello["conversation"]["state"] == "assigned"
        assert [(m["author"], m["text"]) for m in reload.hello["messages"]] == [
            ("resident", "请问营业厅几点下班"), ("agent", "营业厅工作日 8:30-17:30 营业")]
    finally:
        await reload.close()


async def test_a_forged_token_is_refused(http, running_hub) -> None:
    ws = await http.ws_connect(f"{running_hub.url.replace('http', 'ws')}/webchat/ws", params={"token": "forged.x.y"})
    message = await ws.receive(timeout=5)
    assert message.type == aiohttp.WSMsgType.CLOSE and message.data == 4401


@pytest.mark.parametrize(("frame", "code"), [
    ("not json", "malformed_json"),
    ({"type": "shout"}, "unknown_frame"),
    ({"type": "message", "text": "缺少 client_id"}, "invalid_message"),
    ({"type": "message", "client_id": "bad id!", "text": "x"}, "invalid_message"),
    ({"type": "message", "client_id": "c" * 12, "text": "   "}, "invalid_message"),
    ({"type": "message", "client_id": "d" * 12, "text": "长" * 2001}, "invalid_message"),
    ({"type": "ack", "ids": "all"}, "invalid_ack"),
])
async def test_bad_frames_get_an_error_frame_and_the_socket_stays_open(resident: Resident, frame, code) -> None:
    await resident.send_raw(frame if isinstance(frame, str) else json.dumps(frame))
    error = await resident.expect(lambda f: f["type"] == "error")
    assert error["code"] == code and error["message"]
    await resident.send_raw({"type": "ping"})
    assert (await resident.expect(lambda f: f["type"] == "pong"))["type"] == "pong"
    assert resident.hello["conversation"] is None  # nothing was stored for the rejected frames


async def test_an_oversized_frame_closes_the_socket_with_1009(http, running_hub) -> None:
    resident = await Resident(http, running_hub.url).connect()
    await resident.send_raw(json.dumps({"type": "message", "client_id": "e" * 12, "text": "大" * 70000}))
    await resident.closed()
    assert resident.ws.close_code == 1009


async def test_typing_reaches_the_agent_and_back(resident: Resident, agent) -> None:
    said = await resident.says("我想问一下")
    await agent.claims(said["conversation_id"])
    await resident.send_raw({"type": "typing"})
    typing = await agent.sees(lambda e: e["type"] == "typing" and e["conversation_id"] == said["conversation_id"])
    assert typing["author"] == "resident"
    await agent.ws.send_json({"type": "typing", "conversation_id": said["conversation_id"]})
    assert (await resident.expect(lambda f: f["type"] == "typing"))["author"] == "agent"


async def test_image_upload_becomes_a_message_the_agent_can_open(http, resident: Resident, agent, running_hub) -> None:
    status, body = await visitor_upload(http, running_hub.url, resident.token, "../../etc/漏水.png", png_bytes())
    assert status == 201, body
    message = body["message"]
    assert message["type"] == "image"
    assert message["attachment"]["name"] == "漏水.png"
    assert message["attachment"]["content_type"] == "image/png"
    pushed = await resident.expect(lambda f: f["type"] == "message" and f["message"]["id"] == message["id"])
    link = pushed["message"]["attachment"]["url"]
    assert link.startswith(f"/files/{message['attachment']['file_id']}?s=")

    async with http.get(running_hub.url + link) as response:  # the widget: no cookie, only the link
        assert response.status == 200 and await response.read() == png_bytes()
        assert response.headers["X-Content-Type-Options"] == "nosniff"
    url = f"{running_hub.url}/files/{message['attachment']['file_id']}"
    async with agent.http.get(url) as response:  # staff: their session
        assert response.status == 200
    async with http.get(url) as response:  # neither a link nor staff
        assert response.status == 404
    async with http.get(url, params={"token": resident.token}) as response:  # the visitor's own token opens nothing
        assert response.status == 404


@pytest.mark.parametrize(("name", "data", "status", "code"), [
    ("a.exe", b"MZ\x90\x00" + b"\x00" * 100, 415, "unsupported_type"),
    ("fake.png", b"<html><script>alert(1)</script></html>", 415, "unsupported_type"),
    ("empty.txt", b"", 400, "empty_file"),
    ("big.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * (10 * 1024 * 1024 + 1), 413, "too_large"),
])
async def test_uploads_outside_the_limits_are_refused(http, resident: Resident, running_hub, name, data, status,
                                                      code) -> None:
    got, body = await visitor_upload(http, running_hub.url, resident.token, name, data)
    assert (got, body["error"]["code"]) == (status, code)


async def test_upload_needs_a_valid_token_and_multipart(http, running_hub) -> None:
    status, body = await visitor_upload(http, running_hub.url, None, "a.png", png_bytes())
    assert (status, body["error"]["code"]) == (401, "bad_token")
    resident = await Resident(http, running_hub.url).connect()
    async with http.post(f"{running_hub.url}/webchat/upload", json={"file": "x"},
                         headers={"X-Visitor-Token": resident.token}) as response:
        assert response.status == 415
    await resident.close()


async def test_widget_endpoints_allow_embedding_sites(http, running_hub) -> None:
    async with http.options(f"{running_hub.url}/webchat/upload", headers={
        "Origin": "https://www.example-water.cn", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "X-Visitor-Token"}) as response:
        assert response.status == 204
        assert response.headers["Access-Control-Allow-Origin"] == "*"
        assert "X-Visitor-Token" in response.headers["Access-Control-Allow-Headers"]
    async with http.get(f"{running_hub.url}/widget.js") as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("application/javascript")
        assert "shadow" in (await response.text()).lower()
    async with http.get(f"{running_hub.url}/api/auth/me", headers={"Origin": "https://evil.example"}) as response:
        assert "Access-Control-Allow-Origin" not in response.headers


async def test_a_flood_from_one_socket_is_throttled_without_losing_what_was_accepted(resident: Resident,
                                                                                      running_hub) -> None:
    burst = running_hub.hub.settings.webchat_message_burst
    client_ids = [f"flood-{i:04d}-{resident.hello['visitor_id'][:8]}" for i in range(burst + 5)]
    for client_id in client_ids:
        await resident.send_raw({"type": "message", "client_id": client_id, "text": "刷屏"})
    refused = [await resident.expect(lambda f: f["type"] == "error") for _ in range(3)]
    assert {r["code"] for r in refused} == {"rate_limited"}
    history = await resident.expect(lambda f: f["type"] == "message" and f["message"]["client_id"] == client_ids[0])
    async with running_hub.hub.sessions() as session:
        stored = await session.scalar(select(func.count()).select_from(Message).where(
            Message.conversation_id == history["message"]["conversation_id"], Message.direction == "in"))
    assert burst <= stored < len(client_ids)


async def test_messages_during_a_database_outage_are_accepted_and_stored_once_when_it_is_back(
    private_pg, tmp_path, http
) -> None:
    running = await start_hub(outage_settings(private_pg, tmp_path / "var"))
    resident = await Resident(http, running.url).connect()
    reload = None
    try:
        await resident.says("停电前的一条")
        private_pg.stop()
        await resident.send_raw({"type": "typing"})  # dropped while the database is away; the socket stays
        await resident.send_raw({"type": "message", "client_id": "outage-0000-0001", "text": "数据库停了"})
        accepted = await resident.expect(lambda f: f["type"] in {"accepted", "error"}, timeout=30)
        assert accepted == {"type": "accepted", "client_id": "outage-0000-0001"}
        reload = await Resident(http, running.url, token=resident.token).connect()  # a reload during the outage
        assert reload.hello["messages"] is None  # no history to show: the widget keeps what it shows
        await reload.send_raw({"type": "message", "client_id": "outage-0000-0001", "text": "数据库停了"})  # resent
        await reload.expect(lambda f: f["type"] == "accepted")
        private_pg.start()
        stored = await resident.expect(lambda f: f["type"] == "message"
                                       and f["message"]["client_id"] == "outage-0000-0001", timeout=60)
        # The resend journaled during the outage is replayed too (a duplicate, stored once).
        await asyncio.wait_for(running.hub.journal.drained.wait(), 30)
        again = await resident.says("数据库停了", client_id="outage-0000-0001")  # a resend once it is back
        assert stored["message"]["id"] == again["id"]
        async with running.hub.sessions() as session:
            assert await session.scalar(select(func.count()).select_from(Message).where(
                Message.channel_message_id == "outage-0000-0001")) == 1
    finally:
        for visitor in (resident, reload):
            if visitor is not None:
                await visitor.close()
        await running.runner.cleanup()
