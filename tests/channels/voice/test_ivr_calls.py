"""The IVR end to end: real SIP callers (sipp) through a real Asterisk into the hub's IVR, as people use it.

Prompts are spoken by espeak-ng and take seconds each (the main menu after hours about 19 s); a key pressed
during a prompt stops it and is kept, so callers here type ahead wherever a person in a hurry would, and
calls that do not depend on each other are placed at once. No phone agent exists yet: a request for a person,
and the fallback of a question asked too often, lead to the after-hours voicemail, and the main menu is read
in its after-hours form. What the caller heard is read from the call's ``prompt`` events.
"""

from __future__ import annotations

import asyncio
import secrets

from sqlalchemy import func, select

from channels.voice.ivr import DEFAULT_MENU, parse_menu
from channels.voice.selfservice import PHRASES
from router.models import Call, Contact, ContactIdentity, Message, Role, utcnow
from tests.channels.voice.conftest import SETTLE, VoiceWorld
from tests.channels.voice.test_calls import caller, wav_seconds
from tests.router.test_bot_lookups import DEMO, demo_account
from tests.support import sipp
from tests.workorders.test_bulletin import window
from workorders.models import WorkOrder

MENU = parse_menu(DEFAULT_MENU.read_text("utf-8"))
PROMPTS, NODES = MENU.prompts, MENU.nodes
WELCOME, INVALID, NO_INPUT = PROMPTS.welcome["zh"], PROMPTS.invalid["zh"], PROMPTS.no_input["zh"]
MAIN = NODES["main"].closed_prompt["zh"]  # what the main menu says while nobody can take a call
BILL, WORK_ORDER = NODES["bill"].prompt["zh"], NODES["work_order"].prompt["zh"]
VOICEMAIL = NODES["voicemail_general"].prompt["zh"]


async def heard(world: VoiceWorld, call: Call) -> list[tuple[str, str]]:
    """What the caller heard, in order: (text, outcome) of each prompt (done, interrupted, skipped, hangup)."""
    prompts = await world.events(call.id, "prompt")
    return [(p.detail.get("text", p.detail["media"]), p.detail["outcome"]) for p in prompts]


async def pressed(world: VoiceWorld, call: Call) -> list[tuple[str | None, str | None]]:
    """Every key, with the node it was pressed at."""
    return [(k.node, k.key) for k in await world.events(call.id, "key")]


async def orders_of(world: VoiceWorld, call: Call) -> list[WorkOrder]:
    async with world.hub.hub.sessions() as session:
        return list(await session.scalars(select(WorkOrder).where(WorkOrder.conversation_id == call.conversation_id)))


def typed(number: str) -> list[sipp.Step]:
    """A number and the terminator, as a practised caller types them."""
    return sipp.digits(number + "#", gap_ms=200)


async def test_menu_keys_replay_back_invalid_silence_and_the_fallback_are_kept_in_the_call_record(
        world: VoiceWorld) -> None:
    browsing, impatient, since = caller(), caller(), utcnow()
    results = await asyncio.gather(
        # * during the welcome: the menu again; 1 during it: the bill; # there: back; 7 is no choice; then silence.
        world.call(browsing, [SETTLE, *sipp.digits("*"), sipp.Pause(1500), *sipp.digits("1"), sipp.Pause(1500),
                              *sipp.digits("#"), sipp.Pause(1500), *sipp.digits("7"), sipp.Pause(33000)],
                   timeout=60),
        # Three keys that are no choice, typed ahead: past the retries, the menu's fallback (a person: after
        # hours the voicemail), which the caller does not wait for.
        world.call(impatient, [SETTLE, *sipp.digits("786", gap_ms=300), sipp.Pause(3000)]))
    assert all(r.completed for r in results), [r.output for r in results]

    call = await world.ended_call(browsing, since)
    assert call.ivr_path == ["main", "bill", "main"]
    assert await pressed(world, call) == [("main", "*"), ("main", "1"), ("bill", "#"), ("main", "7")]
    said = await heard(world, call)
    assert said[0] == (WELCOME, "interrupted")
    # * played the menu again (cut short by 1), # went back to it (cut short by 7).
    assert said[3:6] == [(MAIN, "interrupted"), (BILL, "interrupted"), (MAIN, "interrupted")]
    # 7: the invalid prompt, the menu in full, six seconds of silence, the no-input prompt and the menu again.
    assert said[6:9] == [(INVALID, "done"), (MAIN, "done"), (NO_INPUT, "done")]
    assert said[9] == (MAIN, "hangup")
    assert call.hangup_side == "caller" and call.outcome is None

    call = await world.ended_call(impatient, since)
    assert call.ivr_path == ["main", "voicemail_general"]
    assert await pressed(world, call) == [("main", "7"), ("main", "8"), ("main", "6")]
    said = await heard(world, call)
    assert [text for text, _ in said].count(INVALID) == 3
    assert said[-1] == (VOICEMAIL, "hangup")
    assert not await orders_of(world, call)  # hung up before the beep: nothing to file


async def test_a_bill_by_account_number_read_back_confirmed_reentered_and_refused_to_a_stranger(
        world: VoiceWorld) -> None:
    (owned, _), (other, _) = demo_account(), demo_account()
    owner, careful, stranger = DEMO.phone(owned), DEMO.phone(other), caller()
    assert owner is not None and careful is not None
    since = utcnow()
    results = await asyncio.gather(
        # The owner waits for the read-back, confirms with 1 and listens to the arrears.
        world.call(owner, [SETTLE, *sipp.digits("1"), sipp.Pause(1000), *typed(owned), sipp.Pause(10000),
                           *sipp.digits("1"), sipp.Pause(22000)], timeout=60),
        # Seven digits are refused; the right number is read back, 2 to type it again, then confirmed.
        world.call(careful, [SETTLE, *sipp.digits("1"), sipp.Pause(1000), *typed(other[:7]), sipp.Pause(2000),
                             *typed(other), sipp.Pause(3000), *sipp.digits("2"), sipp.Pause(1000), *typed(other),
                             sipp.Pause(1500), *sipp.digits("1"), sipp.Pause(4000)], timeout=60),
        # Someone else's account: only that it is not registered to this phone.
        world.call(stranger, [SETTLE, *sipp.digits("1"), *typed(owned), *sipp.digits("1"), sipp.Pause(20000)],
                   timeout=60))
    assert all(r.completed for r in results), [r.output for r in results]
    account = await DEMO.account(owned)
    assert account is not None

    call = await world.ended_call(owner, since)
    assert call.ivr_path[:2] == ["main", "bill"]
    assert await pressed(world, call) == [("main", "1"), *[("bill", k) for k in owned + "#"], ("bill", "1")]
    said = await heard(world, call)
    readback = NODES["bill"].confirm["zh"].split("{value}")
    assert any(text.startswith(readback[0]) and text.endswith(readback[1]) and outcome == "done"
               for text, outcome in said)
    answer = [text for text, outcome in said if text.startswith("户号") and outcome == "done"]
    assert answer, said
    assert ("没有欠费" in answer[0]) == (account.arrears == 0) and "账单" in answer[0]
    [lookup] = await world.events(call.id, "lookup")
    assert (lookup.node, lookup.detail) == ("bill", {"kind": "bill", "found": True})

    call = await world.ended_call(careful, since)
    said = [text for text, _ in await heard(world, call)]
    assert NODES["bill"].invalid["zh"] in said
    assert sum(text.startswith(readback[0]) for text in said) == 2
    assert [k for _, k in await pressed(world, call)] == ["1", *other[:7], "#", *other, "#", "2", *other, "#", "1"]
    [lookup] = await world.events(call.id, "lookup")
    assert lookup.detail["found"] is True

    call = await world.ended_call(stranger, since)
    said = [text for text, _ in await heard(world, call)]
    assert PHRASES["not_yours"]["zh"] in said
    assert not any(text.startswith("户号") for text in said)  # no account read out


async def test_work_order_progress_by_its_digits(world: VoiceWorld) -> None:
    number = caller()
    agent = await world.hub.staff(Role.AGENT, listen=False)
    try:
        order = await agent.call("POST", "/api/workorders", {
            "category": "leak_repair", "title": "水表井漏水", "description": "楼下水表井一直在冒水",
            "custom_fields": {"leak_location": "水表井"}, "contact_phone": number}, expect=201)
    finally:
        await agent.close()
    digits = order["number"].removeprefix("GD").replace("-", "")
    since = utcnow()
    result = await world.call(number, [SETTLE, *sipp.digits("2"), *typed(digits), sipp.Pause(16000)])
    assert result.completed, result.output

    call = await world.ended_call(number, since)
    assert call.ivr_path[:2] == ["main", "work_order"]
    assert await pressed(world, call) == [("main", "2"), *[("work_order", k) for k in digits + "#"]]
    answer = [text for text, outcome in await heard(world, call) if text.startswith("工单") and outcome == "done"]
    assert answer and "漏水" in answer[0]


async def test_a_voicemail_for_a_repair_becomes_a_work_order_with_the_recording(world: VoiceWorld) -> None:
    reporter, after_hours, since = caller(), caller(), utcnow()
    repair = NODES["repair"].prompt["zh"]
    results = await asyncio.gather(
        # 4, the whole instruction, the beep, the message, # to end it; the hub says thanks and hangs up.
        world.call(reporter, [SETTLE, *sipp.digits("4"), sipp.Pause(13500), sipp.Voice(3500), *sipp.digits("#")],
                   wait_for_hangup=True, timeout=40),
        # 0 for a person, after hours: the voicemail; the caller speaks after the beep and hangs up.
        world.call(after_hours, [SETTLE, *sipp.digits("0"), sipp.Pause(10500), sipp.Voice(3500)]))
    assert all(r.completed for r in results), [r.output for r in results]

    call = await world.ended_call(reporter, since)
    assert call.ivr_path == ["main", "repair"] and call.outcome == "voicemail" and call.hangup_side == "hub"
    said = await heard(world, call)
    assert (repair, "done") in said and said[-1] == (NODES["repair"].thanks["zh"], "done")
    [order] = await orders_of(world, call)
    [filed] = await world.events(call.id, "work_order")
    assert (order.number, order.source, order.contact_phone, order.external_ref) == (
        filed.detail["number"], "voicemail", call.caller, f"voicemail-{filed.detail['file_id']}")
    agent = await world.hub.staff(Role.AGENT, listen=False)
    try:
        detail = await agent.call("GET", f"/api/workorders/{order.id}")
        assert detail["category"]["code"] == "leak_repair" and detail["source"] == "voicemail"
        [attachment] = detail["attachments"]
        assert attachment["content_type"] == "audio/wav" and attachment["size"] > 0
        async with agent.http.get(agent.base_url + attachment["url"]) as response:
            assert response.status == 200
            audio = await response.read()
        assert audio[:4] == b"RIFF" and audio[8:12] == b"WAVE" and len(audio) == attachment["size"]
    finally:
        await agent.close()
    assert 2.0 < wav_seconds(await world.recording(filed.detail["file_id"])) < 10.0
    async with world.hub.hub.sessions() as session:
        [message] = await session.scalars(select(Message).where(
            Message.conversation_id == call.conversation_id, Message.type == "voice"))
    assert message.payload["call"] == {"id": call.id}

    call = await world.ended_call(after_hours, since)
    assert call.ivr_path == ["main", "voicemail_general"] and call.hangup_side == "caller"
    assert await pressed(world, call) == [("main", "0")]
    [order] = await orders_of(world, call)
    assert (order.source, order.contact_phone) == ("voicemail", call.caller)
    [filed] = await world.events(call.id, "work_order")
    assert filed.detail["number"] == order.number


async def test_a_blacklisted_number_is_told_politely_and_hung_up_on(world: VoiceWorld) -> None:
    number, since = caller(), utcnow()
    async with world.hub.hub.sessions.begin() as session:
        contact = Contact(display_name="骚扰来电", vip=False, blacklisted=True, created_at=since)
        session.add(contact)
        await session.flush()
        session.add(ContactIdentity(contact_id=contact.id, channel="sms", external_id=f"+86{number}", created_at=since))
    result = await world.call(number, [SETTLE, *sipp.digits("1")], wait_for_hangup=True, timeout=30)
    assert result.completed, result.output

    call = await world.ended_call(number, since)
    assert (call.outcome, call.hangup_side, call.ivr_path) == ("blacklisted", "hub", [])
    assert await heard(world, call) == [(PROMPTS.blacklisted["zh"], "done")]  # a key does not cut it short
    assert await pressed(world, call) == [(None, "1")]
    async with world.hub.hub.sessions() as session:
        rejected = await session.scalar(select(func.count()).select_from(Call).where(
            Call.caller == f"+86{number}", Call.outcome == "blacklisted"))
    assert rejected == 1


async def test_bad_input_a_hang_up_mid_number_and_numbers_too_long_are_handled_cleanly(world: VoiceWorld) -> None:
    quitter, rambler, since = caller(), caller(), utcnow()
    results = await asyncio.gather(
        world.call(quitter, [SETTLE, *sipp.digits("1"), sipp.Pause(1000), *sipp.digits("3123", gap_ms=200)]),
        # Ten digits where eight are asked: refused as a whole, the rest of the entry is not taken for a choice.
        # The caller stays on long enough to hear the question again, however slow the machine.
        world.call(rambler, [SETTLE, *sipp.digits("1"), *typed("1234567890"), sipp.Pause(15000)]))
    assert all(r.completed for r in results), [r.output for r in results]

    call = await world.ended_call(quitter, since)
    assert call.ended_at is not None and call.hangup_side == "caller"
    assert call.ivr_path == ["main", "bill"] and call.outcome is None
    assert [k for _, k in await pressed(world, call)] == ["1", "3", "1", "2", "3"]
    assert not await world.events(call.id, "lookup")
    assert not await orders_of(world, call)
    assert not world.adapter.calls or all(c.call_id != call.id for c in world.adapter.calls.values())

    call = await world.ended_call(rambler, since)
    assert call.ivr_path == ["main", "bill"]
    said = await heard(world, call)
    refused = said.index((NODES["bill"].invalid["zh"], "done"))
    assert [text for text, _ in said[refused + 1:]] == [BILL]  # asked again, then the caller hung up
    assert not await world.events(call.id, "lookup")


async def test_the_outage_notice_of_the_moment_is_heard_before_the_menu_and_on_key_3(world: VoiceWorld) -> None:
    mark = f"{secrets.randbelow(90) + 10}"
    supervisor = await world.hub.staff(Role.SUPERVISOR, listen=False)
    try:
        notice = await supervisor.call("POST", "/api/notices", {
            "kind": "planned_outage", "title": f"人民路{mark}号停水", "body": "今晚施工。", "districts": [],
            **window(-1, 2)}, expect=201)
        number, since = caller(), utcnow()
        try:
            result = await world.call(number, [sipp.Pause(15000), *sipp.digits("3"), sipp.Pause(12000)])
        finally:
            await supervisor.call("DELETE", f"/api/notices/{notice['id']}", expect=204)
    finally:
        await supervisor.close()
    assert result.completed, result.output

    call = await world.ended_call(number, since)
    said = await heard(world, call)
    assert said[0] == (WELCOME, "done")
    assert said[1][0].startswith("最新停水公告") and f"人民路{mark}号停水" in said[1][0] and said[1][1] == "done"
    assert call.ivr_path[:2] == ["main", "outage"]
    assert any(f"人民路{mark}号停水" in text and outcome == "done" for text, outcome in said[2:]), said
    [lookup] = await world.events(call.id, "lookup")
    assert lookup.detail == {"kind": "outage", "found": True}

