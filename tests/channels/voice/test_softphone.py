"""An agent answers a real caller (sipp) in the browser: the inbox's softphone (SIP.js over Asterisk's SIP
WebSocket, WebRTC media with DTLS-SRTP), in headless Chromium with a fake microphone; a supervisor listens in
from the wallboard on the softphone there."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator

from playwright.async_api import Browser, expect

from channels.voice.ari import AriClient, Event
from router.models import Role, utcnow
from tests.channels.voice.conftest import SETTLE, VoiceWorld, agent_with_phone, extension
from tests.channels.voice.test_calls import caller
from tests.channels.voice.test_calls_to_agents import live_call_of
from tests.support import sipp
from tests.support.pages import sign_in, watch_errors

PEER_STATS = """async () => {
  const pc = window.softphone.session.sessionDescriptionHandler.peerConnection;
  const counts = { received: 0, sent: 0 };
  (await pc.getStats()).forEach((report) => {
    if (report.type === 'inbound-rtp' && report.kind === 'audio') counts.received += report.packetsReceived;
    if (report.type === 'outbound-rtp' && report.kind === 'audio') counts.sent += report.packetsSent;
  });
  return counts;
}"""


async def agent_leg_rtp(world: VoiceWorld) -> dict[str, int]:
    """What Asterisk counted on the channel to the agent's softphone: packets received from it and sent to it."""
    [leg] = [c for c in await world.adapter.ari.channels() if c["id"].startswith("agent-")]
    stats = await world.adapter.ari.request("GET", f"/channels/{leg['id']}/rtp_statistics")
    return {"received": stats["rxcount"], "sent": stats["txcount"]}


MICROPHONE_ON = "() => window.softphone.session.sessionDescriptionHandler.peerConnection.getSenders()" \
    ".every((sender) => !sender.track || sender.track.enabled)"


@contextlib.asynccontextmanager
async def keys_heard_on(world: VoiceWorld, channel_id: str) -> AsyncIterator[list[str]]:
    """The keys Asterisk receives on ``channel_id``, heard by an ARI application of the test's own."""
    asterisk = world.asterisk
    observer = AriClient(asterisk.ari_url, asterisk.ari_user, asterisk.ari_password, f"observer-{uuid.uuid4().hex[:6]}")
    keys: list[str] = []

    async def heard(event: Event) -> None:
        if event.get("channel", {}).get("id") == channel_id:
            keys.append(event["digit"])
    observer.on("ChannelDtmfReceived", heard)
    await observer.start()
    try:
        await asyncio.wait_for(observer.connected.wait(), 10)
        await observer.subscribe_channel(channel_id)
        yield keys
    finally:
        await observer.stop()


async def test_an_agent_answers_a_caller_in_the_browser_and_audio_flows_both_ways(
        desk: VoiceWorld, browser: Browser) -> None:
    admin = await desk.hub.staff(Role.ADMIN, listen=False)
    agent, _, _ = await agent_with_phone(desk, admin, kind="browser")
    supervisor = await desk.hub.staff(Role.SUPERVISOR, listen=False)
    await admin.call("PUT", f"/api/users/{supervisor.user['id']}/phone", {"extension": extension(), "kind": "browser"})
    errors: list[str] = []
    context, board_context = await browser.new_context(), await browser.new_context()
    try:
        page = watch_errors(await context.new_page(), "agent", errors)
        await sign_in(page, desk.hub.url, agent.user["username"], "/app/inbox")
        softphone = page.locator("[data-testid=softphone]")
        await expect(softphone).to_have_attribute("data-state", "ready", timeout=15000)
        await expect(page.locator("[data-testid=softphone-status]")).to_have_text("软电话就绪")
        board = watch_errors(await board_context.new_page(), "supervisor", errors)
        await sign_in(board, desk.hub.url, supervisor.user["username"], "/app/wallboard")
        board_phone = board.locator("[data-testid=softphone]")
        await expect(board_phone).to_have_attribute("data-state", "ready", timeout=15000)
        await agent.becomes("ready")

        number, since = caller(), utcnow()
        # 0 for a person; the caller speaks twice while the agent talks, then hangs up.
        calling = asyncio.create_task(desk.call(number, [
            SETTLE, *sipp.digits("0"), sipp.Pause(5000), sipp.Voice(4000), sipp.Pause(3000), sipp.Voice(4000),
            sipp.Pause(12000)], timeout=70))
        await expect(softphone).to_have_attribute("data-state", "ringing", timeout=20000)
        # Screen pop: the caller's conversation is open, with their phone in the contact panel and the way they
        # came through the IVR.
        await expect(page.locator("[data-testid=contact-identity][data-channel=voice]")).to_contain_text(
            number[-4:], timeout=10000)
        await expect(page.locator("[data-testid=conversation-call]")).to_contain_text("语音导航：main → agent")
        answer = page.locator("[data-testid=softphone-answer]")
        await answer.dblclick()  # a double click answers once
        await expect(softphone).to_have_attribute("data-state", "talking", timeout=10000)

        await asyncio.sleep(4)  # talking: the caller's voice, the browser's fake microphone
        in_browser = await page.evaluate(PEER_STATS)
        in_asterisk = await agent_leg_rtp(desk)
        assert in_browser["received"] > 50 and in_browser["sent"] > 50, in_browser
        assert in_asterisk["received"] > 50 and in_asterisk["sent"] > 50, in_asterisk

        # The supervisor sees the call on the wallboard and listens in on the softphone there.
        row = board.locator("[data-testid=call-row][data-state=talking]")
        await expect(row).to_contain_text(number[-4:])
        await expect(board.locator("[data-testid=call-tile-talking] .wb-tile-value")).to_have_text("1")
        await row.locator("[data-testid=monitor-listen]").click()
        await expect(board_phone).to_have_attribute("data-state", "ringing", timeout=10000)
        await board.locator("[data-testid=softphone-answer]").click()
        await expect(board_phone).to_have_attribute("data-state", "talking")
        await asyncio.sleep(2)
        listened = await board.evaluate(PEER_STATS)
        assert listened["received"] > 25, listened  # the call's audio reaches the supervisor's browser

        # Hold through the hub: the caller hears music; back again.
        await page.locator("[data-testid=softphone-hold]").click()
        await expect(softphone).to_have_attribute("data-state", "held")
        await page.locator("[data-testid=softphone-resume]").click()
        await expect(softphone).to_have_attribute("data-state", "talking")

        # Mute: the microphone stops in the browser, the call goes on; and back.
        await page.locator("[data-testid=softphone-mute]").click()
        await expect(page.locator("[data-testid=softphone-status]")).to_have_text("通话中（已静音）")
        assert await page.evaluate(MICROPHONE_ON) is False
        await page.locator("[data-testid=softphone-unmute]").click()
        await expect(page.locator("[data-testid=softphone-status]")).to_have_text("通话中")
        assert await page.evaluate(MICROPHONE_ON) is True

        # The keypad sends keys in the media stream: Asterisk hears them on the agent's channel.
        live = next(iter(desk.adapter.calls.values()))
        bridge = await desk.adapter.ari.request("GET", f"/bridges/{live.bridge_id}")
        [leg] = [c for c in bridge["channels"] if c.startswith("agent-")]  # the agent's, not the supervisor's
        async with keys_heard_on(desk, leg) as heard:
            await page.locator("[data-testid=softphone-keypad]").click()
            for key in "12#":
                await page.locator(f"[data-testid=softphone-key][data-key='{key}']").click()
            await expect(page.locator("[data-testid=softphone-sent]")).to_have_text("12#")
            for _ in range(50):
                if len(heard) == 3:
                    break
                await asyncio.sleep(0.1)
        assert heard == ["1", "2", "#"]

        result = await calling
        assert result.completed, result.output
        await expect(softphone).to_have_attribute("data-state", "ready", timeout=10000)
        call = await desk.ended_call(number, since)
        assert (call.agent_id, call.outcome, call.hangup_side) == (agent.user["id"], "agent", "caller")
        kinds = [e.kind for e in await desk.events(call.id) if e.kind in {"connect", "monitor", "hold", "resume"}]
        assert kinds == ["connect", "monitor", "hold", "resume"]
        await expect(board_phone).to_have_attribute("data-state", "ready", timeout=10000)  # the snoop ended too
        # Calling the resident back from the contact panel: this line has no trunk to dial out on, and says so.
        await page.locator("[data-testid=contact-call]").click()
        refused = page.locator("[data-testid=contact-panel] .cp-error[role=alert]")
        await expect(refused).to_contain_text("未配置外呼线路")
    finally:
        await context.close()
        await board_context.close()
        for staff in (admin, agent, supervisor):
            await staff.close()
    assert errors == []



async def test_an_agent_in_the_browser_sends_a_caller_to_another_teams_queue(
        desk: VoiceWorld, browser: Browser) -> None:
    admin = await desk.hub.staff(Role.ADMIN, listen=False)
    agent, _, _ = await agent_with_phone(desk, admin, kind="browser")
    repairs, repairs_ext, repairs_password = await agent_with_phone(desk, admin, teams=["维修调度"])
    errors: list[str] = []
    context = await browser.new_context()
    try:
        page = watch_errors(await context.new_page(), "agent", errors)
        await sign_in(page, desk.hub.url, agent.user["username"], "/app/inbox")
        softphone = page.locator("[data-testid=softphone]")
        await expect(softphone).to_have_attribute("data-state", "ready", timeout=15000)
        async with sipp.DeskPhone(desk.asterisk.sip_port, repairs_ext, repairs_password, ring_ms=300) as phone:
            await agent.becomes("ready")
            await repairs.becomes("ready")
            number, since = caller(), utcnow()
            calling = asyncio.create_task(desk.call(number, [SETTLE, *sipp.digits("0"), sipp.Pause(20000)],
                                                    timeout=60))
            await expect(softphone).to_have_attribute("data-state", "ringing", timeout=20000)
            await page.locator("[data-testid=softphone-answer]").click()
            await expect(softphone).to_have_attribute("data-state", "talking", timeout=10000)

            # 转接: nothing chosen yet is refused on the page; then the repairs team's queue, at once.
            await page.locator("[data-testid=softphone-transfer]").click()
            panel = page.locator("[data-testid=call-transfer-panel]")
            await panel.locator("[data-testid=call-transfer-kind]").select_option("team")
            await panel.locator("[data-testid=call-transfer-blind]").click()
            await expect(panel.locator("[data-testid=call-transfer-error]")).to_have_text("请选择技能组")
            teams = {t["name"]: t["id"] for t in (await admin.call("GET", "/api/teams"))["items"]}
            await panel.locator("[data-testid=call-transfer-team]").select_option(str(teams["维修调度"]))
            await panel.locator("[data-testid=call-transfer-blind]").dblclick()  # a double click sends it once
            await expect(softphone).to_have_attribute("data-state", "ready", timeout=10000)
            call_id = await live_call_of(desk, repairs.user["id"])  # the repairs agent's phone took it
            result = await calling
            assert result.completed, result.output
            assert "BYE" in phone.log()
        call = await desk.ended_call(number, since)
        assert call.id == call_id and call.agent_id == repairs.user["id"]
        kinds = [(e.kind, (e.detail or {}).get("agent_id") or (e.detail or {}).get("team"))
                 for e in await desk.events(call.id) if e.kind in {"connect", "requeue"}]
        assert kinds == [("connect", agent.user["id"]), ("requeue", "维修调度"), ("connect", repairs.user["id"])]
    finally:
        await context.close()
        for staff in (admin, agent, repairs):
            await staff.close()
    assert errors == []
