"""Which staff see which work orders, with which phone numbers; what a service token may ask for."""

from __future__ import annotations

import uuid

import aiohttp

from router.models import Role
from tests.support.actors import Resident
from tests.support.files import png_bytes
from tests.workorders.conftest import LEAK, act

REPORT = {**LEAK, "address": None}  # no address: these orders are nobody's likely duplicate in other tests
PHONE = LEAK["contact_phone"]
MASKED = "*******5678"


async def test_agents_of_another_team_see_neither_the_order_nor_the_residents_orders(
        crew, running_hub, http) -> None:
    resident = await Resident(http, running_hub.url).connect()
    conversation_id = (await resident.says("路面冒水,请派人来修"))["conversation_id"]
    order = await crew["agent"].call("POST", "/api/workorders", {**REPORT, "conversation_id": conversation_id},
                                     expect=201)
    await crew["agent"].upload(f"/api/workorders/{order['id']}/attachments", "现场.png", png_bytes())
    photo = (await crew["agent"].call("GET", f"/api/workorders/{order['id']}"))["attachments"][0]["url"]
    outsider = await running_hub.staff(Role.AGENT, teams=[f"营业厅-{uuid.uuid4().hex[:6]}"], listen=False)
    try:
        await outsider.call("GET", f"/api/workorders/{order['id']}", expect=403)
        assert (await outsider.fetch(photo))[0] == 403
        stored = f"/files/{photo.rsplit('/', 1)[1]}"  # the same photo at the address of every stored file
        assert (await outsider.fetch(stored))[0] == 404
        assert (await crew["agent"].fetch(stored))[0] == 200
        listed = (await outsider.call("GET", "/api/workorders"))["items"]
        assert order["id"] not in [o["id"] for o in listed]
        for name in ("resident_of", "conversation_id"):
            await outsider.call("GET", f"/api/workorders?{name}={conversation_id}", expect=403)
        await act(outsider, order["id"], action="dispatch", department_id=crew["repair"]["id"], expect=403)
    finally:
        await outsider.close()
        await resident.close()


async def test_orders_without_a_chat_belong_to_the_hotline_team(crew, running_hub) -> None:
    order = await crew["supervisor"].call("POST", "/api/workorders", {**REPORT, "source": "phone"}, expect=201)
    hotline = await running_hub.staff(Role.AGENT, listen=False)
    outsider = await running_hub.staff(Role.AGENT, teams=[f"营业厅-{uuid.uuid4().hex[:6]}"], listen=False)
    try:
        assert (await hotline.call("GET", f"/api/workorders/{order['id']}"))["number"] == order["number"]
        await outsider.call("GET", f"/api/workorders/{order['id']}", expect=403)
        assert order["id"] not in [o["id"] for o in (await outsider.call("GET", "/api/workorders"))["items"]]
    finally:
        await hotline.close()
        await outsider.close()


async def test_phone_numbers_are_shown_only_to_who_needs_them(crew, running_hub, http) -> None:
    resident = await Resident(http, running_hub.url).connect()
    conversation_id = (await resident.says("楼下马路冒水"))["conversation_id"]
    serving = await running_hub.staff(Role.AGENT, listen=False)
    colleague = await running_hub.staff(Role.AGENT, listen=False)
    try:
        await serving.claims(conversation_id)
        body = {**REPORT, "category": "consultation", "description": f"居民留言:回电 {PHONE},或打家里电话",
                "conversation_id": conversation_id, "custom_fields": {"topic": f"水压(联系 {PHONE})"}}
        order = await serving.call("POST", "/api/workorders", body, expect=201)
        path = f"/api/workorders/{order['id']}"
        assert order["contact_phone"] == PHONE  # the agent serving the resident calls them back
        for reader in (colleague, serving):
            seen = [await reader.call("GET", path), *(await reader.call("GET", "/api/workorders",
                                                                        expect=200))["items"]]
            for shown in (o for o in seen if o["id"] == order["id"]):
                expected = PHONE if reader is serving else MASKED
                assert shown["contact_phone"] == expected, (reader.user["username"], shown["contact_phone"])
                assert (PHONE in shown["description"]) == (reader is serving)
                assert (PHONE in str(shown["custom_fields"])) == (reader is serving)
        await serving.closes(conversation_id)  # once the chat is over, the agent sees the masked number
        assert (await serving.call("GET", path))["contact_phone"] == MASKED

        await act(crew["supervisor"], order["id"], action="dispatch", department_id=crew["repair"]["id"])
        await act(crew["handler"], order["id"], action="assign", assignee_id=crew["field"].user["id"])
        for reader in ("supervisor", "handler", "field"):  # the crew calls the resident from /app/field
            shown = await crew[reader].call("GET", path)
            assert shown["contact_phone"] == PHONE and PHONE in shown["description"], reader
    finally:
        await serving.close()
        await colleague.close()
        await resident.close()


async def test_a_service_token_reads_orders_only_by_number_or_for_the_bots_own_chat(crew, running_hub,
                                                                                     http) -> None:
    resident = await Resident(http, running_hub.url).connect()
    conversation_id = (await resident.says("我要报修"))["conversation_id"]  # queued: no bot on this hub
    order = await crew["agent"].call("POST", "/api/workorders", {**REPORT, "conversation_id": conversation_id},
                                     expect=201)
    token = await running_hub.token(Role.AGENT)
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as service:
        async def get(path: str) -> tuple[int, dict]:
            async with service.get(running_hub.url + path) as response:
                return response.status, await response.json()

        status, listed = await get("/api/workorders")
        assert status == 200 and listed["items"] == [], listed
        assert (await get(f"/api/workorders/{order['id']}"))[0] == 403
        for name in ("resident_of", "conversation_id"):  # the chat is with people, not with the bot
            assert (await get(f"/api/workorders?{name}={conversation_id}"))[0] == 403
        status, found = await get(f"/api/workorders?number={order['number']}")  # what a resident asks the bot
        assert status == 200 and [o["id"] for o in found["items"]] == [order["id"]]
        assert found["items"][0]["contact_phone"] == MASKED
        async with service.post(f"{running_hub.url}/api/workorders",
                                json={**REPORT, "conversation_id": conversation_id, "source": "bot"}) as response:
            assert response.status == 403, await response.text()
    await resident.close()
