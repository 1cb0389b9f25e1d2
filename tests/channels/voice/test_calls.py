"""Real SIP calls (sipp) through a real Asterisk into the hub's voice channel."""

from __future__ import annotations

import asyncio
import secrets
import wave
from typing import Any

import pytest
from sqlalchemy import select

from channels.voice.call import CallEnded, LiveCall
from router.models import Call, Contact, ContactIdentity, Conversation, Message, utcnow
from tests.channels.voice.conftest import WELCOME, VoiceWorld, greet
from tests.support import sipp

LONG_PROMPT = "您好,这里是水务服务热线。本通话将被录音。停水查询请按一,账单查询请按二,报修请按三,人工服务请按零。"


def caller() -> str:
    return "139" + "".join(secrets.choice("0123456789") for _ in range(8))


def wav_seconds(path: Any) -> float:
    with wave.open(str(path), "rb") as audio:
        assert (audio.getnchannels(), audio.getsampwidth()) == (1, 2)
        assert audio.getframerate() == 8000
        return audio.getnframes() / audio.getframerate()


async def test_a_call_is_answered_welcomed_recorded_and_every_key_kept_in_order(world: VoiceWorld) -> None:
    world.adapter.script = greet
    number, since = caller(), utcnow()
    result = await world.call(number, [sipp.Pause(4500), *sipp.digits("12#", gap_ms=300), sipp.Pause(800)])
    assert result.completed, result.output

    call = await world.ended_call(number, since)
    assert call.did == "962740"
    assert call.answered_at is not None and call.answered_at <= call.ended_at
    assert (call.hangup_side, call.hangup_cause, call.hangup_cause_text) == ("caller", 16, "Normal Clearing")

    prompts = await world.events(call.id, "prompt")
    assert [(p.detail["text"], p.detail["outcome"]) for p in prompts] == [(WELCOME, "done")]
    assert prompts[0].detail["media"].startswith("sound:shuiwu/")
    keys = await world.events(call.id, "key")
    assert [k.key for k in keys] == ["1", "2", "#"]
    assert keys[0].at > prompts[0].at
    assert [e.kind for e in await world.events(call.id)][:2] == ["answer", "prompt"]

    # The conversation is the caller's, by number, on channel voice.
    async with world.hub.hub.sessions() as session:
        conversation = await session.get(Conversation, call.conversation_id)
        first = await session.scalar(select(Message).where(Message.conversation_id == call.conversation_id,
                                                           Message.author == "resident"))
    assert (conversation.channel, conversation.external_id) == ("voice", f"+86{number}")
    assert first.type == "event" and first.payload["call"] == {"id": call.id, "did": "962740"}

    # Recorded from answer to hang-up. Asterisk writes the bridge's audio as it flows, and sipp sends RTP only
    # while it plays a pcap: here the welcome (about 4.5 s) and the keys.
    assert call.recording_file_id is not None
    assert 4.0 < wav_seconds(await world.recording(call.recording_file_id)) < 12.0
    assert not list(world.asterisk.recordings.glob(f"call-{call.channel_id}*")), "left behind in Asterisk"


async def test_the_ivr_drives_a_call_through_the_per_call_object(world: VoiceWorld) -> None:
    seen: dict[str, Any] = {}

    async def script(call: LiveCall) -> None:
        await call.enter("main")
        seen["first"] = await call.play("请按一", interruptible=True)
        seen["key"] = await call.collect_key(timeout=5)
        await call.enter("account")
        seen["digits"] = await call.collect_digits(8, terminator="#", timeout=5)
        seen["nothing"] = await call.collect_key(timeout=0.5)
        await call.note("lookup", {"account": seen["digits"], "found": False})
        await call.set_outcome("self_service")
        await call.hangup()

    world.adapter.script = script
    number, since = caller(), utcnow()
    result = await world.call(number, [sipp.Pause(600), *sipp.digits("1"), *sipp.digits("4321#", gap_ms=300)],
                              wait_for_hangup=True)
    assert result.completed, result.output

    call = await world.ended_call(number, since)
    assert seen == {"first": "1", "key": "1", "digits": "4321#", "nothing": None}
    assert call.hangup_side == "hub" and call.outcome == "self_service"
    assert call.ivr_path == ["main", "account"]
    keys = await world.events(call.id, "key")
    assert [(k.node, k.key) for k in keys] == [("main", "1"), ("account", "4"), ("account", "3"), ("account", "2"),
                                              ("account", "1"), ("account", "#")]
    [prompt] = await world.events(call.id, "prompt")
    assert prompt.detail["outcome"] == "interrupted"
    [lookup] = await world.events(call.id, "lookup")
    assert lookup.detail == {"account": "4321#", "found": False} and lookup.node == "account"


async def test_a_caller_hanging_up_mid_prompt_ends_the_call_cleanly(world: VoiceWorld) -> None:
    ended: list[str] = []

    async def script(call: LiveCall) -> None:
        try:
            await call.play(LONG_PROMPT, interruptible=False)
            await call.collect_key(timeout=10)
        except CallEnded:
            ended.append("ended")
            raise

    world.adapter.script = script
    number, since = caller(), utcnow()
    result = await world.call(number, [sipp.Pause(1500)])
    assert result.completed, result.output

    call = await world.ended_call(number, since)
    assert call.hangup_side == "caller" and call.hangup_cause == 16
    [prompt] = await world.events(call.id, "prompt")
    assert prompt.detail["outcome"] == "hangup" and prompt.detail["ms"] < 5000
    assert ended == ["ended"]
    assert call.recording_file_id is not None
    assert 0.5 < wav_seconds(await world.recording(call.recording_file_id)) < 5.0
    assert not world.adapter.calls


async def test_a_call_whose_end_went_unheard_is_closed_once_its_script_is_over(
        world: VoiceWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    """A hub taking up calls after a restart may take one whose channel ends before it listens: no end event
    comes. Once the call's script is over and Asterisk no longer has the channel, the record is closed."""
    async def script(call: LiveCall) -> None:
        await call.play(LONG_PROMPT, interruptible=False)

    world.adapter.script = script
    for kind in ("StasisEnd", "ChannelDestroyed"):  # the channel's end goes unheard
        monkeypatch.setitem(world.adapter.ari._handlers, kind, [])
    number, since = caller(), utcnow()
    result = await world.call(number, [sipp.Pause(1500)])
    assert result.completed, result.output

    call = await world.ended_call(number, since, timeout=30)
    assert call.hangup_cause is None  # not heard
    [prompt] = await world.events(call.id, "prompt")
    assert prompt.detail["outcome"] != "done"
    assert not world.adapter.calls


async def test_a_voicemail_is_recorded_stored_and_noted(world: VoiceWorld) -> None:
    stored: list[Any] = []

    async def script(call: LiveCall) -> None:
        await call.enter("voicemail")
        stored.append(await call.record_voicemail(max_seconds=8))
        await call.hangup()

    world.adapter.script = script
    number, since = caller(), utcnow()
    result = await world.call(number, [sipp.Pause(1200), sipp.Voice(3000), *sipp.digits("#")],
                              wait_for_hangup=True)
    assert result.completed, result.output

    call = await world.ended_call(number, since)
    [attachment] = stored
    assert attachment is not None and attachment.content_type == "audio/wav"
    assert 2.0 < wav_seconds(await world.recording(attachment.file_id)) < 8.0
    [note] = await world.events(call.id, "voicemail")
    assert note.node == "voicemail" and note.detail["file_id"] == attachment.file_id
    assert call.hangup_side == "hub"


async def test_keys_still_arrive_after_the_event_stream_was_lost_mid_call(world: VoiceWorld) -> None:
    number, since = caller(), utcnow()
    placed = asyncio.create_task(world.call(number, [sipp.Pause(4000), *sipp.digits("5"), sipp.Pause(2500),
                                                     *sipp.digits("7"), sipp.Pause(600)]))
    await asyncio.sleep(4.8)  # after the first key
    connections = world.adapter.ari.connections
    await world.adapter.ari.drop_connection()
    await asyncio.wait_for(world.adapter.ari.connected.wait(), 5)
    assert world.adapter.ari.connections == connections + 1
    result = await placed
    assert result.completed, result.output

    call = await world.ended_call(number, since)
    assert [k.key for k in await world.events(call.id, "key")] == ["5", "7"]
    assert call.hangup_side == "caller" and call.recording_file_id is not None



async def test_a_caller_known_by_sms_is_the_same_contact_and_calls_again_into_one_conversation(
        world: VoiceWorld) -> None:
    number, since = caller(), utcnow()
    async with world.hub.hub.sessions.begin() as session:
        contact = Contact(display_name="短信居民", vip=False, blacklisted=False, created_at=since)
        session.add(contact)
        await session.flush()
        session.add(ContactIdentity(contact_id=contact.id, channel="sms", external_id=f"+86{number}", created_at=since))

    for _ in range(2):
        result = await world.call(number, [sipp.Pause(300)])
        assert result.completed, result.output
    async with world.hub.hub.sessions() as session:
        calls = list(await session.scalars(select(Call).where(Call.caller == f"+86{number}").order_by(Call.id)))
        conversations = {c.conversation_id for c in calls}
        assert len(calls) == 2 and len(conversations) == 1
        conversation = await session.get(Conversation, conversations.pop())
        identities = await session.scalars(select(ContactIdentity.channel).where(
            ContactIdentity.contact_id == contact.id).order_by(ContactIdentity.id))
        assert conversation.contact_id == contact.id and list(identities) == ["sms", "voice"]


async def test_a_voicemail_ended_by_hanging_up_is_kept(world: VoiceWorld) -> None:
    kept: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    async def script(call: LiveCall) -> None:
        kept.set_result(await call.record_voicemail())

    world.adapter.script = script
    number, since = caller(), utcnow()
    result = await world.call(number, [sipp.Pause(1200), sipp.Voice(3000)])
    assert result.completed, result.output

    call = await world.ended_call(number, since)
    attachment = await asyncio.wait_for(kept, 15)
    assert attachment is not None and 2.0 < wav_seconds(await world.recording(attachment.file_id)) < 8.0
    assert call.hangup_side == "caller"
    [note] = await world.events(call.id, "voicemail")
    assert note.detail["file_id"] == attachment.file_id


async def test_calls_at_once_each_keep_their_own_keys_in_order(world: VoiceWorld) -> None:
    numbers, since = [caller() for _ in range(8)], utcnow()
    keys = ["1234", "9876", "5#5#", "0*0*", "2468", "1357", "8642", "7531"]
    results = await asyncio.gather(*(
        world.call(number, [sipp.Pause(4500), *sipp.digits(pressed, gap_ms=250), sipp.Pause(500)])
        for number, pressed in zip(numbers, keys, strict=True)))
    assert all(r.completed for r in results), [r.output for r in results if not r.completed]
    for number, pressed in zip(numbers, keys, strict=True):
        call = await world.ended_call(number, since)
        assert "".join(k.key for k in await world.events(call.id, "key")) == pressed
        assert call.recording_file_id is not None and call.hangup_side == "caller"


async def test_a_digit_entry_has_one_time_limit_for_the_whole_number(world: VoiceWorld) -> None:
    seen: dict[str, Any] = {}

    async def script(call: LiveCall) -> None:
        started = asyncio.get_running_loop().time()
        seen["digits"] = await call.collect_digits(8, terminator="#", timeout=2.5)
        seen["seconds"] = asyncio.get_running_loop().time() - started
        await call.hangup()

    world.adapter.script = script
    number, since = caller(), utcnow()
    # A key every 0.7 s and more (six take over 3.5 s); the hub hangs up in the middle of them (which sipp, still
    # pressing keys, calls a failure). Within the 2.5 s of the whole entry at most four keys fit, whenever the
    # first one comes: a time limit per key would have let all six in.
    await world.call(number, [*sipp.digits("123456", gap_ms=700), sipp.Pause(3000)])
    call = await world.ended_call(number, since)
    assert call.hangup_side == "hub"
    assert 1 <= len(seen["digits"]) <= 4 and "123456".startswith(seen["digits"])
    assert 2.4 < seen["seconds"] < 3.5
