"""The agent's desk in the browser: canned replies by shortcut, emoji, internal notes, a supervisor's whisper,
closing with a consultation type, transfer with a note, unread counts, queue chips and keyboard shortcuts."""

from __future__ import annotations

import asyncio
import re

from playwright.async_api import expect

from channels.base import InboundMessage
from router.models import Role
from tests.support.desks import Desk, conversation
from tests.support.files import png_bytes


async def ready_with_a_chat(desk: Desk, resident, text: str) -> dict:
    await desk.becomes("ready")
    await desk.show("mine")
    said = await resident.says(text)
    await expect(desk.item(said["conversation_id"])).to_be_visible()
    await desk.opens(said["conversation_id"])
    await expect(desk.page.locator("[data-testid=reply-input]")).to_be_enabled()
    return said


async def test_canned_reply_emoji_and_an_internal_note_from_the_keyboard(desks, residents) -> None:
    desk = await desks()
    resident = await residents()
    await ready_with_a_chat(desk, resident, "请问怎么缴水费")
    box = desk.page.locator("[data-testid=reply-input]")

    await box.press_sequentially("/h")
    suggestions = desk.page.locator("[data-testid=canned-item]")
    await expect(suggestions.first).to_have_attribute("data-shortcut", "hh")
    await box.press("Enter")  # picks the suggestion; does not send
    await expect(box).to_have_value(re.compile(r"^请您提供水费户号"))
    await expect(desk.page.locator("[data-testid=canned-list]")).to_be_hidden()
    await desk.page.click("[data-testid=emoji-toggle]")
    await desk.page.locator("[data-testid=emoji-item]", has_text="🙏").click()
    await box.press("Enter")
    heard = await resident.hears("agent")
    assert heard["text"].startswith("请您提供水费户号") and heard["text"].endswith("🙏")

    await box.press("Alt+n")
    await expect(desk.page.locator("[data-testid=mode-note]")).to_have_attribute("aria-checked", "true")
    await box.fill("居民户号尾号 0231,已核实无欠费")
    await box.press("Enter")
    note = desk.page.locator("[data-testid=agent-message]", has_text="已核实无欠费")
    await expect(note.locator("[data-testid=note-tag]")).to_have_text("内部备注")
    await asyncio.sleep(0.5)
    assert not [f for f in resident.frames.unclaimed() if "已核实无欠费" in str(f)]


async def test_a_supervisor_whispers_and_the_agent_closes_with_a_consultation_type(acd_hub, desks, residents):
    agent = await desks()
    boss = await desks(Role.SUPERVISOR, teams=[])
    said = await ready_with_a_chat(agent, await residents(), "我家水表不走了")

    await boss.show("monitor")
    await boss.opens(said["conversation_id"])
    await expect(boss.page.locator("[data-testid=reply-input]")).to_be_disabled()  # not their chat …
    await boss.page.click("[data-testid=mode-note]")  # … but they may whisper
    await boss.page.fill("[data-testid=reply-input]", "先确认表前阀是否打开")
    await boss.page.click("[data-testid=reply-send]")
    await expect(agent.page.locator("[data-testid=toast]")).to_contain_text("先确认表前阀是否打开")
    whisper = agent.page.locator("[data-testid=agent-message]", has_text="先确认表前阀是否打开")
    await expect(whisper.locator("[data-testid=note-tag]")).to_have_text("班长提示")

    await agent.page.locator("[data-testid=reply-input]").press("Alt+e")
    dialog = agent.page.locator("[data-testid=close-dialog]")
    await expect(dialog).to_be_visible()
    await agent.page.click("[data-testid=close-confirm]")  # nothing chosen yet
    await expect(dialog.locator(".field-error")).to_have_text("请选择咨询类型")
    assert (await conversation(acd_hub, said["conversation_id"])).state == "assigned"
    await agent.page.select_option("[data-testid=disposition-select]", "meter")
    await agent.page.click("[data-testid=close-confirm]")
    await expect(dialog).to_be_hidden()
    await expect(agent.page.locator("#conversation-meta")).to_contain_text("咨询类型：水表问题")
    closed = await conversation(acd_hub, said["conversation_id"])
    assert (closed.state, closed.disposition) == ("closed", "meter")


async def test_a_transfer_to_a_colleague_carries_a_note(acd_hub, desks, residents) -> None:
    first, second = await desks(), await desks()
    await second.becomes("busy")  # signed in, takes no new chats, still a transfer target
    await second.show("mine")
    said = await ready_with_a_chat(first, await residents(), "我要报装新户")

    await first.page.click("[data-testid=transfer]")
    await expect(first.page.locator("[data-testid=transfer-dialog]")).to_be_visible()
    await first.page.select_option("[data-testid=transfer-agent]", str(second.staff.user["id"]))
    await first.page.fill("[data-testid=transfer-note]", "新户报装,需要业务组跟进材料")
    await first.page.click("[data-testid=transfer-confirm]")
    await expect(first.page.locator("[data-testid=transfer-dialog]")).to_be_hidden()
    await expect(first.my_chats()).to_have_count(0)

    await expect(second.page.locator("[data-testid=toast]")).to_have_text(re.compile("^新会话已分配"))
    await second.opens(said["conversation_id"])
    await expect(second.page.locator("[data-testid=agent-message]", has_text="需要业务组跟进材料")).to_be_visible()
    assert (await conversation(acd_hub, said["conversation_id"])).assignee_id == second.staff.user["id"]


async def test_unread_counts_queue_chips_and_moving_through_chats_by_keyboard(acd_hub, desks, residents) -> None:
    desk = await desks()
    await desk.becomes("away", "会议")
    one, two = await residents(), await residents()
    first = await one.says("第一位:停水了")
    second = await two.says("第二位:水压低")
    await expect(desk.page.locator("[data-testid=queue-chip]").first).to_have_text("全部 2")
    await expect(desk.page.locator("[data-testid=queue-chip]").nth(1)).to_have_text("热线坐席 2")

    await desk.becomes("ready")
    await desk.show("mine")
    await expect(desk.my_chats()).to_have_count(2)
    await desk.opens(second["conversation_id"])
    await desk.opens(first["conversation_id"])
    await two.says("还在吗")
    await two.says("水压真的很低")
    await expect(desk.item(second["conversation_id"]).locator("[data-testid=unread-count]")).to_have_text("2")
    await expect(desk.page.locator("[data-testid=mine-unread]")).to_have_text("2")

    await desk.page.keyboard.press("Alt+ArrowDown")  # the other chat of the list
    await expect(desk.item(second["conversation_id"])).to_have_attribute("aria-current", "true")
    await expect(desk.item(second["conversation_id"]).locator("[data-testid=unread-count]")).to_have_count(0)
    await expect(desk.page.locator("[data-testid=mine-unread]")).to_be_hidden()
    await desk.page.keyboard.press("Alt+1")
    await expect(desk.page.locator("[data-testid=tab-queued]")).to_have_attribute("aria-selected", "true")


async def test_a_shared_location_shows_as_a_map_link(acd_hub, desks, residents) -> None:
    desk = await desks()
    resident = await residents()
    said = await ready_with_a_chat(desk, resident, "我这里路面在冒水,发个位置")
    await acd_hub.hub.ingest(InboundMessage(
        channel="webchat", external_id=resident.hello["visitor_id"], channel_message_id="loc-1", type="location",
        text="清源路18号<script>", payload={"location": {"lat": 31.38521, "lng": 120.98143,
                                                        "label": "昆山市清源路18号<b>东门</b>"}}))
    link = desk.page.locator("[data-testid=location-link]")
    await expect(link).to_have_text("📍 昆山市清源路18号<b>东门</b>")  # shown as text, never as markup
    href = await link.get_attribute("href")
    assert href.startswith("https://uri.amap.com/marker?position=120.98143,31.38521&name=")
    assert "%3Cb%3E" in href and (await link.get_attribute("target")) == "_blank"
    assert (await conversation(acd_hub, said["conversation_id"])).state == "assigned"


async def test_an_agent_sends_a_picture_from_the_reply_box(desks, residents) -> None:
    desk = await desks()
    resident = await residents()
    await ready_with_a_chat(desk, resident, "表箱在哪里,能发个图吗")
    picture = png_bytes(6, 4)
    await desk.page.set_input_files("[data-testid=attach-input]",
                                    files=[{"name": "表箱位置.png", "mimeType": "image/png", "buffer": picture}])
    heard = await resident.hears("agent")
    assert (heard["type"], heard["attachment"]["name"]) == ("image", "表箱位置.png")
    shown = desk.page.locator("[data-testid=agent-message][data-author=agent] .thumb img")
    await expect(shown).to_have_attribute("alt", "表箱位置.png")
    await expect(shown).to_have_js_property("naturalWidth", 6)  # the stored file itself, loaded by the page
