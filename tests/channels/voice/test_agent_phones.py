"""Agents' SIP phones (channels/voice/phones.py): an admin gives an agent an extension, the hub pushes it to the
real Asterisk over ARI, and a phone (sipp) registers with the password shown that once. A wrong or replaced
password, a removed extension and a disabled account are refused; after Asterisk restarts (forgetting every
pushed phone) the hub pushes them again; callers from the trunk are still callers."""

from __future__ import annotations

import asyncio

from channels.voice.phones import md5_cred
from router.models import Role, StaffUser
from tests.channels.voice.conftest import VoiceWorld, extension
from tests.channels.voice.test_asterisk_outage import until
from tests.channels.voice.test_calls import caller
from tests.support import sipp


async def endpoint_state(world: VoiceWorld, extension: str) -> str | None:
    """The endpoint's state in Asterisk, None when Asterisk has no such endpoint."""
    try:
        endpoint = await world.adapter.ari.request("GET", f"/endpoints/PJSIP/{extension}")
    except Exception as exc:
        if getattr(exc, "status", None) == 404:
            return None
        raise
    return endpoint["state"]


async def until_endpoint(world: VoiceWorld, extension: str, present: bool, within: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while (await endpoint_state(world, extension) is not None) != present:
        assert asyncio.get_running_loop().time() < deadline, f"endpoint {extension} present={not present} still"
        await asyncio.sleep(0.1)


async def test_an_agent_gets_a_phone_that_registers_with_the_password_shown_once(world: VoiceWorld) -> None:
    admin = await world.hub.staff(Role.ADMIN, listen=False)
    agent = await world.hub.staff(Role.AGENT, listen=False)
    number = extension()
    try:
        given = await admin.call("PUT", f"/api/users/{agent.user['id']}/phone", {"extension": number})
        assert given["extension"] == number and len(given["password"]) >= 16
        await until_endpoint(world, number, present=True)
        port = world.asterisk.sip_port
        assert await sipp.register(port, number, given["password"]) == 200
        assert await sipp.register(port, number, given["password"] + "x") == 401

        # The hub keeps the digest Asterisk checks, never the password; the admin list shows the extension.
        async with world.hub.hub.sessions() as session:
            row = await session.get(StaffUser, agent.user["id"])
        assert row.sip_md5_cred == md5_cred(number, world.hub.hub.settings.voice_sip_realm, given["password"])
        assert given["password"] not in str(await admin.call("GET", "/api/users"))
        listed = {u["id"]: u for u in (await admin.call("GET", "/api/users"))["items"]}
        assert listed[agent.user["id"]]["sip_extension"] == number

        # A new password (the phone handed to someone else) replaces the old one at once.
        again = await admin.call("PUT", f"/api/users/{agent.user['id']}/phone", {"extension": number})
        deadline = asyncio.get_running_loop().time() + 10
        while await sipp.register(port, number, given["password"]) != 401:
            assert asyncio.get_running_loop().time() < deadline, "the replaced password still registers"
            await asyncio.sleep(0.2)
        assert await sipp.register(port, number, again["password"]) == 200

        # A disabled account's phone is taken out of Asterisk, and given back with the account.
        await admin.call("PATCH", f"/api/users/{agent.user['id']}", {"active": False})
        await until_endpoint(world, number, present=False)
        assert await sipp.register(port, number, again["password"]) != 200
        await admin.call("PATCH", f"/api/users/{agent.user['id']}", {"active": True})
        await until_endpoint(world, number, present=True)
        assert await sipp.register(port, number, again["password"]) == 200

        # Removed: Asterisk forgets it, the account shows none.
        removed = await admin.call("DELETE", f"/api/users/{agent.user['id']}/phone")
        assert removed["sip_extension"] is None
        await until_endpoint(world, number, present=False)
        assert await sipp.register(port, number, again["password"]) != 200
    finally:
        await admin.close()
        await agent.close()


async def test_phones_are_pushed_again_after_asterisk_restarts(world: VoiceWorld) -> None:
    admin = await world.hub.staff(Role.ADMIN, listen=False)
    agent = await world.hub.staff(Role.SUPERVISOR, listen=False)
    number = extension()
    try:
        given = await admin.call("PUT", f"/api/users/{agent.user['id']}/phone", {"extension": number})
        await until_endpoint(world, number, present=True)
        world.asterisk.stop()
        await until(lambda: not world.adapter.connected)
        world.asterisk.start()  # its memory is empty: no agent's phone
        await asyncio.wait_for(world.adapter.ari.connected.wait(), 20)
        await until_endpoint(world, number, present=True)
        assert await sipp.register(world.asterisk.sip_port, number, given["password"]) == 200

        # A caller from the trunk is still a caller: the IVR answers them.
        result = await world.call(caller(), [sipp.Pause(1500)])
        assert result.completed, result.output
    finally:
        await admin.close()
        await agent.close()


async def test_extensions_are_checked(world: VoiceWorld) -> None:
    admin = await world.hub.staff(Role.ADMIN, listen=False)
    agent, other, editor = [await world.hub.staff(role, listen=False) for role in (Role.AGENT, Role.AGENT, Role.EDITOR)]
    number = extension()
    try:
        for bad in ("12", "0123", "1234567", "12a4", "+8613800138000", ""):
            status, body = await admin.attempt("PUT", f"/api/users/{agent.user['id']}/phone", {"extension": bad})
            assert (status, body["error"]["code"]) == (422, "invalid"), (bad, body)
        await admin.call("PUT", f"/api/users/{agent.user['id']}/phone", {"extension": number})
        status, body = await admin.attempt("PUT", f"/api/users/{other.user['id']}/phone", {"extension": number})
        assert (status, body["error"]["code"]) == (409, "extension_taken")
        status, body = await admin.attempt("PUT", f"/api/users/{editor.user['id']}/phone", {"extension": extension()})
        assert (status, body["error"]["code"]) == (409, "no_phone_for_role")
        status, _ = await agent.attempt("PUT", f"/api/users/{agent.user['id']}/phone", {"extension": extension()})
        assert status == 403  # only admins hand out phones
        status, _ = await admin.attempt("PUT", "/api/users/999999/phone", {"extension": extension()})
        assert status == 404

        # An agent made an editor loses the phone.
        await admin.call("PATCH", f"/api/users/{agent.user['id']}", {"role": "editor"})
        await until_endpoint(world, number, present=False)
        listed = {u["id"]: u for u in (await admin.call("GET", "/api/users"))["items"]}
        assert listed[agent.user["id"]]["sip_extension"] is None
    finally:
        for person in (admin, agent, other, editor):
            await person.close()

