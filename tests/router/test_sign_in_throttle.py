"""Sign-in under attack: password checks off the event loop, growing waits, locks the admin sees and lifts,
and the password policy. Each test runs a hub of its own with the real limits (the shared hub's address limit
is lifted for the rest of the suite)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
from sqlalchemy import update

from router.models import Role, StaffUser, utcnow
from router.passwords import HashingBusy, PasswordWork
from router.throttle import LoginThrottle
from tests.conftest import PASSWORD, RunningHub, start_hub
from tests.support.actors import Staff
from tests.support.hubproc import HubProcess

STRONG = "tap-water-kettle-lantern"


@pytest.fixture
async def guarded_hub(own_settings: Callable[..., Any]) -> AsyncIterator[RunningHub]:
    running = await start_hub(own_settings(login_ip_free_failures=10))
    yield running
    await running.runner.cleanup()


async def attempt(http: aiohttp.ClientSession, hub: RunningHub | str, username: str, password: str,
                  forwarded_for: str | None = None) -> tuple[int, dict[str, Any]]:
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    url = hub if isinstance(hub, str) else hub.url
    async with http.post(f"{url}/api/auth/login", json={"username": username, "password": password},
                         headers=headers) as response:
        return response.status, await response.json()


async def audit(admin: Any, **filters: str) -> list[dict[str, Any]]:
    query = "&".join(f"{k}={v}" for k, v in filters.items())
    return (await admin.call("GET", f"/api/audit?{query}&limit=200"))["items"]


async def flood(http: aiohttp.ClientSession, url: str, username: str) -> list[tuple[int, dict[str, Any]]]:
    """Waves of 20 parallel guesses, each after the wait the last one was told, until the username is locked.

    How many of a wave are checked depends on how busy the machine is (the rest are told to wait or that the
    hub is busy), so the attacker goes on as a script would, and gives up after ten waves.
    """
    answers: list[tuple[int, dict[str, Any]]] = []
    for wave in range(10):
        told = await asyncio.gather(*(attempt(http, url, username, f"guess-{wave}-{i}") for i in range(20)))
        answers += told
        if any(body.get("error", {}).get("code") == "account_locked" for _, body in told):
            break
        waits = [body["error"]["details"].get("retry_after_seconds", 0) for status, body in told if status == 429]
        await asyncio.sleep(max(waits, default=0) + 0.05)
    return answers


async def test_a_flood_of_wrong_passwords_neither_stalls_the_sockets_nor_gets_in(fresh_database_url, tmp_path,
                                                                                  http) -> None:
    # The hub runs in its own process, as in production, so the socket's round trip is measured from outside
    # its event loop. One username is attacked (the address limit is lifted so that only its lock acts).
    process = HubProcess({"HUB_DATABASE_URL": fresh_database_url, "HUB_SECRET_KEY": "s" * 40,
                          "HUB_FIRST_ADMIN_PASSWORD": PASSWORD, "HUB_LOGIN_IP_FREE_FAILURES": "100"},
                         tmp_path / "var").start()
    admin = await Staff(process.url).login("admin", PASSWORD)
    try:
        for name in ("watcher", "victim"):
            await admin.call("POST", "/api/users", {"username": name, "password": PASSWORD, "role": "agent",
                                                    "display_name": name}, expect=201)
        watcher = await (await Staff(process.url).login("watcher", PASSWORD)).listen()  # an agent at work
        await watcher.ping()
        pings: list[float] = []
        flooding = asyncio.ensure_future(flood(http, process.url, "victim"))
        while not flooding.done():
            pings.append(await watcher.ping())
            await asyncio.sleep(0.01)
        answers = flooding.result()
        await watcher.close()
        assert len(pings) >= 10
        # Every round trip but the slowest under 100 ms: on a machine shared with other work the scheduler may
        # hold any one back. Checked on the event loop, each wrong password held up every socket some 0.4 s.
        assert sorted(pings)[-2] < 0.1, sorted(pings)[-5:]
        assert all(status in (401, 429, 503) for status, _ in answers), answers
        assert sum(status == 401 for status, _ in answers) >= 5

        status, body = await attempt(http, process.url, "victim", PASSWORD)  # the right password, too late
        assert status == 429 and body["error"]["code"] == "account_locked", body
        assert "锁定" in body["error"]["message"] and body["error"]["details"]["locked_until"]

        victim = {u["username"]: u for u in (await admin.call("GET", "/api/users"))["items"]}["victim"]
        assert victim["locked_until"] and victim["failed_logins"] >= 5
        lockouts = await audit(admin, action="auth.lockout", target_id=str(victim["id"]))
        assert len(lockouts) == 1 and lockouts[0]["details"]["username"] == "victim"
        failures = await audit(admin, action="auth.login_failed", actor="victim")
        assert len(failures) >= 5 and all(entry["ip"] == "127.0.0.1" for entry in failures)
        assert "username locked after failed sign-ins" in process.output()

        unlocked = await admin.call("POST", f"/api/users/{victim['id']}/unlock")
        assert unlocked["locked_until"] is None and unlocked["failed_logins"] == 0
        assert (await attempt(http, process.url, "victim", PASSWORD))[0] == 200
        assert await audit(admin, action="user.unlock", target_id=str(victim["id"]))
    finally:
        await admin.close()
        process.kill()


async def test_wrong_passwords_wait_longer_each_time_and_a_success_clears_them(guarded_hub, http) -> None:
    hub = guarded_hub
    victim = await hub.staff(Role.AGENT, listen=False)
    username = victim.user["username"]
    try:
        assert (await attempt(http, hub, username, "wrong-1"))[0] == 401
        assert (await attempt(http, hub, username, "wrong-2"))[0] == 401
        status, body = await attempt(http, hub, username, PASSWORD)  # at once: must wait a second
        assert status == 429 and body["error"]["code"] == "too_many_attempts"
        assert body["error"]["details"]["retry_after_seconds"] == 1
        await asyncio.sleep(1.1)
        assert (await attempt(http, hub, username, PASSWORD))[0] == 200
        assert (await attempt(http, hub, username, "wrong-3"))[0] == 401  # counting starts again at one
        assert (await attempt(http, hub, username, PASSWORD))[0] == 200
    finally:
        await victim.close()


async def test_one_address_trying_many_usernames_is_slowed_and_cannot_hide_behind_forwarded_for(
        guarded_hub, http) -> None:
    hub = guarded_hub
    colleague = await hub.staff(Role.AGENT, listen=False)
    try:
        for i in range(11):  # ten free failures, the eleventh starts the waits
            status, _ = await attempt(http, hub, f"nobody-{i}-{uuid.uuid4().hex[:4]}", "guess",
                                      forwarded_for=f"203.0.113.{i}")  # not a trusted proxy: ignored
            assert status == 401
        status, body = await attempt(http, hub, "nobody-else", "guess", forwarded_for="198.51.100.7")
        assert status == 429 and body["error"]["code"] == "too_many_attempts"
        # The address waits, whoever signs in from it; the waits are short, never a lock.
        status, body = await attempt(http, hub, colleague.user["username"], PASSWORD)
        assert status == 429 and body["error"]["details"]["retry_after_seconds"] <= 2
        await asyncio.sleep(body["error"]["details"]["retry_after_seconds"] + 0.1)
        assert (await attempt(http, hub, colleague.user["username"], PASSWORD))[0] == 200
    finally:
        await colleague.close()


async def test_behind_a_trusted_proxy_each_client_address_is_counted_apart(own_settings, http) -> None:
    hub = await start_hub(own_settings(login_ip_free_failures=3, trusted_proxies="127.0.0.1"))
    try:
        for i in range(4):
            assert (await attempt(http, hub, f"nobody-{i}", "guess", forwarded_for="198.51.100.1"))[0] == 401
        assert (await attempt(http, hub, "nobody-x", "guess", forwarded_for="198.51.100.1"))[0] == 429
        assert (await attempt(http, hub, "nobody-y", "guess", forwarded_for="198.51.100.2"))[0] == 401
        async with hub.hub.sessions() as session:
            address = await session.get(LoginThrottle, ("ip", "198.51.100.1"))
            assert address is not None and address.failures == 4
    finally:
        await hub.runner.cleanup()


async def lock_out(http: aiohttp.ClientSession, hub: RunningHub, username: str) -> None:
    """Guess wrong five times. Five guesses at once all count when each is checked before any has failed; on a
    busy machine a late one is told to wait instead, and is made again after the wait."""
    answers = await asyncio.gather(*(attempt(http, hub, username, f"guess-{i}") for i in range(5)))
    counted = 0
    for _ in range(5):
        counted += sum(body["error"]["code"] == "bad_credentials" for _, body in answers)
        if counted >= 5:
            return
        assert all(body["error"]["code"] == "too_many_attempts" for _, body in answers
                   if body["error"]["code"] != "bad_credentials"), answers
        await asyncio.sleep(max((body["error"]["details"]["retry_after_seconds"] for _, body in answers
                                 if body["error"]["code"] == "too_many_attempts"), default=0))
        answers = [await attempt(http, hub, username, "guess-again")]
    raise AssertionError(f"{username}: only {counted} wrong guesses counted")


async def test_a_lock_ends_by_itself(guarded_hub, http) -> None:
    hub = guarded_hub
    victim = await hub.staff(Role.AGENT, listen=False)
    username = victim.user["username"]
    try:
        await lock_out(http, hub, username)
        assert (await attempt(http, hub, username, PASSWORD))[1]["error"]["code"] == "account_locked"
        past = utcnow() - timedelta(seconds=1)
        async with hub.hub.sessions.begin() as session:  # fifteen minutes later
            await session.execute(update(LoginThrottle).where(LoginThrottle.key == username)
                                  .values(locked_until=past, last_failure_at=past - timedelta(minutes=15)))
        assert (await attempt(http, hub, username, PASSWORD))[0] == 200
    finally:
        await victim.close()


@pytest.mark.parametrize(("password", "why"), [
    ("short-1", "至少 10 位"),
    ("password123", "常见"),
    ("1234567890", "常见"),
    ("qwertyuiop", "常用"),
    ("zxcvbnm,./asdf", "键盘"),
])
async def test_common_and_short_passwords_are_refused_where_people_choose_them(running_hub, password, why) -> None:
    admin = await running_hub.staff(Role.ADMIN, listen=False)
    try:
        username = f"new-{uuid.uuid4().hex[:6]}"
        body = await admin.call("POST", "/api/users", {"username": username, "password": password, "role": "agent",
                                                       "display_name": "新坐席"}, expect=422)
        assert body["error"]["code"] == "weak_password" and why in body["error"]["message"], body
        assert body["error"]["details"]["fields"]["password"]
        listed = (await admin.call("GET", "/api/users"))["items"]
        assert username not in [u["username"] for u in listed]
    finally:
        await admin.close()


async def test_a_password_made_of_the_username_is_refused(running_hub) -> None:
    admin = await running_hub.staff(Role.ADMIN, listen=False)
    try:
        body = await admin.call("POST", "/api/users", {"username": "zhangwei.hotline", "password": "zhangwei.hotline1",
                                                       "role": "agent", "display_name": "张伟"}, expect=422)
        assert body["error"]["code"] == "weak_password"
        await admin.call("POST", "/api/users", {"username": f"zw-{uuid.uuid4().hex[:6]}", "password": STRONG,
                                                "role": "agent", "display_name": "张伟"}, expect=201)
    finally:
        await admin.close()


async def test_a_long_password_is_judged_without_error(running_hub) -> None:
    admin = await running_hub.staff(Role.ADMIN, listen=False)
    try:
        username = f"long-{uuid.uuid4().hex[:6]}"
        await admin.call("POST", "/api/users", {"username": username, "password": "水" + "x" * 255, "role": "agent",
                                                "display_name": "长密码"}, expect=422)  # long, but one repeat
        await admin.call("POST", "/api/users", {"username": username, "password": (STRONG + "-") * 10,
                                                "role": "agent", "display_name": "长密码"}, expect=201)
    finally:
        await admin.close()


async def test_a_disabled_account_with_the_right_password_is_refused_and_recorded(guarded_hub, http) -> None:
    hub = guarded_hub
    admin = await hub.staff(Role.ADMIN, listen=False)
    victim = await hub.staff(Role.AGENT, listen=False)
    try:
        async with hub.hub.sessions.begin() as session:
            await session.execute(update(StaffUser).where(StaffUser.id == victim.user["id"]).values(active=False))
        status, body = await attempt(http, hub, victim.user["username"], PASSWORD)
        assert status == 401 and body["error"]["code"] == "bad_credentials"
        entries = await audit(admin, action="auth.login_failed", actor=victim.user["username"])
        assert entries[0]["details"]["reason"] == "disabled"
    finally:
        await admin.close()
        await victim.close()


async def test_addresses_that_keep_failing_cannot_fill_the_whole_password_pool() -> None:
    work = PasswordWork(workers=1, max_in_flight=4)
    stored = await work.hash(STRONG)
    flood = [asyncio.ensure_future(work.verify(stored, f"guess-{i}", reserve=False)) for i in range(3)]
    await asyncio.sleep(0)  # the three are in flight
    with pytest.raises(HashingBusy):
        await work.verify(stored, "guess-4", reserve=False)
    assert await work.verify(stored, STRONG)  # a colleague from a clean address still gets in
    assert await asyncio.gather(*flood) == [False, False, False]
