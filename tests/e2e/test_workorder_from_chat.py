"""An agent turns a resident's webchat report into a work order from the agent page."""

from __future__ import annotations

import re

from playwright.async_api import Browser, expect

from router.models import Role
from tests.support.orders import PHONE, resident_reports
from tests.support.pages import sign_in, watch_errors, widget

RESIDENT_MESSAGE = "楼下马路在冒水,清源路18号"
ORDER_NUMBER = re.compile(r"GD\d{8}-\d{4,}")


async def test_agent_creates_a_work_order_from_a_chat_and_the_resident_gets_its_number(
    browser: Browser, running_hub
) -> None:
    base = running_hub.url
    agent_user = await running_hub.staff(Role.AGENT, listen=False)
    errors: list[str] = []
    agent_context = await browser.new_context()
    resident_context = await browser.new_context(**PHONE)
    try:
        resident, _ = await resident_reports(resident_context, base, errors, RESIDENT_MESSAGE)
        agent = watch_errors(await agent_context.new_page(), "agent", errors)
        await sign_in(agent, base, agent_user.user["username"])
        await agent.click("[data-testid=tab-queued]")
        item = agent.locator("[data-testid=conversation-item][data-state=queued]").filter(has_text=RESIDENT_MESSAGE)
        await item.click()
        await expect(agent.locator("[data-testid=agent-message][data-author=resident]")).to_contain_text(
            RESIDENT_MESSAGE)

        # Only the agent serving the conversation may create an order from it.
        create = agent.locator("[data-testid=create-order]")
        await expect(create).to_be_hidden()
        await agent.click("[data-testid=claim]")
        await expect(create).to_be_visible()
        await create.click()

        form = agent.locator("[data-testid=order-form]")
        await expect(form).to_be_visible()
        await form.locator("[data-testid=order-category]").select_option("leak_repair")
        await expect(form.locator("[data-testid=order-title]")).to_have_value(f"漏水报修:{RESIDENT_MESSAGE}")
        await expect(form.locator("[data-testid=order-description]")).to_have_value(RESIDENT_MESSAGE)
        await form.locator("[data-testid=order-address]").fill("清源路18号")
        location_selector = "select[data-field=leak_location]"
        location = form.locator(location_selector)
        await expect(location.locator("option")).to_have_text(["请选择", "路面", "小区内", "户内", "水表井", "消防栓"])

        # The hub refuses an order without the required leak location; the error shows next to that field.
        await form.locator("[data-testid=order-submit]").click()
        await expect(location).to_have_attribute("aria-invalid", "true")
        field_error = form.locator(".field", has=agent.locator(location_selector)).locator(".field-error")
        await expect(field_error).to_be_visible()
        await expect(field_error).to_have_text("此项为必填")
        await expect(form).to_be_visible()

        await location.select_option(label="路面")
        await expect(field_error).to_be_hidden()
        await form.locator("[data-testid=order-submit]").click()
        await expect(form).to_be_hidden()
        toast = agent.locator("[data-testid=toast]")
        await expect(toast).to_have_text(re.compile(r"^工单已创建:GD\d{8}-\d{4,}$"))
        match = ORDER_NUMBER.search(await toast.inner_text())
        assert match is not None
        number = match.group(0)

        # The hub tells the resident in the chat.
        notice = widget(resident, "webchat-message").filter(has_text=number)
        await expect(notice).to_have_attribute("data-author", "system")
        await expect(notice).to_contain_text("您反映的问题已受理")
        assert errors == []
    finally:
        await agent_context.close()
        await resident_context.close()
        await agent_user.close()
