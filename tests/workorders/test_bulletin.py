"""The bulletin board: published by staff, read by anyone, by district or by address, on a page."""

from __future__ import annotations

from datetime import timedelta

from playwright.async_api import Browser, expect

from router.models import Role, utcnow


def window(start_hours: float, end_hours: float) -> dict:
    now = utcnow()
    return {"starts_at": (now + timedelta(hours=start_hours)).isoformat(),
            "ends_at": (now + timedelta(hours=end_hours)).isoformat()}


async def test_notices_by_district_and_address_and_on_the_public_page(running_hub, http,
                                                                      browser: Browser) -> None:
    supervisor = await running_hub.staff(Role.SUPERVISOR, listen=False)
    agent = await running_hub.staff(Role.AGENT, listen=False)
    try:
        outage = await supervisor.call("POST", "/api/notices", {
            "kind": "planned_outage", "title": "花桥镇绿地大道计划停水", "body": "因管道改造,停水8小时。",
            "districts": ["huaqiao"], **window(-1, 7)}, expect=201)
        assert outage["active"] and outage["district_names"] == ["花桥经济开发区"]
        await supervisor.call("POST", "/api/notices", {
            "kind": "pressure_change", "title": "周庄镇夜间降压", "body": "夜间水压略低。",
            "districts": ["zhouzhuang"], **window(-1, 5)}, expect=201)
        await supervisor.call("POST", "/api/notices", {
            "kind": "repair", "title": "明日全市管网巡检", "body": "可能短时水压波动。", **window(20, 30)}, expect=201)

        mine = {"花桥镇绿地大道计划停水", "周庄镇夜间降压", "明日全市管网巡检"}  # other tests publish too
        async with http.get(f"{running_hub.url}/api/notices", params={"address": "花桥绿地大道88号"}) as response:
            body = await response.json()
        assert body["district"] == "huaqiao"
        assert [n["title"] for n in body["items"] if n["title"] in mine] == ["花桥镇绿地大道计划停水"]
        async with http.get(f"{running_hub.url}/api/notices",
                            params={"district": "huaqiao", "include": "upcoming"}) as response:
            titles = [n["title"] for n in (await response.json())["items"] if n["title"] in mine]
        assert titles == ["花桥镇绿地大道计划停水", "明日全市管网巡检"]

        bad = await supervisor.call("POST", "/api/notices", {
            "kind": "repair", "title": "x", "body": "x", "districts": ["atlantis"], **window(2, 1)}, expect=422)
        assert "ends_at" in str(bad["error"]["details"])
        unknown = await supervisor.call("POST", "/api/notices", {
            "kind": "repair", "title": "x", "body": "x", "districts": ["atlantis"], **window(1, 2)}, expect=422)
        assert unknown["error"]["code"] == "unknown_district"
        await agent.call("POST", "/api/notices", {"kind": "repair", "title": "x", "body": "x", **window(1, 2)},
                         expect=403)

        context = await browser.new_context(viewport={"width": 390, "height": 844})
        page = await context.new_page()
        await page.goto(f"{running_hub.url}/notices")
        await page.fill("[data-testid=notice-address]", "昆山市周庄镇全福路")
        await page.click("[data-testid=notice-search]")
        cards = page.locator("[data-testid=notice]")
        await expect(cards.filter(has_text="周庄镇夜间降压")).to_contain_text("水压调整")
        await expect(cards.filter(has_text="花桥镇绿地大道计划停水")).to_have_count(0)
        await context.close()

        await supervisor.call("DELETE", f"/api/notices/{outage['id']}", expect=204)
        async with http.get(f"{running_hub.url}/api/notices", params={"district": "huaqiao"}) as response:
            assert outage["id"] not in [n["id"] for n in (await response.json())["items"]]
        await supervisor.call("DELETE", f"/api/notices/{outage['id']}", expect=404)
    finally:
        await supervisor.close()
        await agent.close()
