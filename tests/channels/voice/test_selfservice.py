"""Keypad self-service answers from the bot's back ends under the bot's rules: an account or order is read out
only to a caller ringing from its registered phone; others hear it exists and are sent to a person; unknown
numbers count towards the same lock-out."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import func, select

from channels.voice.selfservice import PHRASES, Caller, SelfService, order_number
from channels.voice.walk import Lookup
from router.api.billing import BILLING
from router.audit import AuditEntry
from router.disclosure import FAILURE_LIMIT, LOOKUP_FAILED
from router.models import Role
from tests.router.test_bot_lookups import DEMO, demo_account, unknown_account
from tests.support.actors import Resident
from tests.workorders.test_bulletin import window
from workorders.api import WORKORDERS


@pytest.fixture
def selfservice(running_hub) -> SelfService:
    app = running_hub.runner.app
    return SelfService(running_hub.hub.sessions, app[BILLING], app[WORKORDERS])


@pytest.fixture
async def conversation(running_hub, http) -> AsyncIterator[int]:
    """A conversation of its own for each test: the lock-out counts per contact."""
    resident = await Resident(http, running_hub.url).connect()
    said = await resident.says("你好")
    yield said["conversation_id"]
    await resident.close()


def test_an_order_number_is_typed_as_its_digits() -> None:
    assert order_number("202612060001") == "GD20261206-0001"
    assert order_number("20261206123456") == "GD20261206-123456"
    assert order_number("2026120600") is None
    assert order_number("2026120600011234567") is None
    assert order_number("20261206000a") is None


async def test_an_account_is_read_out_to_a_caller_on_its_registered_phone(selfservice, conversation) -> None:
    number, _ = demo_account()
    caller = Caller(conversation, DEMO.phone(number))
    account = await DEMO.account(number)
    assert account is not None
    outcome = await selfservice.answer(Lookup("bill", number), caller, "zh")
    assert outcome.found
    assert "三" in outcome.text and "户号" in outcome.text  # 3xxxxxxx read digit by digit
    assert ("没有欠费" in outcome.text) == (account.arrears == 0)
    assert "账单" in outcome.text and "元" in outcome.text
    english = await selfservice.answer(Lookup("bill", number), caller, "en")
    assert english.text.startswith("Account three") and "yuan" in english.text


async def test_another_callers_account_is_only_said_to_exist(selfservice, conversation, running_hub) -> None:
    number, last4 = demo_account()
    stranger = Caller(conversation, f"1390000{(int(last4) + 1) % 10000:04d}")
    outcome = await selfservice.answer(Lookup("bill", number), stranger, "zh")
    assert outcome.found and outcome.text == PHRASES["not_yours"]["zh"]
    assert "欠费" not in outcome.text
    async with running_hub.hub.sessions() as session:
        failures = await session.scalar(select(func.count()).select_from(AuditEntry).where(
            AuditEntry.action == LOOKUP_FAILED, AuditEntry.details["conversation_id"].as_integer() == conversation))
    assert failures == 1


async def test_unknown_numbers_are_not_found_and_lock_the_lookups(selfservice, conversation) -> None:
    caller = Caller(conversation, "13912345678")
    assert not (await selfservice.answer(Lookup("bill", "12345678"), caller, "zh")).found  # not an account number
    for _ in range(FAILURE_LIMIT - 1):
        assert not (await selfservice.answer(Lookup("bill", unknown_account()), caller, "zh")).found
    last = await selfservice.answer(Lookup("bill", unknown_account()), caller, "zh")
    assert last.found and last.text == PHRASES["blocked"]["zh"]  # told at once, not asked to type again
    number, _ = demo_account()
    owner = Caller(conversation, DEMO.phone(number))
    locked = await selfservice.answer(Lookup("bill", number), owner, "zh")
    assert locked.found and locked.text == PHRASES["blocked"]["zh"]


async def test_a_work_order_and_an_application_by_their_digits(selfservice, conversation, running_hub) -> None:
    agent = await running_hub.staff(Role.AGENT, listen=False)
    phone = f"139{secrets.randbelow(10**8):08d}"
    try:
        leak = await agent.call("POST", "/api/workorders", {
            "category": "leak_repair", "title": "水表井漏水", "description": "楼下水表井一直在冒水",
            "custom_fields": {"leak_location": "水表井"}, "contact_phone": phone}, expect=201)
        application = await agent.call("POST", "/api/workorders", {
            "category": "service_application", "title": "业务申请:过户", "description": "房屋买卖后过户",
            "custom_fields": {"application_type": "过户"}, "contact_phone": phone}, expect=201)
    finally:
        await agent.close()
    caller = Caller(conversation, phone)
    typed = leak["number"].removeprefix("GD").replace("-", "")
    outcome = await selfservice.answer(Lookup("work_order", typed), caller, "zh")
    assert outcome.found and "工单" in outcome.text and "漏水" in outcome.text
    assert "二零" in outcome.text  # the number read digit by digit

    stranger = Caller(conversation, "13700000000")
    assert (await selfservice.answer(Lookup("work_order", typed), stranger, "zh")).text == PHRASES["not_yours"]["zh"]
    # A repair order is no application, and an application is found by its own number.
    assert not (await selfservice.answer(Lookup("application", typed), caller, "zh")).found
    typed_application = application["number"].removeprefix("GD").replace("-", "")
    progress = await selfservice.answer(Lookup("application", typed_application), caller, "en")
    assert progress.found and progress.text.startswith("Work order G D two zero")


async def test_outage_notices_of_the_callers_district_and_of_everywhere(selfservice, running_hub) -> None:
    supervisor = await running_hub.staff(Role.SUPERVISOR, listen=False)
    mark = secrets.token_hex(3)
    try:
        for title, districts in ((f"花桥停水{mark}", ["huaqiao"]), (f"周庄停水{mark}", ["zhouzhuang"]),
                                 (f"全市降压{mark}", [])):
            await supervisor.call("POST", "/api/notices", {
                "kind": "planned_outage", "title": title, "body": "今晚施工,请提前储水。", "districts": districts,
                **window(-1, 3)}, expect=201)
    finally:
        await supervisor.close()
    caller = Caller(1, None)
    huaqiao = await selfservice.answer(Lookup("outage", "huaqiao"), caller, "zh")
    assert huaqiao.found
    assert f"花桥停水{mark}" in huaqiao.text and f"全市降压{mark}" in huaqiao.text
    assert f"周庄停水{mark}" not in huaqiao.text
    everywhere = await selfservice.answer(Lookup("outage", None), caller, "zh")
    assert all(f"{place}{mark}" in everywhere.text for place in ("花桥停水", "周庄停水", "全市降压"))
