"""Recorded prompts through the admin API: a studio WAV replaces a prompt's synthesised speech (converted to
what the phone line plays), anything else is refused with the reason and leaves what was in force; a menu text
changed loses its recording until it is put back; removing the recording brings the synthesised voice back; the
runtime's view; other roles refused."""

from __future__ import annotations

from sqlalchemy import func, select

from channels.voice.recordings import IvrRecording, recordings_in_force
from router.audit import AuditEntry
from router.models import Role, StoredFile
from tests.conftest import RunningHub
from tests.support.actors import Staff
from tests.support.ivr import tone_wav, wav_facts

PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000") + bytes(40)


async def prompt(admin: Staff, place: str, language: str = "zh") -> dict:
    items = (await admin.call("GET", "/api/ivr/prompts"))["items"]
    [found] = [p for p in items if place in p["places"] and p["language"] == language]
    return found


async def record(admin: Staff, key: str, data: bytes, name: str = "welcome.wav", expect: int = 200) -> dict:
    return await admin.upload(f"/api/ivr/prompts/{key}/recording", name, data, expect=expect, method="PUT")


async def audio(admin: Staff, key: str) -> bytes:
    status, body, content_type = await admin.fetch(f"/api/ivr/prompts/{key}/audio")
    assert (status, content_type) == (200, "audio/wav"), (status, body[:200])
    return body


async def ivr_files(hub: RunningHub) -> int:
    async with hub.hub.sessions() as session:
        return await session.scalar(select(func.count()).select_from(StoredFile)
                                    .where(StoredFile.owner_channel == "ivr"))


async def test_a_studio_recording_replaces_a_prompt_and_removing_it_brings_the_synthesised_voice_back(
        acd_hub: RunningHub) -> None:
    admin = await acd_hub.staff(Role.ADMIN, listen=False)
    try:
        welcome = await prompt(admin, "welcome")
        assert welcome["recording"] is None and len(welcome["key"]) == 64
        items = (await admin.call("GET", "/api/ivr/prompts"))["items"]
        assert not any("{" in p["text"] for p in items)  # notices and typed numbers are only known in a call
        synthesised = await audio(admin, welcome["key"])
        assert wav_facts(synthesised)[:3] == (1, 2, 8000)

        recorded = await record(admin, welcome["key"], tone_wav(2.5), name="欢迎词.wav")
        assert recorded["recording"]["duration_ms"] == 2500 and recorded["recording"]["name"] == "欢迎词.wav"
        assert recorded["recording"]["uploaded_by"] == admin.user["username"]
        heard = await audio(admin, welcome["key"])
        channels, width, rate, seconds = wav_facts(heard)
        assert (channels, width, rate) == (1, 2, 8000) and abs(seconds - 2.5) < 0.01  # as the line plays it
        assert (await prompt(admin, "welcome"))["recording"]["duration_ms"] == 2500
        in_force = await recordings_in_force(acd_hub.hub.sessions, acd_hub.hub.files)
        assert set(in_force) == {welcome["key"]} and in_force[welcome["key"]].read_bytes() == heard

        async with acd_hub.hub.sessions() as session:
            entry = await session.scalar(select(AuditEntry).where(AuditEntry.action == "ivr_prompt.record"))
        assert entry is not None and entry.actor == admin.user["username"] and entry.target_id == welcome["key"]
        assert entry.details["duration_ms"] == 2500

        # A second take replaces the first; the first one's bytes go.
        first = in_force[welcome["key"]]
        await record(admin, welcome["key"], tone_wav(1.5, rate=16_000, channels=1, hz=660))
        assert abs(wav_facts(await audio(admin, welcome["key"]))[3] - 1.5) < 0.01
        assert not first.exists() and await ivr_files(acd_hub) == 1

        # The welcome's words change: the recording says the old words, so it no longer applies...
        menu = await admin.call("GET", "/api/ivr/menu")
        changed = menu["yaml"].replace(welcome["text"], "您好,这里是供水热线。")
        await admin.call("PUT", "/api/ivr/menu", {"yaml": changed})
        assert (await prompt(admin, "welcome"))["recording"] is None
        # ...until they are put back.
        await admin.call("PUT", "/api/ivr/menu", {"yaml": menu["yaml"]})
        assert (await prompt(admin, "welcome"))["recording"]["duration_ms"] == 1500

        removed = await admin.call("DELETE", f"/api/ivr/prompts/{welcome['key']}/recording")
        assert removed["recording"] is None and await audio(admin, welcome["key"]) == synthesised
        assert await recordings_in_force(acd_hub.hub.sessions, acd_hub.hub.files) == {}
        assert await ivr_files(acd_hub) == 0
        await admin.call("DELETE", f"/api/ivr/prompts/{welcome['key']}/recording")  # twice: still synthesised
    finally:
        await admin.close()


async def test_what_is_not_a_usable_recording_is_refused_and_the_one_in_force_stays(acd_hub: RunningHub) -> None:
    admin = await acd_hub.staff(Role.ADMIN, listen=False)
    try:
        main = await prompt(admin, "main.prompt")
        await record(admin, main["key"], tone_wav(2.0))
        kept = await audio(admin, main["key"])
        refused = {
            "picture.wav": PNG,  # named .wav, is a PNG
            "short.wav": tone_wav(0.2),
            "long.wav": tone_wav(121, rate=8000, channels=1),
            "float.wav": float_wav(),
            "six-channels.wav": tone_wav(1.0, rate=8000, channels=6),
            "cut.wav": tone_wav(2.0)[:60],  # the header promises two seconds, almost nothing came
        }
        for name, data in refused.items():
            body = await record(admin, main["key"], data, name=name, expect=422)
            assert body["error"]["code"] == "invalid_recording", (name, body)
        assert "长度须在 0.5 到 120 秒之间" in (await record(admin, main["key"], tone_wav(0.2), expect=422)
                                         )["error"]["message"]
        assert "WAV" in (await record(admin, main["key"], PNG, expect=422))["error"]["message"]
        await record(admin, main["key"], b"", expect=400)
        status, body = await admin.attempt("PUT", f"/api/ivr/prompts/{main['key']}/recording", {"file": "x"})
        assert status == 415, body
        await record(admin, "0" * 64, tone_wav(1.0), expect=404)  # no prompt of the menu has this key
        await admin.call("GET", f"/api/ivr/prompts/{'0' * 64}/audio", expect=404)

        assert await audio(admin, main["key"]) == kept
        assert (await prompt(admin, "main.prompt"))["recording"]["duration_ms"] == 2000
        async with acd_hub.hub.sessions() as session:
            assert await session.scalar(select(func.count()).select_from(IvrRecording)) == 1
        assert await ivr_files(acd_hub) == 1
    finally:
        await admin.close()


async def test_only_admins_record_prompts(acd_hub: RunningHub) -> None:
    admin = await acd_hub.staff(Role.ADMIN, listen=False)
    try:
        key = (await prompt(admin, "welcome"))["key"]
    finally:
        await admin.close()
    for role in (Role.AGENT, Role.SUPERVISOR, Role.HANDLER):
        staff = await acd_hub.staff(role, listen=False)
        try:
            await staff.call("GET", "/api/ivr/prompts", expect=403)
            await record(staff, key, tone_wav(1.0), expect=403)
            await staff.call("DELETE", f"/api/ivr/prompts/{key}/recording", expect=403)
            assert (await staff.fetch(f"/api/ivr/prompts/{key}/audio"))[0] == 403
        finally:
            await staff.close()
    assert await ivr_files(acd_hub) == 0


def float_wav() -> bytes:
    """A WAV of 32-bit float samples (format 3), which is not PCM."""
    pcm = bytearray(tone_wav(1.0, rate=8000, channels=1, width=2))
    pcm[20:22] = (3).to_bytes(2, "little")
    return bytes(pcm)
