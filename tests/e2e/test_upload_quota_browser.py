"""The widget tells a resident in plain words that today's upload quota is used up."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from playwright.async_api import Browser, expect

from tests.conftest import start_hub
from tests.support.files import png_bytes
from tests.support.pages import widget


async def test_the_widget_shows_why_a_file_beyond_the_quota_is_refused(browser: Browser,
                                                                       own_settings: Callable[..., Any]) -> None:
    hub = await start_hub(own_settings(upload_files_per_day=1))
    context = await browser.new_context()
    try:
        page = await context.new_page()
        await page.goto(f"{hub.url}/#chat")
        picker = widget(page, "webchat-file")
        await picker.set_input_files({"name": "水表.png", "mimeType": "image/png", "buffer": png_bytes(3, 3)})
        sent = widget(page, "webchat-message").and_(page.locator("[data-author=resident]"))
        await expect(sent).to_have_count(1, timeout=15000)
        await picker.set_input_files({"name": "水表2.png", "mimeType": "image/png", "buffer": png_bytes(4, 4)})
        await expect(widget(page, "webchat-status")).to_contain_text("达到上限,请明天再试", timeout=15000)
        await expect(sent).to_have_count(1)
    finally:
        await context.close()
        await hub.runner.cleanup()
