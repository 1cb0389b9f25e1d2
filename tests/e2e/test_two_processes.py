"""Several hub processes share PostgreSQL and Redis: a resident on one reaches an agent on another."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import async_sessionmaker

from router.db import create_engine
from router.models import Author, Conversation, Message, StaffUser
from router.net import free_port
from router.outbound import new_outbound
from tests.channels.wechat.conftest import simulator
from tests.conftest import PASSWORD
from tests.support.actors import Resident, Staff
from tests.support.hubproc import HubProcess
from tests.support.services import REDIS_URL
from tests.support.wechat import running_standin, wechat_settings


@pytest.fixture
def shared_env(backend: str, fresh_database_url: str, tmp_path: Path) -> dict[str, str]:
    if backend != "postgresql":
        pytest.skip("several processes share PostgreSQL; SQLite is the single-process embedded mode")
    return {"HUB_DATABASE_URL": fresh_database_url, "HUB_REDIS_URL": REDIS_URL,
            "HUB_REDIS_PREFIX": f"test-{uuid.uuid4().hex[:8]}", "HUB_SECRET_KEY": "s" * 40,
            "HUB_FIRST_ADMIN_PASSWORD": PASSWORD, "HUB_OUTBOUND_POLL_SECONDS": "0.2"}


@contextlib.contextmanager
def hubs(env: dict[str, str], tmp_path: Path, count: int = 2) -> Iterator[list[HubProcess]]:
    processes = [HubProcess(env, tmp_path / "var", name=f"hub{i}") for i in range(count)]
    try:
        for process in processes:
            process.start()
        yield processes
    finally:
        for process in processes:
            process.kill()


async def test_resident_on_process_a_reaches_agent_on_process_b(shared_env, tmp_path) -> None:
    with hubs(shared_env, tmp_path) as (a, b):
        async with aiohttp.ClientSession() as http:
            agent = await (await Staff(b.url).login("admin", PASSWORD)).listen()
            resident = await Resident(http, a.url).connect()
            try:
                said = await resident.says("两个进程之间也能收到吗")
                seen = await agent.sees_message("两个进程之间也能收到吗")
                assert seen["id"] == said["id"]

                await agent.claims(said["conversation_id"])
                assert (await resident.expect(
                    lambda f: f["type"] == "state" and f["conversation"]["state"] == "assigned"))
                await agent.replies(said["conversation_id"], "可以,这条回复来自另一个进程")
                heard = await resident.hears("agent")
                assert heard["text"] == "可以,这条回复来自另一个进程"

                await agent.ws.send_json({"type": "typing", "conversation_id": said["conversation_id"]})
                assert (await resident.expect(lambda f: f["type"] == "typing"))["author"] == "agent"
            finally:
                await resident.close()
                await agent.close()


async def readiness(http: aiohttp.ClientSession, url: str) -> dict:
    async with http.get(f"{url}/readyz") as response:
        return await response.json()


@contextlib.contextmanager
def own_redis(tmp_path: Path) -> Iterator[tuple[str, callable]]:
    """A real Redis server of this test's own, so that it can be stopped and started again."""
    port = free_port()
    command = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
               "--dir", str(tmp_path)]
    state = {"process": subprocess.Popen(command, stdout=subprocess.DEVNULL)}

    def restart(running: bool) -> None:
        state["process"].terminate()
        state["process"].wait(timeout=10)
        if running:
            state["process"] = subprocess.Popen(command, stdout=subprocess.DEVNULL)

    try:
        yield f"redis://127.0.0.1:{port}/0", restart
    finally:
        state["process"].kill()
        state["process"].wait(timeout=10)


async def test_redis_down_loses_nothing_and_events_resume_when_it_returns(shared_env, tmp_path) -> None:
    with own_redis(tmp_path) as (redis_url, set_redis), hubs({**shared_env, "HUB_REDIS_URL": redis_url},
                                                                  tmp_path) as (a, b):
        async with aiohttp.ClientSession() as http:
            resident = await Resident(http, a.url).connect()
            agent_on_a = await (await Staff(a.url).login("admin", PASSWORD)).listen()
            agent_on_b = await Staff(b.url).login("admin", PASSWORD)
            try:
                set_redis(running=False)
                # The hub keeps taking messages; this process's own sockets still get them at once.
                said = await resident.says("Redis 停了,消息还在吗")
                assert (await agent_on_a.sees_message("Redis 停了,消息还在吗"))["id"] == said["id"]
                ready = await readiness(http, a.url)
                assert ready["status"] == "ready" and ready["checks"]["events"] is False
                # The other process reads it from the database.
                history = await agent_on_b.call("GET", f"/api/conversations/{said['conversation_id']}/messages")
                assert "Redis 停了,消息还在吗" in [m["text"] for m in history["items"]]

                set_redis(running=True)
                await agent_on_b.listen()
                for _ in range(150):  # both processes resubscribe with back-off
                    if all([(await readiness(http, h.url))["checks"]["events"] for h in (a, b)]):
                        break
                    await asyncio.sleep(0.2)
                again = await resident.says("Redis 回来了")
                assert (await agent_on_b.sees_message("Redis 回来了", timeout=15))["id"] == again["id"]
            finally:
                await resident.close()
                await agent_on_a.close()
                await agent_on_b.close()


async def test_two_hubs_assign_two_hundred_concurrent_chats_each_exactly_once(shared_env, tmp_path) -> None:
    """Residents on both processes, agents signed in on both: the ACDs of the two processes take turns."""
    seats, per_agent = 20, 10
    with hubs({**shared_env, "HUB_ACD_SWEEP_SECONDS": "0.5"}, tmp_path) as (a, b):
        # one open socket per resident: lift aiohttp's default cap of 100 connections per session
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
            admin = await Staff(a.url).login("admin", PASSWORD)
            agents = []
            for n in range(seats):
                username = f"acd{n}-{uuid.uuid4().hex[:6]}"
                await admin.call("POST", "/api/users", {"username": username, "password": PASSWORD, "role": "agent",
                                                        "display_name": f"坐席{n}", "max_chats": per_agent,
                                                        "teams": ["热线坐席"]}, expect=201)
                agent = await (await Staff((a, b)[n % 2].url).login(username, PASSWORD)).listen()
                await agent.becomes("ready")
                agents.append(agent)
            residents = [await Resident(http, (a, b)[n % 2].url).connect() for n in range(seats * per_agent)]
            try:
                said = await asyncio.gather(*(r.says(f"第{n}位居民同时来信") for n, r in enumerate(residents)))
                wanted = {s["conversation_id"] for s in said}
                assert len(wanted) == seats * per_agent
                received: dict[int, list[int]] = {}
                for agent in agents:
                    for _ in range(per_agent):
                        got = await agent.gets_assigned(timeout=30)
                        received.setdefault(got["id"], []).append(agent.user["id"])
                assert set(received) == wanted  # every chat reached an agent's inbox …
                assert all(len(owners) == 1 for owners in received.values())  # … and only one agent's
                board = (await admin.call("GET", "/api/agents"))["items"]
                assert sorted(row["load"] for row in board if row["role"] == "agent") == [per_agent] * seats
                engine = create_engine(shared_env["HUB_DATABASE_URL"])
                async with engine.connect() as connection:
                    assignments = (await connection.execute(
                        select(Message.conversation_id, func.count())
                        .where(Message.author == "system", Message.text.like("% 接入会话"))
                        .group_by(Message.conversation_id))).all()
                    states = (await connection.execute(
                        select(Conversation.state, func.count()).group_by(Conversation.state))).all()
                await engine.dispose()
                assert {cid for cid, _ in assignments} == wanted and {n for _, n in assignments} == {1}
                assert dict(states) == {"assigned": seats * per_agent}
            finally:
                for person in residents:
                    await person.close()
                for agent in agents:
                    await agent.close()
                await admin.close()


async def test_two_processes_starting_together_ask_wechat_for_one_token(shared_env, tmp_path) -> None:
    async with running_standin() as (standin, api_url):
        env = {**shared_env, "HUB_CHANNELS": "webchat,wechat",
               **{f"HUB_{key.upper()}": value for key, value in wechat_settings(api_url).items()}}
        processes = [HubProcess(env, tmp_path / "var", name=f"hub{i}") for i in range(2)]
        try:
            # Both start at once and publish the menu, for which each needs the access token.
            await asyncio.gather(*(asyncio.to_thread(process.start) for process in processes))
            deadline = asyncio.get_running_loop().time() + 30
            while len(standin.menus) < 2:
                assert asyncio.get_running_loop().time() < deadline, [p.output()[-2000:] for p in processes]
                await asyncio.sleep(0.2)
        finally:
            for process in processes:
                process.kill()
    assert standin.token_requests == 1


def _replies(standin, openid: str) -> list[str]:
    """The customer-service texts that reached ``openid``, in order."""
    return [m["text"]["content"] for m in standin.sent if m["touser"] == openid and m.get("msgtype") == "text"]


async def _until(condition, what: str, timeout: float = 30) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, what
        await asyncio.sleep(0.1)


@pytest.mark.parametrize("reached_wechat", [pytest.param(False, id="in-flight-sends-lost"),
                                            pytest.param(True, id="in-flight-sends-reached-wechat")])
async def test_a_process_killed_mid_batch_loses_no_reply_and_repeats_none_but_the_one_in_flight(
        shared_env, tmp_path, reached_wechat: bool) -> None:
    """Residents write in over WeChat; three replies each are queued together, so one process claims them all in one
    batch. Each resident's first reply goes out; WeChat holds the second; the third waits its turn. The other
    process starts, and finds nothing to take over while the holder renews its lease. The holder is SIGKILLed and
    restarted: every reply reaches its resident, in order, exactly once, except that the second reply, which was
    on the wire at the kill, comes twice if WeChat had already taken it (no key lets WeChat drop the copy)."""
    count, lease = 20, 3
    async with running_standin() as (standin, api_url):
        env = {**shared_env, "HUB_CHANNELS": "webchat,wechat", "HUB_OUTBOUND_LEASE_SECONDS": str(lease),
               "HUB_WECHAT_PUSH_MENU": "false", "HUB_WECHAT_API_TIMEOUT_SECONDS": "60",  # WeChat holds sends
               **{f"HUB_{key.upper()}": value for key, value in wechat_settings(api_url).items()}}
        holder = HubProcess(env, tmp_path / "var", name="holder")
        other = HubProcess(env, tmp_path / "var", name="other")
        engine = create_engine(shared_env["HUB_DATABASE_URL"])
        sessions = async_sessionmaker(engine, expire_on_commit=False)
        try:
            await asyncio.to_thread(holder.start)
            openids = [f"o{uuid.uuid4().hex[:27]}" for _ in range(count)]
            async with aiohttp.ClientSession() as http:
                wechat = simulator(http, holder.url)
                for n, openid in enumerate(openids):
                    said = wechat.xml(openid, "text", {"Content": f"第{n}户家里停水了"}, msg_id=secrets.randbits(63))
                    assert await wechat.post(said) == "success"

            standin.hold_sends(lambda body: "第2条" in body.get("text", {}).get("content", ""))
            async with sessions.begin() as session:
                admin = await session.scalar(select(StaffUser).where(StaffUser.username == "admin"))
                chats = {c.external_id: c for c in await session.scalars(
                    select(Conversation).where(Conversation.channel == "wechat",
                                               Conversation.external_id.in_(openids)))}
                replies = [new_outbound(chats[openid], author=Author.AGENT, author_user=admin,
                                        text=f"您好,第{n}户:第{k}条回复")
                           for n, openid in enumerate(openids) for k in (1, 2, 3)]
                session.add_all(replies)
            ids = [m.id for m in replies]

            await _until(lambda: len(standin.held) == count and all(_replies(standin, o) for o in openids),
                         "the first replies go out and the second ones reach WeChat")
            await asyncio.to_thread(other.start)
            await asyncio.sleep(2 * lease)  # the holder renews its lease: the other process takes nothing over
            assert len(standin.held) == count
            assert all(_replies(standin, o) == [f"您好,第{n}户:第1条回复"] for n, o in enumerate(openids))

            holder.kill()  # SIGKILL in the middle of the batch
            await asyncio.sleep(0.5)  # WeChat notices the hung-up connections
            standin.release_sends(deliver_orphans=reached_wechat)
            await asyncio.to_thread(holder.start)

            def all_answered() -> bool:
                return all(f"您好,第{n}户:第3条回复" in _replies(standin, o) for n, o in enumerate(openids))

            await _until(all_answered, "every resident gets every reply after the restart")
            await asyncio.sleep(2 * lease)  # time for any copy to show
            for n, openid in enumerate(openids):
                first, second, third = (f"您好,第{n}户:第{k}条回复" for k in (1, 2, 3))
                expected = [first, second, second, third] if reached_wechat else [first, second, third]
                assert _replies(standin, openid) == expected, [p.output()[-3000:] for p in (holder, other)]
            async with sessions() as session:
                rows = list(await session.scalars(select(Message).where(Message.id.in_(ids)).order_by(Message.id)))
            assert {row.delivery for row in rows} == {"sent"}
            assert [row.attempts for row in rows] == [1, 2, 2] * count  # the second and third were taken over
        finally:
            holder.kill()
            other.kill()
            await engine.dispose()
