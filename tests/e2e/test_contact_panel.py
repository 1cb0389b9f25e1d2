"""The customer 360 panel (contactpanel.js) in a signed-in agent's and supervisor's inbox: the resident's
identities, past conversations, work orders and bills; the bills' error when the billing system is down; the
supervisor's VIP and blacklist switches."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from playwright.async_api import Browser, Page, expect

from router.access import BOT_TOKEN_NAME, Principal
from router.api.billing import BILLING
from router.billing import DemoBilling
from router.disclosure import FAILURE_LIMIT, look_up_account
from router.models import Contact, Role
from tests.support.contacts import ACCOUNT_OF_ORDER, known_resident
from tests.support.pages import sign_in, watch_errors


@pytest.fixture(scope="module")
async def household(running_hub) -> AsyncIterator[dict[str, Any]]:
    agent = await running_hub.staff(Role.AGENT, listen=False)
    async with aiohttp.ClientSession() as http:
        known = await known_resident(running_hub, http, agent)
        yield {**known, "agent": agent}
        await known["resident"].close()
    await agent.close()


@pytest.fixture
async def panel_of(browser: Browser, running_hub, household) -> AsyncIterator[Callable[..., Any]]:
    """Opens /app/inbox as ``username`` and the household's conversation in ``tab``: the panel shows beside it."""
    errors: list[str] = []
    contexts = []

    async def open_panel(username: str, tab: str = "mine", conversation_id: int | None = None) -> Page:
        context = await browser.new_context()
        contexts.append(context)
        page = watch_errors(await context.new_page(), username, errors)
        await sign_in(page, running_hub.url, username, "/app/inbox")
        await page.click(f"[data-testid=tab-{tab}]")
        chosen = conversation_id or household["conversation_id"]
        await page.click(f"[data-testid=conversation-item][data-conversation-id='{chosen}']")
        return page

    yield open_panel
    for context in contexts:
        await context.close()
    assert errors == []


async def test_an_agent_sees_the_resident_across_channels_with_orders_and_bills(household, panel_of) -> None:
    page = await panel_of(household["agent"].user["username"])
    panel = page.locator("[data-testid=contact-panel]")
    await expect(panel).to_have_attribute("data-state", "ready")
    await expect(panel).to_have_attribute("data-contact-id", str(household["contact_id"]))

    identities = page.locator("[data-testid=contact-identity]")
    await expect(identities).to_have_count(3)
    await expect(identities.nth(0)).to_contain_text("网页")
    await expect(identities.nth(1)).to_have_text("短信+" + "*" * 9 + household["phone"][-4:])
    await expect(identities.nth(2)).to_have_text(f"户号{household['account']}")

    order = page.locator("[data-testid=contact-order]")
    await expect(order).to_have_count(1)
    await expect(order).to_contain_text(household["order"]["number"])
    await expect(order).to_contain_text("水费争议")
    await expect(order.get_by_role("link")).to_have_attribute("href", f"/app/orders?id={household['order']['id']}")

    bills = page.locator("[data-testid=contact-bill]")
    await expect(bills).to_have_count(2)
    await expect(bills.nth(0)).to_have_attribute("data-account", household["account"])
    await expect(bills.nth(1)).to_contain_text(f"户号 {ACCOUNT_OF_ORDER}")
    billed = await DemoBilling().account(ACCOUNT_OF_ORDER)
    assert billed is not None
    await expect(bills.nth(1).locator("[data-testid=contact-arrears]")).to_have_text(
        f"欠费 {billed.arrears:.2f} 元" if billed.arrears > 0 else "无欠费")
    await expect(page.locator("[data-testid=contact-bills-error]")).to_have_count(0)
    await expect(page.locator("[data-testid=contact-flag-vip]")).to_have_count(0)  # agents do not flag

    conversation = page.locator("[data-testid=contact-conversation]")
    await expect(conversation).to_have_count(1)
    await expect(conversation).to_contain_text("服务中")
    await conversation.click()  # the resident's history opens in the inbox
    await expect(page.locator("#conversation-meta")).to_contain_text("服务中")
    await expect(page.locator("[data-testid=reply-input]")).to_be_enabled()


async def test_the_panel_says_when_the_billing_system_is_down(household, panel_of, running_hub, monkeypatch) -> None:
    async def down(_number: str) -> None:
        raise ConnectionError("billing host unreachable")

    monkeypatch.setattr(running_hub.runner.app[BILLING], "account", down)
    page = await panel_of(household["agent"].user["username"])
    await expect(page.locator("[data-testid=contact-bills-error]")).to_have_text("账单系统暂不可用")
    await expect(page.locator("[data-testid=contact-bill]")).to_have_count(0)
    await expect(page.locator("[data-testid=contact-order]")).to_have_count(1)


async def test_a_supervisor_flags_the_resident_vip_and_blacklisted(household, panel_of, running_hub) -> None:
    supervisor = await running_hub.staff(Role.SUPERVISOR, listen=False)
    try:
        page = await panel_of(supervisor.user["username"], "monitor")
        vip, blacklist = (page.locator(f"[data-testid=contact-flag-{name}]") for name in ("vip", "blacklist"))
        await expect(vip).not_to_be_checked()
        await vip.check()
        await expect(page.locator("[data-testid=contact-vip]")).to_have_text("VIP")
        await expect(vip).to_be_enabled()
        await blacklist.check()
        await expect(page.locator("[data-testid=contact-blacklisted]")).to_have_text("黑名单")
        await expect(blacklist).to_be_enabled()
        async with running_hub.hub.sessions() as session:
            contact = await session.get(Contact, household["contact_id"])
            assert (contact.vip, contact.blacklisted) == (True, True)

        await vip.uncheck()
        await blacklist.uncheck()
        await expect(page.locator("[data-testid=contact-vip], [data-testid=contact-blacklisted]")).to_have_count(0)
        await expect(blacklist).to_be_enabled()
        view = await supervisor.call("GET", f"/api/contacts/{household['contact_id']}")
        assert (view["contact"]["vip"], view["contact"]["blacklisted"]) == (False, False)
        await expect(page.locator("[data-testid=contact-identity]").nth(1)).to_have_text(f"短信{household['phone']}")
    finally:
        await supervisor.close()


async def test_the_panel_tells_the_agent_when_the_bot_stopped_looking_up_for_the_resident(household, panel_of,
                                                                                         running_hub) -> None:
    # A resident of its own: the household's conversation may have been closed by the blacklist test.
    agent = household["agent"]
    async with aiohttp.ClientSession() as http:
        guesser = await known_resident(running_hub, http, agent)
        try:
            page = await panel_of(agent.user["username"], conversation_id=guesser["conversation_id"])
            await expect(page.locator("[data-testid=contact-panel]")).to_have_attribute("data-state", "ready")
            await expect(page.locator("[data-testid=contact-lookups-blocked]")).to_have_count(0)
            bot = Principal(role=Role.AGENT, username=f"token:{BOT_TOKEN_NAME}")
            unknown = next(n for n in (f"3{i:07d}" for i in range(1000)) if DemoBilling().phone(n) is None)
            for _ in range(FAILURE_LIMIT):
                answer = await look_up_account(running_hub.hub.sessions, DemoBilling(), bot,
                                               guesser["conversation_id"], unknown, None)
            assert answer.blocked
            page = await panel_of(agent.user["username"], conversation_id=guesser["conversation_id"])
            await expect(page.locator("[data-testid=contact-lookups-blocked]")).to_contain_text("智能客服已暂停")
        finally:
            await guesser["resident"].close()
