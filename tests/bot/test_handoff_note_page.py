"""A report handed to a person half-way: the agent's inbox shows what the bot collected, as an internal note."""

from __future__ import annotations

from playwright.async_api import Browser, expect

from router.models import Role
from tests.support.actors import Resident
from tests.support.desks import Desk
from tests.support.pages import sign_in, watch_errors


async def test_the_agent_sees_what_the_bot_collected(bot_hub, browser: Browser, http) -> None:
    resident = await Resident(http, bot_hub.url).connect()

    async def asked(words: str) -> None:
        await resident.expect(lambda f: f["type"] == "message" and f["message"]["author"] == "bot"
                              and words in (f["message"]["text"] or ""), timeout=20)

    said = await resident.says("我家水管漏水了,麻烦来修")
    for question, answer in (("位置", "户内"), ("地址", "前进中路300号2栋"), ("电话", "转人工吧")):
        await asked(question)
        await resident.says(answer)
    assert "人工" in (await resident.hears("system", timeout=20))["text"]
    await resident.close()

    supervisor = await bot_hub.staff(Role.SUPERVISOR, teams=[], listen=False)
    context = await browser.new_context()
    errors: list[str] = []
    try:
        page = watch_errors(await context.new_page(), supervisor.user["username"], errors)
        await sign_in(page, bot_hub.url, supervisor.user["username"], "/app/inbox")
        desk = Desk(supervisor, page)
        await desk.show("queued")
        await desk.opens(said["conversation_id"])
        note = page.locator("[data-testid=agent-message]", has_text="机器人已收集的报修信息")
        await expect(note.locator("[data-testid=note-tag]")).to_have_text("机器人已收集")
        await expect(note).to_contain_text("漏水位置:户内")
        await expect(note).to_contain_text("地址:前进中路300号2栋")
        assert errors == []
    finally:
        await context.close()
        await supervisor.close()
