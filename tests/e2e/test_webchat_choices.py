"""A bot message's buttons in the widget: quick replies under it, live only on the latest, one message a click."""

from __future__ import annotations

from playwright.async_api import Browser, expect
from sqlalchemy import func, select

from router.models import Message
from tests.conftest import RunningHub
from tests.support.choices import PLAIN
from tests.support.pages import watch_errors, widget
from tests.support.restbot import StandInBot


async def test_quick_replies_send_one_message_and_only_the_latest_are_live_after_a_reload(
        browser: Browser, choices_hub: RunningHub, bot: StandInBot) -> None:
    errors: list[str] = []
    context = await browser.new_context(viewport={"width": 412, "height": 860})
    try:
        page = watch_errors(await context.new_page(), "resident", errors)
        await page.goto(f"{choices_hub.url}/#chat")
        await expect(widget(page, "webchat-status")).to_have_attribute("data-state", "open")
        await widget(page, "webchat-input").fill("楼下漏水了")
        await widget(page, "webchat-input").press("Enter")

        bots = widget(page, "webchat-message").and_(page.locator("[data-author=bot]"))
        await expect(bots).to_have_count(1)
        offer = bots.nth(0).get_by_role("group", name="可选回复")
        await expect(offer.get_by_role("button")).to_have_text(["路面", "小区内", "户内"])
        for chip in await offer.get_by_role("button").all():
            await expect(chip).to_be_enabled()

        # A double click sends one message: the title as the resident's words, the payload to the bot.
        await offer.get_by_role("button", name="户内").dblclick()
        mine = widget(page, "webchat-message").and_(page.locator("[data-author=resident]"))
        await expect(mine.filter(has_text="户内")).to_have_count(1)
        await expect(bots).to_have_count(2)
        await bot.wait_asked(2)
        assert [q["message"] for q in bot.received] == ["楼下漏水了", '/inform{"detail":"户内"}']
        await expect(offer.get_by_role("button", name="户内")).to_have_attribute("aria-pressed", "true")
        for chip in await offer.get_by_role("button").all():
            await expect(chip).to_be_disabled()  # an older offer
        latest = bots.nth(1).get_by_role("group", name="可选回复")
        await expect(latest.get_by_role("button", name="小区内")).to_be_enabled()

        # The chips survive a reload; only the latest bot message's are live.
        await page.reload()
        await expect(widget(page, "webchat-status")).to_have_attribute("data-state", "open")
        await expect(bots).to_have_count(2)
        await expect(bots.nth(0).get_by_role("button")).to_have_count(3)
        for chip in await bots.nth(0).get_by_role("button").all():
            await expect(chip).to_be_disabled()
        latest = bots.nth(1).get_by_role("group", name="可选回复")
        await expect(latest.get_by_role("button", name="小区内")).to_be_enabled()

        # The keyboard reaches them too; an answer without buttons ends the offer.
        bot.answer = PLAIN
        await latest.get_by_role("button", name="小区内").focus()
        await page.keyboard.press("Enter")
        await expect(bots).to_have_count(3)
        await bot.wait_asked(3)
        assert bot.received[-1]["message"] == '/inform{"detail":"小区内"}'
        await expect(page.locator("button.choice:enabled")).to_have_count(0)
        await page.reload()
        await expect(bots).to_have_count(3)
        await expect(page.locator("button.choice")).to_have_count(6)
        await expect(page.locator("button.choice:enabled")).to_have_count(0)

        async with choices_hub.hub.sessions() as session:
            clicks = await session.scalar(select(func.count()).select_from(Message).where(
                Message.author == "resident", Message.text == "户内"))
        assert clicks == 1
        assert len(bot.received) == 3
        assert errors == []
    finally:
        await context.close()
