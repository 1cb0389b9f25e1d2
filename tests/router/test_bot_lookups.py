"""What the bot's service token learns about water accounts and work orders: only what the chatting resident
may see. Another resident's account or order is "found" and nothing more until the last four digits of the
phone registered on it are given; guesses are counted, and five in an hour stop the lookups."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import aiohttp
import pytest
from sqlalchemy import select

from router.access import BOT_TOKEN_NAME
from router.audit import AuditEntry
from router.billing import DemoBilling
from router.disclosure import ACCOUNT_CHANNEL, FAILURE_LIMIT, LOOKUP_FAILED
from router.models import ContactIdentity, Conversation, Role
from tests.support.actors import ActionServer, Resident

DEMO = DemoBilling()


@pytest.fixture
async def action_server(running_hub, http) -> ActionServer:
    return await ActionServer.of(running_hub, http)


@pytest.fixture
async def chatting(running_hub, http) -> AsyncIterator[tuple[Resident, int]]:
    """A web-chat resident who has written once, and their conversation's id."""
    resident = await Resident(http, running_hub.url).connect()
    said = await resident.says("你好,我想查一下")
    yield resident, said["conversation_id"]
    await resident.close()


def demo_account() -> tuple[str, str]:
    """A demo account nobody has linked yet (random, so tests do not share one) and its phone's last four."""
    while True:
        number = f"3{secrets.randbelow(10**7):07d}"
        phone = DEMO.phone(number)
        if phone is not None:
            return number, phone[-4:]


def unknown_account() -> str:
    while True:
        number = f"3{secrets.randbelow(10**7):07d}"
        if DEMO.phone(number) is None:
            return number


def other_digits(last4: str) -> str:
    return f"{(int(last4) + 1) % 10000:04d}"


async def contact_of(running_hub, conversation_id: int) -> int:
    async with running_hub.hub.sessions() as session:
        conversation = await session.get(Conversation, conversation_id)
        assert conversation is not None
        return conversation.contact_id


async def test_the_bots_token_reads_no_account_or_order_directly(running_hub, action_server, chatting) -> None:
    """The service token was an oracle: any account's holder and arrears, any order's state and staff."""
    _, conversation_id = chatting
    agent = await running_hub.staff(Role.AGENT, listen=False)
    try:
        order = await agent.call("POST", "/api/workorders", {
            "category": "leak_repair", "title": "水表井漏水", "description": "楼下水表井一直在冒水",
            "custom_fields": {"leak_location": "水表井"}, "contact_phone": "13812345678",
            "conversation_id": conversation_id}, expect=201)
        number, _ = demo_account()
        refused = await action_server.call("GET", f"/api/billing/account?number={number}", expect=403)
        assert refused["error"]["code"] == "bot_lookup_required"
        listed = await action_server.call("GET", f"/api/workorders?number={order['number']}")
        assert listed["items"] == []
        assert (await action_server.call("GET", "/api/workorders"))["items"] == []
        refused = await action_server.call("GET", f"/api/workorders/{order['id']}", expect=403)
        assert refused["error"]["code"] == "bot_lookup_required"
        contact_id = await contact_of(running_hub, conversation_id)  # the panel lists orders and bills
        refused = await action_server.call("GET", f"/api/contacts/{contact_id}", expect=403)
        assert refused["error"]["code"] == "bot_lookup_required"
        # Agents keep their full view.
        assert (await agent.call("GET", f"/api/billing/account?number={number}"))["holder"]
        assert (await agent.call("GET", f"/api/workorders?number={order['number']}"))["items"][0]["id"] == order["id"]
    finally:
        await agent.close()


async def test_an_unlinked_account_shows_nothing_until_the_phone_digits_match(running_hub, action_server,
                                                                                chatting) -> None:
    _, conversation_id = chatting
    number, last4 = demo_account()

    asked = await action_server.account(conversation_id, number)
    assert asked == {"found": True, "verified": False, "blocked": False, "account": None}

    wrong = await action_server.account(conversation_id, number, other_digits(last4))
    assert wrong == {"found": True, "verified": False, "blocked": False, "account": None}

    right = await action_server.account(conversation_id, number, last4)
    assert right["verified"] is True and right["blocked"] is False
    assert right["account"] == (await DEMO.account(number)).model_dump(mode="json")

    # Now linked to the resident: answered at once, without the digits.
    again = await action_server.account(conversation_id, number)
    assert again["verified"] is True and again["account"]["number"] == number
    contact_id = await contact_of(running_hub, conversation_id)
    async with running_hub.hub.sessions() as session:
        linked = await session.scalar(select(ContactIdentity.contact_id).where(
            ContactIdentity.channel == ACCOUNT_CHANNEL, ContactIdentity.external_id == number))
    assert linked == contact_id


async def test_an_account_linked_to_one_resident_stays_closed_to_another(running_hub, http, action_server,
                                                                          chatting) -> None:
    _, owner_conversation = chatting
    number, last4 = demo_account()
    assert (await action_server.account(owner_conversation, number, last4))["verified"] is True
    stranger = await Resident(http, running_hub.url).connect()
    try:
        said = await stranger.says(f"帮我查下户号{number}欠多少钱")
        answer = await action_server.account(said["conversation_id"], number)
        assert answer == {"found": True, "verified": False, "blocked": False, "account": None}
        # The right digits answer the stranger this once; the account stays linked to its owner.
        assert (await action_server.account(said["conversation_id"], number, last4))["verified"] is True
        assert (await action_server.account(said["conversation_id"], number))["account"] is None
    finally:
        await stranger.close()


async def test_five_failures_in_an_hour_stop_every_lookup(running_hub, http, action_server, chatting) -> None:
    _, conversation_id = chatting
    number, last4 = demo_account()
    answers = [await action_server.account(conversation_id, unknown_account()) for _ in range(2)]
    answers += [await action_server.account(conversation_id, number, other_digits(last4)) for _ in range(2)]
    assert [a["blocked"] for a in answers] == [False] * 4 and not any(a["account"] for a in answers)
    last = await action_server.order(conversation_id, "GD20000101-9999")  # an order that does not exist
    assert last == {"found": False, "verified": False, "blocked": True, "order": None}
    assert FAILURE_LIMIT == 5

    # Blocked: even the right digits show nothing, and orders are not looked up either.
    refused = await action_server.account(conversation_id, number, last4)
    assert refused == {"found": False, "verified": False, "blocked": True, "account": None}
    assert (await action_server.order(conversation_id))["blocked"] is True

    contact_id = await contact_of(running_hub, conversation_id)
    async with running_hub.hub.sessions() as session:
        entries = (await session.scalars(select(AuditEntry).where(
            AuditEntry.action == LOOKUP_FAILED, AuditEntry.target_id == str(contact_id)))).all()
        identity = await session.scalar(select(ContactIdentity).where(
            ContactIdentity.channel == ACCOUNT_CHANNEL, ContactIdentity.external_id == number))
    assert len(entries) == 5 and identity is None
    assert {e.details["reason"] for e in entries} == {"not_found", "wrong_digits"}
    assert all(e.actor == f"token:{BOT_TOKEN_NAME}" and last4 not in str(e.details) for e in entries)

    # Another resident is not held back by this one's guesses; the agents see who is.
    other = await Resident(http, running_hub.url).connect()
    supervisor = await running_hub.staff(Role.SUPERVISOR, listen=False)
    try:
        said = await other.says("查水费")
        assert (await action_server.account(said["conversation_id"], number, last4))["verified"] is True
        assert (await supervisor.call("GET", f"/api/contacts/{contact_id}"))["bot_lookups_blocked"] is True
        other_contact = await contact_of(running_hub, said["conversation_id"])
        assert (await supervisor.call("GET", f"/api/contacts/{other_contact}"))["bot_lookups_blocked"] is False
    finally:
        await other.close()
        await supervisor.close()


async def test_orders_show_their_progress_only_to_their_resident(running_hub, http, action_server,
                                                                 chatting) -> None:
    _, conversation_id = chatting
    agent = await running_hub.staff(Role.AGENT, listen=False)
    stranger = await Resident(http, running_hub.url).connect()
    try:
        order = await agent.call("POST", "/api/workorders", {
            "category": "leak_repair", "title": "楼道水管漏水", "description": "三楼楼道水管接头滴水",
            "custom_fields": {"leak_location": "小区内"}, "contact_phone": "13812345678",
            "conversation_id": conversation_id}, expect=201)
        own = await action_server.order(conversation_id, order["number"])
        assert own["verified"] is True and own["order"]["number"] == order["number"]
        assert own["order"]["state_label"] == order["state_label"] and own["order"]["category"] == "漏水报修"
        latest = await action_server.order(conversation_id)
        assert latest["order"]["number"] == order["number"]

        said = await stranger.says("我的工单到哪一步了")
        theirs = await action_server.order(said["conversation_id"], order["number"])
        assert theirs == {"found": True, "verified": False, "blocked": False, "order": None}
        assert (await action_server.order(said["conversation_id"], order["number"], "0000"))["order"] is None
        assert (await action_server.order(said["conversation_id"]))["found"] is False  # the stranger has none
        verified = await action_server.order(said["conversation_id"], order["number"], "5678")
        assert verified["verified"] is True and verified["order"]["state_label"] == order["state_label"]
    finally:
        await agent.close()
        await stranger.close()


async def test_only_the_bots_token_may_look_up_and_inputs_are_checked(running_hub, action_server,
                                                                      chatting) -> None:
    _, conversation_id = chatting
    agent = await running_hub.staff(Role.AGENT, listen=False)
    other_token = await running_hub.token(Role.AGENT)
    try:
        body = {"conversation_id": conversation_id, "number": demo_account()[0]}
        assert (await agent.call("POST", "/api/bot/account-lookup", body, expect=403))["error"]["code"] == "bot_only"
        async with aiohttp.ClientSession() as http:
            imposter = ActionServer(http, running_hub.url, other_token)
            assert (await imposter.account(conversation_id, body["number"], expect=403))["error"]["code"] == "bot_only"
        missing = await action_server.account(2**31 - 1, body["number"], expect=404)
        assert missing["error"]["code"] == "conversation_not_found"
        for bad in ({"number": "1234"}, {"number": "3１２３４５６７"}, {"phone_last4": "123"}, {"phone_last4": "12345"},
                    {"phone_last4": "１２３４"}, {"extra": 1}):
            await action_server.call("POST", "/api/bot/account-lookup", {**body, **bad}, expect=422)
        await action_server.call("POST", "/api/bot/order-lookup",
                                 {"conversation_id": conversation_id, "number": "GD1-1"}, expect=422)
    finally:
        await agent.close()
