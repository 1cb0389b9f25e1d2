"""The voice menu page in headless Chromium: an admin changes a prompt and a key and saves, and the API (what
the next call loads) has the new menu; a menu with a key to a missing node and a loop without exit is refused
with its reasons shown by node; an agent can neither open the page nor call its API."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Browser, Page, expect

from channels.voice.menus import current_menu
from router.models import Role
from tests.conftest import RunningHub
from tests.support.actors import Staff
from tests.support.ivr import DEAD_LOOP
from tests.support.pages import sign_in, watch_errors


@pytest.fixture
async def admin(acd_hub: RunningHub) -> AsyncIterator[Staff]:
    staff = await acd_hub.staff(Role.ADMIN, listen=False)
    yield staff
    await staff.close()


async def editor_text(page: Page) -> str:
    return await page.locator("[data-testid=ivr-yaml]").input_value()


async def test_an_admin_edits_the_menu_and_invalid_menus_are_refused(browser: Browser, acd_hub: RunningHub,
                                                                      admin: Staff) -> None:
    errors: list[str] = []
    context = await browser.new_context()
    page = watch_errors(await context.new_page(), "admin", errors)
    try:
        await sign_in(page, acd_hub.url, admin.user["username"], "/app/admin")
        await page.click("[data-testid=nav-ivr]")
        await expect(page).to_have_url(f"{acd_hub.url}/app/ivr")
        main = page.locator("[data-testid=ivr-tree] > ul > li[data-node=main]")
        await expect(main.locator(":scope > ul > li[data-key='4']")).to_have_attribute("data-node", "repair")
        await expect(main.locator(":scope > [data-testid=ivr-prompt]").first).to_contain_text("查询水费和欠费请按1")
        await expect(page.locator("[data-testid=version-row]")).to_have_count(1)

        # A new welcome, and the leak report moves from key 4 to key 6.
        text = await editor_text(page)
        text = text.replace("您好,欢迎致电自来水公司服务热线。", "您好,这里是供水抢修热线。").replace(
            '      "4": repair\n      "5": application\n      "9": language_switch\n',
            '      "5": application\n      "6": repair\n      "9": language_switch\n', 1)
        await page.fill("[data-testid=ivr-yaml]", text)
        await page.click("[data-testid=ivr-save]")
        await expect(page.locator("[data-testid=ivr-status]")).to_contain_text("已保存为版本")
        await expect(main.locator(":scope > ul > li[data-key='6']")).to_have_attribute("data-node", "repair")
        await expect(main.locator(":scope > ul > li[data-key='4']")).to_have_count(0)
        await expect(page.locator("[data-testid=version-row]")).to_have_count(2)
        await expect(page.locator("[data-testid=version-row]").first.locator("[data-testid=version-state]")
                     ).to_have_text("当前")
        served = await admin.call("GET", "/api/ivr/menu")
        assert served["tree"]["prompts"]["welcome"]["zh"] == "您好,这里是供水抢修热线。"
        assert served["tree"]["nodes"]["main"]["keys"]["6"] == "repair" and "4" not in served["tree"]["nodes"]["main"][
            "keys"]
        assert (await current_menu(acd_hub.hub.sessions)).menu.nodes["main"].keys["6"] == "repair"  # the next call

        # A key to a missing node and two menus leading only to each other: refused, the reasons by node.
        broken = (await editor_text(page)).replace('      "6": repair\n', '      "6": repair\n      "7": nowhere\n'
                                                   '      "8": loop_a\n', 1) + DEAD_LOOP
        await page.fill("[data-testid=ivr-yaml]", broken)
        await page.click("[data-testid=ivr-save]")
        problems = page.locator("[data-testid=ivr-problem]")
        await expect(problems.filter(has_text="按键 7 指向不存在的节点 nowhere")).to_have_attribute("data-node", "main")
        await expect(problems.filter(has_text="构成死循环")).to_have_attribute("data-node", "loop_a")
        await expect(page.locator("[data-testid=ivr-status]")).to_contain_text("未保存")
        assert await editor_text(page) == broken  # kept for fixing
        await expect(page.locator("[data-testid=version-row]")).to_have_count(2)
        assert (await admin.call("GET", "/api/ivr/menu"))["version"] == served["version"]

        await page.click("[data-testid=ivr-reset]")
        await expect(page.locator("[data-testid=ivr-problems]")).to_be_hidden()
        assert await editor_text(page) == served["yaml"]
    finally:
        await context.close()
    assert errors == []


async def test_an_agent_cannot_open_or_call_the_menu(browser: Browser, acd_hub: RunningHub) -> None:
    agent = await acd_hub.staff(Role.AGENT, listen=False)
    context = await browser.new_context()
    errors: list[str] = []
    page = watch_errors(await context.new_page(), "agent", errors)
    try:
        await sign_in(page, acd_hub.url, agent.user["username"], "/app/ivr")
        await expect(page.locator("[data-testid=ivr-denied]")).to_be_visible()
        await expect(page.locator("[data-testid=ivr]")).to_be_hidden()
        await expect(page.locator("[data-testid=nav-ivr]")).to_have_count(0)
        refused = await agent.call("GET", "/api/ivr/menu", expect=403)
        assert refused["error"]["code"] == "role_forbidden"
        await agent.call("PUT", "/api/ivr/menu", {"yaml": "languages: [zh]"}, expect=403)
    finally:
        await context.close()
        await agent.close()
    assert errors == []
