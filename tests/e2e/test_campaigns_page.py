"""外呼任务 in headless Chromium: a supervisor sets up a planned-outage campaign for a district on the call records
page (forgetting the message first), starts it, pauses it with a double click, follows its progress as results
come in, and cancels it; an agent does not see the section."""

from __future__ import annotations

import uuid

from playwright.async_api import Browser, expect
from sqlalchemy import select, update

from router.models import CampaignTarget, Contact, ContactIdentity, Region, Role, TargetState
from tests.support.pages import sign_in, watch_errors


async def district(running_hub, residents: int) -> tuple[str, int]:
    """A district of ``residents`` residents with phones, and one without; its name and id."""
    name = f"测试片区{uuid.uuid4().hex[:4]}"
    async with running_hub.hub.sessions.begin() as session:
        region = Region(code=f"c{uuid.uuid4().hex[:8]}", name=name)
        session.add(region)
        await session.flush()
        contacts = [Contact(display_name=f"居民{i}", region_id=region.id) for i in range(residents + 1)]
        session.add_all(contacts)
        await session.flush()
        base = uuid.uuid4().int % 10**6
        session.add_all(ContactIdentity(contact_id=c.id, channel="sms", external_id=f"+86138{base:06d}{i:02d}")
                        for i, c in enumerate(contacts[:residents]))
        session.add(ContactIdentity(contact_id=contacts[-1].id, channel="webchat", external_id=uuid.uuid4().hex))
        return name, region.id


async def test_a_supervisor_runs_a_campaign_from_the_calls_page(browser: Browser, running_hub) -> None:
    name, _ = await district(running_hub, 4)
    supervisor = await running_hub.staff(Role.SUPERVISOR, listen=False)
    agent = await running_hub.staff(Role.AGENT, listen=False)
    context = await browser.new_context()
    errors: list[str] = []
    try:
        page = watch_errors(await context.new_page(), "supervisor", errors)
        await sign_in(page, running_hub.url, supervisor.user["username"], "/app/calls")
        section = page.locator("[data-testid=campaigns]")
        await expect(section).to_be_visible()
        await page.locator("[data-testid=campaign-district]").select_option(label=f"{name}（4 户）")
        title = f"东湖停水通知{uuid.uuid4().hex[:4]}"
        await page.locator("[data-testid=campaign-name]").fill(title)
        await page.locator("[data-testid=campaign-create]").click()
        await expect(page.locator("[data-testid=toast]")).to_have_text("请填写播报内容")
        await page.locator("[data-testid=campaign-message]").fill("您所在片区明日八点至十八点停水，请提前储水。")
        await page.locator("[data-testid=campaign-channels]").fill("2")
        await page.locator("[data-testid=campaign-create]").click()
        await expect(page.locator("[data-testid=toast]")).to_contain_text("共 4 户")
        row = page.locator("[data-testid=campaign-row]").filter(has_text=title)
        await expect(row.locator("[data-testid=campaign-state]")).to_have_text("未开始")
        await expect(row.locator("[data-testid=campaign-done]")).to_have_text("0 / 4")
        await expect(row).to_contain_text("09:00–20:00，2 路")

        await row.locator("[data-testid=campaign-start]").click()
        await expect(row.locator("[data-testid=campaign-state]")).to_have_text("外呼中")
        await row.locator("[data-testid=campaign-pause]").dblclick()
        await expect(row.locator("[data-testid=campaign-state]")).to_have_text("已暂停")
        await row.locator("[data-testid=campaign-resume]").click()
        await expect(row.locator("[data-testid=campaign-state]")).to_have_text("外呼中")

        campaign_id = int(await row.get_attribute("data-campaign-id") or 0)
        async with running_hub.hub.sessions.begin() as session:  # two results come in while the page is open
            ids = list(await session.scalars(select(CampaignTarget.id).where(
                CampaignTarget.campaign_id == campaign_id).order_by(CampaignTarget.id)))
            for target_id, state in zip(ids, (TargetState.CONFIRMED, TargetState.OPTED_OUT), strict=False):
                await session.execute(update(CampaignTarget).where(CampaignTarget.id == target_id).values(
                    state=state.value, attempts=1))
        await expect(row.locator("[data-testid=campaign-done]")).to_have_text("2 / 4")  # refreshed by itself
        await expect(row.locator("[data-testid=campaign-counts]")).to_contain_text("已确认 1")
        await expect(row.locator("[data-testid=campaign-counts]")).to_contain_text("拒绝再呼 1")
        await expect(row.locator("[data-testid=campaign-counts]")).to_contain_text("待呼叫 2")
        await row.locator("[data-testid=campaign-cancel]").click()
        await expect(row.locator("[data-testid=campaign-state]")).to_have_text("已取消")
        await expect(row.locator("[data-testid=campaign-counts]")).to_contain_text("已取消 2")
        await expect(row.locator("button")).to_have_count(0)

        other = watch_errors(await context.new_page(), "agent", errors)
        await context.clear_cookies()
        await sign_in(other, running_hub.url, agent.user["username"], "/app/calls")
        await expect(other.locator("[data-testid=callbacks]")).to_be_visible()
        await expect(other.locator("[data-testid=campaigns]")).to_be_hidden()
    finally:
        await context.close()
        await supervisor.close()
        await agent.close()
    assert errors == []
