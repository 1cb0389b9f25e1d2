"""The resident scores the repair from the link in the chat; "not solved" sends the order back to the crew."""

from __future__ import annotations

import uuid

from playwright.async_api import Browser, expect

from tests.support.orders import PHONE, resident_reports, setup
from tests.support.pages import watch_errors, widget
from tests.workorders.conftest import act


async def test_the_resident_answers_the_survey_and_an_unsolved_problem_reopens_the_order(
    browser: Browser, running_hub,
) -> None:
    base = running_hub.url
    people = await setup(running_hub, callback="survey")
    errors: list[str] = []
    context = await browser.new_context(**PHONE)
    try:
        resident, report = await resident_reports(context, base, errors)
        agent = people["agent"]
        queued = await agent.call("GET", "/api/conversations?state=queued&limit=200")
        conversation = next(c for c in queued["items"] if c["last_message"] and c["last_message"]["text"] == report)
        order = await agent.call("POST", "/api/workorders", {
            "category": people["category"]["code"], "title": "绿地大道爆管", "description": "门口水管爆了",
            "address": "昆山市花桥镇绿地大道88号", "conversation_id": conversation["id"]}, expect=201)
        assert order["state"] == "dispatched"  # by the rule
        await act(people["handler"], order["id"], action="assign", assignee_id=people["crew"].user["id"])
        await act(people["crew"], order["id"], action="start")
        await act(people["crew"], order["id"], action="complete", comment="已更换管段")

        link = widget(resident, "survey-link")
        await expect(link).to_have_count(1)
        await expect(link).to_have_text("评价本次服务")
        async with context.expect_page() as opened:
            await link.click()
        survey = watch_errors(await opened.value, "survey", errors)
        await expect(survey.locator("[data-testid=survey-number]")).to_have_text(order["number"])
        await expect(survey.locator("[data-testid=survey-completion]")).to_have_text("已更换管段")

        submit = survey.locator("[data-testid=survey-submit]")
        await submit.click()  # nothing chosen yet: the page says what is missing and sends nothing
        await expect(survey.locator("[data-testid=survey-error]")).to_have_text("请选择满意程度")
        await survey.check("[data-testid=survey-score-2]")
        await survey.check("[data-testid=survey-resolved-no]")
        comment = f"还是漏水 {uuid.uuid4().hex[:4]}"
        await survey.fill("[data-testid=survey-comment]", comment)
        await submit.click()
        await expect(survey.locator("[data-testid=survey-status]")).to_have_text(
            "感谢您的评价(2 分),我们会持续改进供水服务。")
        await expect(survey.locator("[data-testid=survey-form]")).to_be_hidden()

        reopened = await agent.call("GET", f"/api/workorders/{order['id']}")
        assert (reopened["state"], reopened["satisfaction"]) == ("assigned", 2)
        assert [e["action"] for e in reopened["timeline"]][-2:] == ["visit", "reopen"]
        assert reopened["timeline"][-2]["comment"] == comment
        await expect(widget(resident, "webchat-message").filter(has_text="已重新安排处理")).to_have_count(1)

        await survey.reload()  # the link now only thanks
        await expect(survey.locator("[data-testid=survey-status]")).to_contain_text("感谢您的评价")
        await expect(survey.locator("[data-testid=survey-form]")).to_be_hidden()
        assert errors == []
    finally:
        await context.close()
        for key in ("agent", "handler", "crew"):
            await people[key].close()


async def test_a_broken_survey_link_says_so(browser: Browser, running_hub) -> None:
    page = await browser.new_page()
    try:
        for query, message in [("", "评价链接无效"), ("?t=" + "a" * 30, "评价链接无效")]:
            await page.goto(f"{running_hub.url}/survey{query}")
            await expect(page.locator("[data-testid=survey-status]")).to_contain_text(message)
            await expect(page.locator("[data-testid=survey-form]")).to_be_hidden()
    finally:
        await page.close()
