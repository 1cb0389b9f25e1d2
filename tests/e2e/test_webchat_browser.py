"""A resident in the widget and an agent on the agent page, each in their own browser."""

from __future__ import annotations

import asyncio
import re

from playwright.async_api import Browser, expect

from router.models import Role
from tests.support.files import png_bytes
from tests.support.pages import sign_in, watch_errors, widget

RESIDENT_MESSAGE = "你好,我家楼下马路在冒水,地址是清源路18号"
AGENT_REPLY = "收到,抢修人员30分钟内到达,请注意安全"




async def test_resident_and_agent_chat_across_browsers_and_history_survives_reload(
    browser: Browser, running_hub
) -> None:
    base = running_hub.url
    agent_user = await running_hub.staff(Role.AGENT, listen=False)
    errors: list[str] = []
    agent_context = await browser.new_context()
    resident_context = await browser.new_context(viewport={"width": 412, "height": 860})
    try:
        agent = await agent_context.new_page()
        agent.on("pageerror", lambda e: errors.append(f"agent: {e}"))
        await sign_in(agent, base, agent_user.user["username"])
        await agent.click("[data-testid=tab-queued]")

        resident = await resident_context.new_page()
        resident.on("pageerror", lambda e: errors.append(f"resident: {e}"))
        await resident.goto(f"{base}/#chat")
        await expect(widget(resident, "webchat-panel")).to_be_visible()
        await widget(resident, "webchat-input").fill(RESIDENT_MESSAGE)
        await widget(resident, "webchat-input").press("Enter")
        mine = widget(resident, "webchat-message").filter(has_text=RESIDENT_MESSAGE)
        await expect(mine).to_have_attribute("data-author", "resident")
        await expect(mine).to_have_attribute("data-message-id", re.compile(r"^\d+$"))

        # The agent's page shows the new conversation live, without a reload.
        item = agent.locator("[data-testid=conversation-item][data-state=queued]").filter(has_text="清源路18号")
        await expect(item).to_be_visible()
        await item.click()
        await expect(agent.locator("[data-testid=agent-message][data-author=resident]")).to_contain_text(
            RESIDENT_MESSAGE)
        await agent.click("[data-testid=claim]")
        await expect(agent.locator("[data-testid=reply-input]")).to_be_enabled()
        await agent.fill("[data-testid=reply-input]", AGENT_REPLY)
        await agent.click("[data-testid=reply-send]")

        reply = widget(resident, "webchat-message").filter(has_text=AGENT_REPLY)
        await expect(reply).to_have_attribute("data-author", "agent")
        # The widget acknowledged the reply; the agent sees it delivered.
        # (a whole suite on two cores can hold the send back a few seconds)
        await expect(agent.locator("[data-testid=agent-message][data-author=agent]")).to_contain_text(
            "已送达", timeout=15000)

        await resident.reload()
        await expect(widget(resident, "webchat-panel")).to_be_visible()
        history = widget(resident, "webchat-message")
        await expect(history.filter(has_text=RESIDENT_MESSAGE)).to_have_attribute("data-author", "resident")
        await expect(history.filter(has_text=AGENT_REPLY)).to_have_attribute("data-author", "agent")
        texts = await history.all_inner_texts()
        assert [i for i, t in enumerate(texts) if RESIDENT_MESSAGE in t] < [
            i for i, t in enumerate(texts) if AGENT_REPLY in t]  # in the order they were said
        await resident.screenshot(path=str(running_hub.hub.settings.var_dir / "resident-after-reload.png"))
        assert errors == []
    finally:
        await agent_context.close()
        await resident_context.close()
        await agent_user.close()


async def test_staff_pages_run_under_a_strict_content_security_policy(browser: Browser, running_hub) -> None:
    violations: list[str] = []
    context = await browser.new_context()
    try:
        page = await context.new_page()
        page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
        response = await page.goto(f"{running_hub.url}/app/login")
        assert "script-src 'self'" in response.headers["content-security-policy"]
        assert response.headers["x-frame-options"] == "DENY"
        await page.fill("#username", "nobody")
        await page.fill("#password", "wrong-password")
        await page.click("[data-testid=login-submit]")
        await expect(page.locator("[data-testid=login-error]")).to_contain_text("用户名或密码错误")
        assert violations == []
    finally:
        await context.close()


async def test_widget_retries_a_throttled_message_until_the_hub_takes_it(browser: Browser, running_hub) -> None:
    context = await browser.new_context()
    try:
        page = await context.new_page()
        await page.goto(f"{running_hub.url}/#chat")
        box = widget(page, "webchat-input")
        burst = running_hub.hub.settings.webchat_message_burst
        for i in range(burst + 2):  # faster than any person types
            await box.fill(f"第{i}条")
            await box.press("Enter")
        last = widget(page, "webchat-message").filter(has_text=f"第{burst + 1}条")
        await expect(last).to_have_attribute("data-message-id", re.compile(r"^\d+$"), timeout=15000)
        await expect(widget(page, "webchat-message").and_(page.locator("[data-pending=true]"))).to_have_count(0)
    finally:
        await context.close()


async def test_a_photo_in_the_widget_keeps_working_by_renewed_links_and_after_a_reload(
        browser: Browser, running_hub, http) -> None:
    errors: list[str] = []
    context = await browser.new_context()
    try:
        page = watch_errors(await context.new_page(), "resident", errors)
        await page.clock.install()  # the widget's timers run on a clock the test moves
        await page.goto(f"{running_hub.url}/#chat")
        await widget(page, "webchat-input").fill("水表井里的照片,请看")
        await widget(page, "webchat-input").press("Enter")
        await expect(widget(page, "webchat-message").filter(has_text="水表井")).to_have_attribute(
            "data-message-id", re.compile(r"^\d+$"))
        await widget(page, "webchat-file").set_input_files(
            files=[{"name": "水表.png", "mimeType": "image/png", "buffer": png_bytes(8, 8)}])
        thumb = widget(page, "webchat-message").locator("a.thumb")
        await expect(thumb.locator("img")).to_have_js_property("naturalWidth", 8)
        first = await thumb.get_attribute("href")
        assert first is not None and "/files/" in first and "?s=" in first and "token=" not in first

        await asyncio.sleep(1.1)  # a link renewed in a later second differs from the first
        async with page.expect_response(lambda r: r.url.endswith("/webchat/file-links")) as renewal:
            await page.clock.fast_forward("08:01")  # minutes: the widget renews its links before they expire
        assert (await renewal.value).status == 200
        await expect(thumb).not_to_have_attribute("href", first)
        async with http.get(await thumb.get_attribute("href")) as response:
            assert response.status == 200 and await response.read() == png_bytes(8, 8)

        await page.reload()
        await expect(widget(page, "webchat-message").locator("a.thumb img")).to_have_js_property("naturalWidth", 8)
        assert errors == []
    finally:
        await context.close()
