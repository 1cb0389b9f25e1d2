"""The customer 360 panel's API: a resident across channels with their conversations, orders and bills; who may
read it, phone numbers masked for agents, a billing system that is down or slow, and the VIP/blacklist flags."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from router.api import contacts
from router.api.billing import BILLING
from router.billing import DemoBilling
from router.logs import configure_logging
from router.models import Role
from tests.support.actors import Resident
from tests.support.contacts import ACCOUNT_OF_ORDER, known_resident


@pytest.fixture(scope="module")
async def household(running_hub) -> AsyncIterator[dict[str, Any]]:
    agent = await running_hub.staff(Role.AGENT)
    supervisor = await running_hub.staff(Role.SUPERVISOR, listen=False)
    async with aiohttp.ClientSession() as http:
        known = await known_resident(running_hub, http, agent)
        yield {**known, "agent": agent, "supervisor": supervisor}
        await known["resident"].close()
    await agent.close()
    await supervisor.close()


async def test_the_panel_shows_identities_conversations_orders_and_bills(household) -> None:
    agent = household["agent"]
    view = await agent.call("GET", f"/api/contacts/{household['contact_id']}")

    assert view["contact"]["id"] == household["contact_id"]
    assert view["contact"]["display_name"].startswith("访客")
    assert [i["channel"] for i in view["identities"]] == ["webchat", "sms", "account"]
    sms = next(i for i in view["identities"] if i["channel"] == "sms")
    assert sms["external_id"] == "+" + "*" * 9 + household["phone"][-4:]

    (conversation,) = view["conversations"]
    assert conversation["id"] == household["conversation_id"]
    assert (conversation["state"], conversation["channel"]) == ("assigned", "webchat")
    assert conversation["team"]["name"] == "热线坐席"
    assert conversation["agent_name"] == agent.user["display_name"]

    (order,) = view["orders"]
    assert (order["number"], order["category"]["code"]) == (household["order"]["number"], "billing_dispute")

    assert view["accounts"] == [household["account"], ACCOUNT_OF_ORDER]
    expected = [await DemoBilling().account(n) for n in view["accounts"]]
    assert view["bills"] == [json.loads(a.model_dump_json()) for a in expected if a is not None]
    assert {b["number"] for b in view["bills"]} == {household["account"], ACCOUNT_OF_ORDER}
    assert view["bills"][0]["bills"] and "arrears" in view["bills"][0]
    assert view["bills_error"] is None


async def test_a_closed_conversation_names_the_agent_who_served_it_and_its_disposition(running_hub) -> None:
    agent = await running_hub.staff(Role.AGENT, listen=False)
    async with aiohttp.ClientSession() as http:
        resident = await Resident(http, running_hub.url).connect()
        said = await resident.says("请问怎么交水费")
        await agent.claims(said["conversation_id"])
        closed = await agent.closes(said["conversation_id"], "billing")
        view = await agent.call("GET", f"/api/contacts/{closed['contact']['id']}")
        await resident.close()
    (conversation,) = view["conversations"]
    assert (conversation["state"], conversation["disposition"], conversation["disposition_label"]) == (
        "closed", "billing", "水费账单")
    assert conversation["agent_name"] == agent.user["display_name"] and conversation["closed_at"]
    assert (view["orders"], view["accounts"], view["bills"], view["bills_error"]) == ([], [], [], None)
    await agent.close()


async def test_supervisors_see_the_whole_phone_number(household) -> None:
    view = await household["supervisor"].call("GET", f"/api/contacts/{household['contact_id']}")
    sms = next(i for i in view["identities"] if i["channel"] == "sms")
    assert sms["external_id"] == household["phone"]


async def test_an_agent_of_another_team_may_not_read_the_resident(running_hub, household) -> None:
    outsider = await running_hub.staff(Role.AGENT, teams=["抄表组"], listen=False)
    try:
        refused = await outsider.call("GET", f"/api/contacts/{household['contact_id']}", expect=403)
        assert refused["error"]["code"] == "forbidden"
        missing = await outsider.call("GET", "/api/contacts/999999999", expect=404)
        assert missing["error"]["code"] == "contact_not_found"
    finally:
        await outsider.close()


async def test_when_the_billing_system_is_down_the_rest_of_the_panel_is_answered(running_hub, household,
                                                                                 monkeypatch) -> None:
    async def down(_number: str) -> None:
        raise ConnectionError("billing host unreachable")

    monkeypatch.setattr(running_hub.runner.app[BILLING], "account", down)
    view = await household["agent"].call("GET", f"/api/contacts/{household['contact_id']}")
    assert (view["bills"], view["bills_error"]) == (None, "账单系统暂不可用")
    assert view["accounts"] == [household["account"], ACCOUNT_OF_ORDER]
    assert view["conversations"] and view["orders"] and view["identities"]


async def test_a_slow_billing_system_is_given_up_on(running_hub, household, monkeypatch) -> None:
    async def slow(_number: str) -> None:
        await asyncio.sleep(30)

    monkeypatch.setattr(running_hub.runner.app[BILLING], "account", slow)
    monkeypatch.setattr(contacts, "BILLING_TIMEOUT_SECONDS", 0.3)
    started = time.monotonic()
    view = await household["agent"].call("GET", f"/api/contacts/{household['contact_id']}")
    assert time.monotonic() - started < 5
    assert view["bills"] is None and view["bills_error"].startswith("账单系统暂不可用")
    assert view["orders"][0]["number"] == household["order"]["number"]


async def test_only_supervisors_flag_a_resident_and_everyone_sees_it(household, capsys) -> None:
    agent, supervisor = household["agent"], household["supervisor"]
    contact = f"/api/contacts/{household['contact_id']}"
    refused = await agent.call("PUT", f"{contact}/flags", {"vip": True, "blacklisted": False}, expect=403)
    assert refused["error"]["code"] == "role_forbidden"

    configure_logging("INFO", json=True)
    try:
        flagged = await supervisor.call("PUT", f"{contact}/flags", {"vip": True, "blacklisted": True})
        logged = [json.loads(line) for line in capsys.readouterr().err.splitlines() if "contact flags" in line]
    finally:
        configure_logging("WARNING")
    assert (flagged["id"], flagged["vip"], flagged["blacklisted"]) == (household["contact_id"], True, True)
    (entry,) = logged
    assert entry["actor"] == supervisor.user["username"] and entry["vip"] is True
    assert entry["before"] == {"vip": False, "blacklisted": False}

    event = await agent.sees(lambda e: e["type"] == "conversation"
                             and e["conversation"]["id"] == household["conversation_id"]
                             and e["conversation"]["contact"]["vip"])
    assert event["conversation"]["contact"]["blacklisted"] is True
    assert event["conversation"]["last_message"] is not None
    view = await agent.call("GET", contact)
    assert (view["contact"]["vip"], view["contact"]["blacklisted"]) == (True, True)
    conversation = await agent.call("GET", f"/api/conversations/{household['conversation_id']}")
    assert conversation["contact"]["vip"] is True

    cleared = await supervisor.call("PUT", f"{contact}/flags", {"vip": False, "blacklisted": False})
    assert (cleared["vip"], cleared["blacklisted"]) == (False, False)
    missing = await supervisor.call("PUT", "/api/contacts/999999999/flags", {"vip": True, "blacklisted": False},
                                    expect=404)
    assert missing["error"]["code"] == "contact_not_found"
