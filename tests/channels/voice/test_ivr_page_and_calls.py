"""The voice menu page and the phone line together: an admin changes the welcome at /app/ivr and records the
after-hours notice (after first picking a wrong file), in headless Chromium; the next real call hears the new
words and the recording, without a restart."""

from __future__ import annotations

import secrets

from playwright.async_api import Browser, expect

from channels.voice.ivr import DEFAULT_MENU, parse_menu
from router.models import Role, utcnow
from tests.channels.voice.conftest import VoiceWorld
from tests.channels.voice.test_calls import caller
from tests.router.test_ivr_recordings import PNG
from tests.support import sipp
from tests.support.ivr import tone_wav
from tests.support.pages import sign_in, watch_errors

MENU = parse_menu(DEFAULT_MENU.read_text("utf-8"))
WELCOME, CLOSED = MENU.prompts.welcome["zh"], MENU.prompts.closed["zh"]


async def test_a_menu_changed_and_a_prompt_recorded_on_the_page_are_what_the_next_call_hears(
        world: VoiceWorld, browser: Browser) -> None:
    admin = await world.hub.staff(Role.ADMIN, listen=False)
    before = await admin.call("GET", "/api/ivr/menu")
    greeting = f"您好,这里是供水热线{secrets.randbelow(100)}号。"
    errors: list[str] = []
    context = await browser.new_context()
    page = watch_errors(await context.new_page(), "admin", errors)
    try:
        await sign_in(page, world.hub.url, admin.user["username"], "/app/ivr")
        closed = page.locator("[data-testid=prompt-row][data-language=zh]").filter(has_text=CLOSED)
        await expect(closed.locator("[data-testid=prompt-voice]")).to_have_text("语音合成")
        await page.fill("[data-testid=ivr-yaml]", before["yaml"].replace(WELCOME, greeting))
        await page.click("[data-testid=ivr-save]")
        await expect(page.locator("[data-testid=ivr-status]")).to_contain_text("已保存为版本")

        # A picture picked by mistake is refused with the reason; the prompt stays synthesised.
        await closed.locator("[data-testid=prompt-file]").set_input_files(
            files=[{"name": "通知.wav", "mimeType": "audio/wav", "buffer": PNG}])
        await expect(page.locator("[data-testid=toast]")).to_contain_text("录音须为 WAV 格式")
        await expect(closed.locator("[data-testid=prompt-voice]")).to_have_text("语音合成")
        await closed.locator("[data-testid=prompt-file]").set_input_files(
            files=[{"name": "非工作时间.wav", "mimeType": "audio/wav", "buffer": tone_wav(3.0)}])
        await expect(closed.locator("[data-testid=prompt-voice]")).to_contain_text("录音 3.0 秒")
        await expect(closed.locator("[data-testid=prompt-unrecord]")).to_be_visible()

        number, since = caller(), utcnow()
        # The welcome (its new words rendered first), the 3 s notice, into the menu: time to spare on a slow machine.
        result = await world.call(number, [sipp.Pause(14000)])
        assert result.completed, result.output
        call = await world.ended_call(number, since)
        prompts = [(p.detail["text"], p.detail["media"], p.detail["outcome"])
                   for p in await world.events(call.id, "prompt")]
        assert prompts[0][0] == greeting and "/rec-" not in prompts[0][1]  # the new words, synthesised
        assert prompts[1][0] == CLOSED and prompts[1][1].startswith("sound:shuiwu/rec-")
        assert prompts[1][2] == "done", prompts  # Asterisk played the recording to its end
        assert errors == []
    finally:
        await context.close()
        await admin.call("PUT", "/api/ivr/menu", {"yaml": before["yaml"]})
        for item in (await admin.call("GET", "/api/ivr/prompts"))["items"]:
            if item["recording"]:
                await admin.call("DELETE", f"/api/ivr/prompts/{item['key']}/recording")
        await admin.close()
