"""请给我回电 in headless Chromium: a resident asks from the widget (typing the number with spaces, then changing
their mind about it), an agent takes the request on the call records page, sees the full number, and records
that the resident was reached."""

from __future__ import annotations

from playwright.async_api import Browser, expect

from router.models import Role
from tests.support.pages import sign_in, watch_errors, widget


async def test_a_resident_asks_for_a_call_and_an_agent_calls_back(browser: Browser, running_hub) -> None:
    agent = await running_hub.staff(Role.AGENT, listen=False)
    resident_context, agent_context = await browser.new_context(), await browser.new_context()
    errors: list[str] = []
    try:
        page = watch_errors(await resident_context.new_page(), "resident", errors)
        await page.goto(f"{running_hub.url}/#chat")
        await expect(widget(page, "webchat-panel")).to_be_visible()
        await widget(page, "webchat-callback-open").click()
        await widget(page, "webchat-callback-phone").fill("12345")
        await widget(page, "webchat-callback-submit").click()
        await expect(widget(page, "webchat-status")).to_contain_text("请填写正确的手机号")
        await widget(page, "webchat-callback-phone").fill("139 0013 9007")
        await widget(page, "webchat-callback-note").fill("下午在家")
        await widget(page, "webchat-callback-submit").click()
        await expect(widget(page, "webchat-callback-done")).to_contain_text("+*********9007，尽快")
        await expect(widget(page, "webchat-callback")).to_be_hidden()
        await widget(page, "webchat-callback-open").click()  # a change of mind: another number
        await widget(page, "webchat-callback-phone").fill("13900139008")
        await widget(page, "webchat-callback-submit").click()
        await expect(widget(page, "webchat-callback-done")).to_have_count(2)

        desk = watch_errors(await agent_context.new_page(), "agent", errors)
        await sign_in(desk, running_hub.url, agent.user["username"], "/app/calls")
        mine = desk.locator("[data-testid=callback-row]").filter(has_text="下午在家")
        await expect(mine).to_have_count(0)  # the second request replaced the note
        request = desk.locator("[data-testid=callback-row]").filter(has_text="+*********9008")
        await expect(request).to_have_count(1)
        await request.locator("[data-testid=callback-take]").click()
        await expect(desk.locator("[data-testid=callback-number]")).to_have_text("+8613900139008")
        await expect(request.locator("[data-testid=callback-state]")).to_have_text("回电中")
        await request.locator("[data-testid=callback-reached]").click()
        await expect(request).to_have_count(0)
        await expect(desk.locator("[data-testid=callback-dial]")).to_be_hidden()
    finally:
        await resident_context.close()
        await agent_context.close()
        await agent.close()
    assert errors == []
