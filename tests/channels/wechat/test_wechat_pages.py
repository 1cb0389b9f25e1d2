"""WeChat in the browser: 我的工单 (OAuth2 through the stand-in, then the resident's own orders), 请给我回电 (the
same way in, then a number and a time), and what the inbox shows of a WeChat reply that did not go."""

from __future__ import annotations

import secrets
import uuid
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from playwright.async_api import expect

from router.models import Role
from tests.channels.wechat.conftest import WeChatWorld
from tests.support.desks import Desk
from tests.support.pages import sign_in, watch_errors
from tests.workorders.conftest import LEAK

PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True,
         "user_agent": "Mozilla/5.0 (Linux; Android 13) MicroMessenger/8.0.47"}


async def test_the_menus_my_orders_signs_the_resident_in_through_wechat_and_lists_their_orders(
        wechat: WeChatWorld, browser) -> None:
    openid = "o" + uuid.uuid4().hex[:27]
    order = await wechat.resident_with_an_order(openid)
    errors: list[str] = []
    context = await browser.new_context(**PHONE)
    try:
        page = watch_errors(await context.new_page(), "resident", errors)
        wechat.standin.browser_openid = openid  # WeChat's browser knows who is holding the phone
        await page.goto(f"{wechat.hub.url}/wechat/orders")
        await expect(page).to_have_url(f"{wechat.hub.url}/my/orders#t=" + page.url.split("#t=", 1)[-1])
        item = page.get_by_test_id("my-order")
        await expect(item).to_have_count(1)
        await expect(item).to_have_attribute("data-number", order["number"])
        await expect(item).to_contain_text(order["state_label"])
        await expect(item).to_contain_text(LEAK["address"])
        await expect(item.locator("li")).to_have_count(1)  # one step so far: accepted

        # Another resident's WeChat sees only their own (none).
        wechat.standin.browser_openid = "o" + uuid.uuid4().hex[:27]
        await page.goto(f"{wechat.hub.url}/wechat/orders")
        await expect(page.get_by_test_id("my-orders-status")).to_contain_text("还没有")

        # A link that was tampered with shows why it does not open.
        await page.goto(f"{wechat.hub.url}/my/orders#t=forged.token.value")
        await expect(page.get_by_test_id("my-orders-status")).to_contain_text("链接已失效")
    finally:
        await context.close()
    assert errors == []


async def test_the_menus_call_me_back_takes_a_number_a_time_and_a_change_of_mind(
        wechat: WeChatWorld, browser) -> None:
    openid = "o" + uuid.uuid4().hex[:27]
    zone = ZoneInfo("Asia/Shanghai")
    tomorrow = (datetime.now(zone) + timedelta(days=1)).replace(hour=10, minute=0, second=0, microsecond=0)
    errors: list[str] = []
    context = await browser.new_context(**PHONE, timezone_id="Asia/Shanghai")
    supervisor = await wechat.hub.staff(Role.SUPERVISOR, listen=False)
    try:
        page = watch_errors(await context.new_page(), "resident", errors)
        wechat.standin.browser_openid = openid
        await page.goto(f"{wechat.hub.url}/wechat/callback")
        await expect(page).to_have_url(f"{wechat.hub.url}/my/callback#t=" + page.url.split("#t=", 1)[-1])
        status = page.get_by_test_id("my-callback-status")

        # Nothing typed, then a number too short: each says what is wrong, nothing is stored.
        await page.get_by_test_id("my-callback-submit").click()
        await expect(status).to_have_text("请填写回电号码")
        await page.get_by_test_id("my-callback-phone").fill("12345")
        await page.get_by_test_id("my-callback-submit").click()
        await expect(status).to_contain_text("请填写正确的手机号")
        # Typed as people write numbers, with a note; as soon as possible.
        await page.get_by_test_id("my-callback-phone").fill("139 0013 9011")
        await page.get_by_test_id("my-callback-note").fill("白天在家")
        await page.get_by_test_id("my-callback-submit").dblclick()  # a double tap asks once
        await expect(status).to_have_text("已登记回电：+*********9011，尽快。客服将按时给您回电。")
        # A change of mind: another number, tomorrow from 10:00.
        await page.get_by_test_id("my-callback-phone").fill("13900139012")
        await page.get_by_test_id("my-callback-when").select_option("later")
        await page.get_by_test_id("my-callback-at").fill(tomorrow.strftime("%Y-%m-%dT%H:%M"))
        await page.get_by_test_id("my-callback-submit").click()
        await expect(status).to_have_text(
            f"已登记回电：+*********9012，{tomorrow.strftime('%m月%d日 %H:%M')} 以后。客服将按时给您回电。")

        # One request on the agents' list, from WeChat, as last asked; both asks are events in the conversation.
        listed = [c for c in (await supervisor.call("GET", "/api/callbacks"))["items"] if c["channel"] == "wechat"]
        [mine] = [c for c in listed if c["phone"].endswith("9012")]
        assert (mine["state"], mine["note"]) == ("open", "白天在家")  # the form keeps what was typed
        assert datetime.fromisoformat(mine["preferred_after"]) == tomorrow
        assert not [c for c in listed if c["phone"].endswith("9011")]
        asks = [m.text for m in await wechat.messages_of(openid) if m.text and m.text.startswith("请给我回电")]
        assert len(asks) == 2 and "9011" in asks[0] and "9012" in asks[1]

        # A link that was tampered with says so.
        await page.goto(f"{wechat.hub.url}/my/callback#t=forged.token.value")
        await page.reload()
        await page.get_by_test_id("my-callback-phone").fill("13900139013")
        await page.get_by_test_id("my-callback-submit").click()
        await expect(status).to_contain_text("链接已失效")
    finally:
        await context.close()
        await supervisor.close()
    assert errors == []


async def test_a_code_without_the_hubs_state_is_refused(wechat: WeChatWorld) -> None:
    code = wechat.standin.oauth_code_for("o" + uuid.uuid4().hex[:27])
    async with wechat.http.get(f"{wechat.hub.url}/wechat/orders", params={"code": code, "state": "made-up"},
                               allow_redirects=False) as response:
        assert response.status == 400 and (await response.json())["error"]["code"] == "bad_oauth_state"


async def test_the_agent_sees_why_a_wechat_reply_did_not_go(wechat: WeChatWorld, browser) -> None:
    openid = "o" + uuid.uuid4().hex[:27]
    wechat.standin.window_closed.add(openid)  # the resident last wrote more than 48 hours ago
    simulator = wechat.simulator("safe")
    await simulator.post(simulator.xml(openid, "text", {"Content": "水费怎么这么高"}, msg_id=secrets.randbits(63)))
    conversation_id = (await wechat.messages_of(openid))[0].conversation_id
    agent = await wechat.hub.staff(Role.AGENT, listen=False)
    errors: list[str] = []
    context = await browser.new_context()
    try:
        await agent.claims(conversation_id)
        desk = Desk(agent, watch_errors(await context.new_page(), "agent", errors))
        await sign_in(desk.page, wechat.hub.url, agent.user["username"])
        await desk.show("mine")
        await desk.opens(conversation_id)
        await agent.replies(conversation_id, "您好,账单明细已发到您的手机")
        state = desk.page.get_by_test_id("delivery-state").last
        await expect(state).to_contain_text("发送失败")
        await expect(state).to_contain_text("48小时")
    finally:
        await context.close()
        await agent.close()
    assert errors == []
