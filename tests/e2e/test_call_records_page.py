"""The call records page (/app/calls) and the wallboard's voice state, in headless Chromium."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import pytest
from playwright.async_api import Browser, BrowserContext, Page, expect

from router.models import Role
from router.net import free_port
from tests.conftest import RunningHub, start_hub
from tests.support.calls import far_day, new_number, record_call, wav_bytes
from tests.support.pages import sign_in, watch_errors


@pytest.fixture
async def pages(browser: Browser) -> AsyncIterator[Callable[..., Any]]:
    """Signed-in staff pages; script errors and Content-Security-Policy violations fail the test."""
    contexts: list[BrowserContext] = []
    errors: list[str] = []

    async def open_page(hub: RunningHub, role: Role, path: str) -> Page:
        staff = await hub.staff(role, listen=False)
        await staff.close()
        context = await browser.new_context()
        contexts.append(context)
        page = watch_errors(await context.new_page(), staff.user["username"], errors)
        await sign_in(page, hub.url, staff.user["username"], path)
        return page

    yield open_page
    for context in contexts:
        await context.close()
    assert errors == []


async def test_a_supervisor_finds_a_call_by_number_and_plays_its_recording(running_hub, pages) -> None:
    number, order = new_number(), "WO20311234"
    day = far_day()
    call_id = await record_call(running_hub, number, day, [("main", ["2"]), ("bill", ["1", "#"]),
                                                          ("voicemail", [])],
                                outcome="voicemail", order_number=order)
    await record_call(running_hub, new_number(), day, [("main", ["3"])])

    page = await pages(running_hub, Role.SUPERVISOR, "/app/calls")
    await expect(page.locator("[data-testid=nav-calls]")).to_have_attribute("aria-current", "page")
    await page.fill("[data-testid=filter-number]", number[-8:])
    await page.click("[data-testid=call-search]")
    rows = page.locator("[data-testid=call-row]")
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_have_attribute("data-call-id", str(call_id))
    await expect(rows.first.locator("[data-testid=call-caller]")).to_have_text("+*********" + number[-4:])
    assert number not in await page.content()

    await rows.first.click()
    detail = page.locator("[data-testid=call-detail]")
    await expect(detail).to_be_visible()
    await expect(detail.locator("[data-testid=call-path]")).to_have_text("菜单路径：main → bill → voicemail")
    await expect(detail.locator("[data-testid=call-orders]")).to_contain_text(order)
    await expect(detail.locator("[data-testid=call-key]")).to_have_text(["2", "1", "#"])
    audio = detail.locator("[data-testid=call-recording]")
    await expect(audio).to_be_visible()
    fetched = await audio.evaluate("""async (node) => {
      const response = await fetch(node.src, { credentials: 'same-origin' });
      return [response.status, response.headers.get('content-type'), (await response.arrayBuffer()).byteLength];
    }""")
    assert fetched == [200, "audio/wav", len(wav_bytes())]
    await page.wait_for_function("document.querySelector('[data-testid=call-recording]').readyState >= 1")
    assert await audio.evaluate("(node) => node.duration") == pytest.approx(0.5, abs=0.01)

    await page.fill("[data-testid=filter-number]", "")
    await page.fill("[data-testid=filter-order]", order)
    await page.click("[data-testid=call-search]")
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_have_attribute("data-call-id", str(call_id))


async def test_the_key_statistics_per_node_for_a_supervisor(running_hub, pages) -> None:
    day = far_day()
    await record_call(running_hub, new_number(), day, [("main", ["2"]), ("bill", ["#"])], outcome="self_service")
    await record_call(running_hub, new_number(), day + timedelta(minutes=5), [("main", ["2", "2"])], outcome=None)
    page = await pages(running_hub, Role.SUPERVISOR, "/app/calls")
    stats = page.locator("[data-testid=ivr-stats]")
    await expect(stats).to_be_visible()
    local = "%Y-%m-%dT%H:%M"
    await stats.locator("input[name=from]").fill(day.astimezone().strftime(local))
    await stats.locator("input[name=to]").fill((day + timedelta(hours=1)).astimezone().strftime(local))
    await page.click("[data-testid=stats-search]")
    await expect(page.locator("[data-testid=stats-total]")).to_have_text("共 2 通来电")
    main = page.locator("[data-testid=stats-row][data-node=main]")
    await expect(main.locator("[data-testid=stats-calls]")).to_have_text("2")
    await expect(main.locator("[data-testid=stats-keys]")).to_have_text("按 2：3")
    await expect(main.locator("[data-testid=stats-ended]")).to_have_text("未完成：1")
    await expect(page.locator("[data-testid=stats-row][data-node=bill] [data-testid=stats-ended]")).to_have_text(
        "自助服务：1")
    bars = await page.evaluate("""() => echarts.getInstanceByDom(document.querySelector('[data-testid=stats-chart]'))
      .getOption().series.map((s) => [s.name, s.data])""")
    assert bars == [["按 #", [0, 1]], ["按 2", [3, 0]]]


async def test_an_agent_has_the_page_without_the_statistics(running_hub, pages) -> None:
    page = await pages(running_hub, Role.AGENT, "/app/calls")
    await expect(page.locator("[data-testid=calls]")).to_be_visible()
    await expect(page.locator("[data-testid=ivr-stats]")).to_be_hidden()
    await expect(page.locator("[data-testid=nav-calls]")).to_be_visible()
    await expect(page.locator("[data-testid=nav-wallboard]")).to_have_count(0)


async def test_the_wallboard_shows_the_voice_channel_down(own_settings, pages, running_hub) -> None:
    """No Asterisk listens on the ARI address: the voice channel is reported as disconnected."""
    voice_hub = await start_hub(own_settings(channels="webchat,voice",
                                             voice_ari_url=f"http://127.0.0.1:{free_port()}"))
    try:
        page = await pages(voice_hub, Role.SUPERVISOR, "/app/wallboard")
        voice = page.locator("[data-testid=voice-state]")
        await expect(voice).to_have_text("电话通道：断开")
        await expect(voice).to_have_attribute("data-state", "down")
    finally:
        await voice_hub.runner.cleanup()
    plain = await pages(running_hub, Role.SUPERVISOR, "/app/wallboard")  # no voice channel: nothing shown
    await expect(plain.locator("[data-testid=wallboard]")).to_be_visible()
    await expect(plain.locator("[data-testid=voice-state]")).to_be_hidden()
