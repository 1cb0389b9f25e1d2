"""An agent turns a resident's webchat report into a work order from the agent page."""

from __future__ import annotations

import re

from playwright.async_api import Browser, expect
from sqlalchemy import update

from router.models import Conversation, ConversationState, Role
from tests.support.actors import ActionServer, Resident
from tests.support.files import png_bytes, visitor_upload
from tests.support.orders import ADDRESS, PHONE, REPORT, resident_reports, setup
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
        await expect(location.locator("option")).to_have_text(
            ["请选择", "路面", "小区内", "户内", "水表井", "消防栓", "其他"])

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


async def test_a_photo_the_resident_sent_the_bot_shows_on_the_order_desk_and_the_crews_phone(
    browser: Browser, running_hub, http
) -> None:
    base = running_hub.url
    people = await setup(running_hub, callback="agent")
    resident = await Resident(http, base).connect()
    conversation_id = (await resident.says(REPORT))["conversation_id"]
    status, sent = await visitor_upload(http, base, resident.token, "漏水现场.png", png_bytes(24, 18))
    assert status == 201, sent
    async with running_hub.hub.sessions.begin() as session:  # held by the bot (this hub runs without one)
        await session.execute(update(Conversation).where(Conversation.id == conversation_id)
                              .values(state=ConversationState.BOT))
    bot = await ActionServer.of(running_hub, http)
    order = await bot.call("POST", "/api/workorders", {
        "category": people["category"]["code"], "title": "居民报修:爆管", "description": REPORT, "address": ADDRESS,
        "source": "bot", "conversation_id": conversation_id, "attachment_message_ids": [sent["message"]["id"]]},
        expect=201)
    await people["handler"].call("POST", f"/api/workorders/{order['id']}/transitions", {
        "action": "assign", "assignee_id": people["crew"].user["id"]})
    errors: list[str] = []
    contexts = [await browser.new_context(), await browser.new_context(**PHONE)]
    try:
        agent = watch_errors(await contexts[0].new_page(), "agent", errors)
        await sign_in(agent, base, people["agent"].user["username"], f"/app/orders?id={order['id']}")
        view = agent.locator("[data-testid=order-view]")
        await expect(view.locator("[data-testid=order-number]")).to_have_text(order["number"])
        photo = view.locator("[data-testid=order-photos] img")
        await expect(photo).to_have_count(1)
        await expect(photo).to_have_js_property("naturalWidth", 24)  # the resident's photo, served by the order

        crew = watch_errors(await contexts[1].new_page(), "crew", errors)
        await sign_in(crew, base, people["crew"].user["username"], "/app/field")
        await crew.locator("[data-testid=field-card]", has_text=order["number"]).click()
        on_phone = crew.locator("[data-testid=field-detail] [data-testid=order-photos] img")
        await expect(on_phone).to_have_count(1)
        await expect(on_phone).to_have_js_property("naturalWidth", 24)
        assert errors == []
    finally:
        for context in contexts:
            await context.close()
        await resident.close()
        for member in ("agent", "handler", "crew"):
            await people[member].close()
