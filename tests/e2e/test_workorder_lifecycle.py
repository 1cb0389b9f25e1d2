"""A repair's whole life on the pages: chat → order → dispatched by rule → assigned → done on a phone → callback.

Four people in four browser contexts: the resident (web chat on a phone), the agent (agent page and
order desk), the repair department's handler (order desk) and the field crew (phone page).
"""

from __future__ import annotations

import re

from playwright.async_api import Browser, Page, expect

from tests.support.files import png_bytes
from tests.support.orders import ADDRESS, PHONE, resident_reports, setup
from tests.support.pages import sign_in, watch_errors, widget


async def agent_creates_order(agent: Page, base: str, people: dict, report: str) -> str:
    """Claim the chat and file the order from it; returns the order number."""
    await sign_in(agent, base, people["agent"].user["username"])
    await agent.click("[data-testid=tab-queued]")
    await agent.locator("[data-testid=conversation-item][data-state=queued]").filter(has_text=report).click()
    # The form takes the description from the resident's messages: wait until they are shown.
    await expect(agent.locator("[data-testid=agent-message][data-author=resident]")).to_contain_text(report)
    await agent.click("[data-testid=claim]")
    await agent.click("[data-testid=create-order]")
    form = agent.locator("[data-testid=order-form]")
    await form.locator("[data-testid=order-category]").select_option(people["category"]["code"])
    await form.locator("[data-testid=order-address]").fill(ADDRESS)
    await form.locator("[data-testid=order-submit]").click()
    toast = agent.locator("[data-testid=toast]")
    await expect(toast).to_have_text(re.compile(r"^工单已创建:GD\d{8}-\d{4,}$"))
    return (await toast.inner_text()).split(":", 1)[1]


async def run_action(page: Page, action: str, **inputs: str) -> None:
    """Click a workflow action on an order page and fill what it asks for."""
    await page.click(f"[data-testid=action-{action}]")
    for name, value in inputs.items():
        field = page.locator(f"[data-testid=form-{action}] [data-testid=action-{name}]")
        if await field.evaluate("node => node.tagName") == "SELECT":
            await expect(field.locator("option", has_text=value)).to_have_count(1)  # options arrive from the API
            await field.select_option(label=value)
        else:
            await field.fill(value)
    if inputs:
        await page.click(f"[data-testid=form-{action}] [data-testid=action-submit]")


async def test_a_burst_main_from_chat_to_closed_order_on_the_pages(browser: Browser, running_hub) -> None:
    base = running_hub.url
    people = await setup(running_hub, callback="agent")
    errors: list[str] = []
    contexts = {"resident": await browser.new_context(**PHONE), "agent": await browser.new_context(),
                "handler": await browser.new_context(), "crew": await browser.new_context(**PHONE)}
    try:
        resident, report = await resident_reports(contexts["resident"], base, errors)
        agent = watch_errors(await contexts["agent"].new_page(), "agent", errors)
        number = await agent_creates_order(agent, base, people, report)
        department = people["department"]["name"]
        chat = widget(resident, "webchat-message").filter(has_text=number)
        # Filed and dispatched by the rule (category 爆管抢修 in 花桥 → this department) at once.
        await expect(chat.filter(has_text="已受理")).to_have_count(1)
        await expect(chat.filter(has_text=f"已派至{department}处理")).to_have_count(1)

        # The department's handler finds it on the order desk and assigns the field crew.
        handler = watch_errors(await contexts["handler"].new_page(), "handler", errors)
        await sign_in(handler, base, people["handler"].user["username"], "/app/orders")
        await handler.locator("[data-testid=order-item]", has_text=number).click()
        view = handler.locator("[data-testid=order-view]")
        await expect(view.locator("[data-testid=order-state]").first).to_have_text("已派单")
        await expect(view.locator("[data-testid=order-department]")).to_have_text(department)
        crew_name = people["crew"].user["display_name"]
        await run_action(handler, "assign", assignee=crew_name)
        await expect(view.locator("[data-testid=order-state]").first).to_have_text("已派工")
        await expect(view.locator("[data-testid=order-assignee]")).to_have_text(crew_name)
        await expect(chat.filter(has_text=f"已安排{crew_name}负责处理")).to_have_count(1)

        # The crew, on a phone: arrive, photograph the repair, complete with a note of what was done.
        crew = watch_errors(await contexts["crew"].new_page(), "crew", errors)
        await sign_in(crew, base, people["crew"].user["username"], "/app/field")
        await crew.locator("[data-testid=field-card]", has_text=number).click()
        detail = crew.locator("[data-testid=field-detail]")
        await expect(detail.locator("[data-testid=order-number]")).to_have_text(number)
        await run_action(crew, "start")
        await expect(detail.locator("[data-testid=order-state]").first).to_have_text("处理中")
        await expect(chat.filter(has_text="维修人员已到场处理")).to_have_count(1)
        await crew.set_input_files("[data-testid=photo-input]", files=[
            {"name": "抢修现场.png", "mimeType": "image/png", "buffer": png_bytes(32, 24)}])
        photo = detail.locator("[data-testid=order-photos] img")
        await expect(photo).to_have_count(1)
        await expect(photo).to_have_js_property("naturalWidth", 32)  # the stored photo, served back to the page
        await run_action(crew, "complete", comment="更换DN150管段,已恢复供水")
        await expect(detail.locator("[data-testid=order-state]").first).to_have_text("已完工")
        await expect(chat.filter(has_text="已处理完毕:更换DN150管段,已恢复供水")).to_have_count(1)
        width = await crew.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"the phone page scrolls sideways ({width}px)"

        # The agent calls the resident back from the order desk, records the score and closes the order.
        await agent.goto(f"{base}/app/orders?id={await order_id(handler)}")
        view = agent.locator("[data-testid=order-view]")
        await expect(view.locator("[data-testid=order-number]")).to_have_text(number)
        await expect(view.locator("[data-testid=order-photos] img")).to_have_count(1)
        await run_action(agent, "visit", satisfaction="5 分 · 非常满意")
        await expect(view.locator("[data-testid=order-satisfaction]")).to_have_text("5 分(非常满意)")
        await run_action(agent, "close")
        await expect(view.locator("[data-testid=order-state]").first).to_have_text("已办结")
        steps = [item async for item in _timeline_actions(view)]
        assert steps == ["create", "dispatch", "assign", "start", "attach", "complete", "visit", "close"]

        # Every step the resident should hear of reached the web chat, in order.
        await expect(chat.filter(has_text="已办结")).to_have_count(1)
        texts = [t for t in await chat.all_inner_texts()]
        expected = ["已受理", "已派至", "已安排", "已到场", "已处理完毕", "已办结"]
        positions = [next(i for i, t in enumerate(texts) if word in t) for word in expected]
        assert positions == sorted(positions), texts
        # The order shows what the resident was told, each acknowledged by the resident's browser.
        await agent.reload()
        notices = view.locator("[data-testid=order-notices] > li")
        await expect(notices).to_have_count(6)
        await expect(notices.and_(agent.locator("[data-delivery=delivered]"))).to_have_count(6)
        assert errors == []
    finally:
        for context in contexts.values():
            await context.close()
        for key in ("agent", "handler", "crew"):
            await people[key].close()


async def order_id(page: Page) -> str:
    """The id of the order open on an order-desk page (kept in its address)."""
    match = re.search(r"[?&]id=(\d+)", page.url)
    assert match, page.url
    return match.group(1)


async def _timeline_actions(view):
    for item in await view.locator("[data-testid=order-timeline] > li").all():
        yield await item.get_attribute("data-action")
