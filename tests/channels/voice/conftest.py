"""A real Asterisk (one per test package) and a hub with the voice channel connected to it over ARI."""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from channels.voice.adapter import VoiceAdapter
from channels.voice.ari import AriError
from channels.voice.call import LiveCall
from channels.voice.phones import CONFIG_CLASS
from router.models import Call, CallEvent, Role
from router.phones import normalized_phone
from router.settings import Settings
from tests.conftest import RunningHub, hub_settings, new_database, start_hub
from tests.support import sipp
from tests.support.actors import Staff
from tests.support.asterisk import Asterisk

WELCOME = "您好,欢迎致电水务服务热线。"


async def greet(call: LiveCall) -> None:
    """The adapter's tests' own call script: a welcome (not again to a call taken up), then the line stays open."""
    if not call.resumed:
        await call.play(WELCOME, interruptible=False)
    await call.ended.wait()


@contextlib.contextmanager
def running_asterisk(rtp_ports: int = 40) -> Iterator[Asterisk]:
    """An Asterisk of its own with ``rtp_ports`` ports for media (two per call leg)."""
    instance = Asterisk(f"test-{os.getpid()}-{uuid.uuid4().hex[:6]}", rtp_ports=rtp_ports)
    try:
        instance.start()
        yield instance
    finally:
        instance.cleanup()


SETTLE = sipp.Pause(1500)  # a caller waits this long from the answer until the IVR has them at the main menu


@pytest.fixture(scope="package")
def asterisk() -> Iterator[Asterisk]:
    with running_asterisk() as instance:
        yield instance


class VoiceWorld:
    """The hub, its voice adapter and the Asterisk it drives; places sipp calls and reads the call records."""

    def __init__(self, hub: RunningHub, asterisk: Asterisk) -> None:
        self.hub, self.asterisk = hub, asterisk
        self.adapter: VoiceAdapter = hub.hub.adapters["voice"]  # type: ignore[assignment]
        self.default_script = self.adapter.script

    async def call(self, caller: str, steps: list[sipp.Step], *, did: str = "962740", wait_for_hangup: bool = False,
                   timeout: float = 40.0) -> sipp.CallResult:
        return await sipp.call(self.asterisk.sip_port, caller, did, steps, wait_for_hangup=wait_for_hangup,
                               timeout=timeout)

    async def ended_call(self, caller: str, since: datetime, timeout: float = 20.0) -> Call:
        """The call from ``caller`` started after ``since``, once it is closed and its recording kept."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            live = set(self.adapter.calls)  # before reading: a call gone from it has its record complete
            async with self.hub.hub.sessions() as session:
                call = await session.scalar(select(Call).where(Call.caller == normalized_phone(caller),
                                                               Call.started_at >= since)
                                            .order_by(Call.id.desc()))
            if call is not None and call.ended_at is not None and call.channel_id not in live:
                return call
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"the call from {caller} did not end within {timeout} s: {call}")
            await asyncio.sleep(0.2)

    async def events(self, call_id: int, kind: str | None = None) -> list[CallEvent]:
        async with self.hub.hub.sessions() as session:
            rows = await session.scalars(select(CallEvent).where(CallEvent.call_id == call_id)
                                         .order_by(CallEvent.at, CallEvent.id))
            return [e for e in rows if kind is None or e.kind == kind]

    async def recording(self, file_id: str) -> Path:
        opened = await self.hub.hub.open_file(file_id)
        assert opened is not None, f"file {file_id} is not in the file store"
        return opened[1]


def voice_settings(asterisk: Asterisk, database_url: str, var_dir: Path) -> Settings:
    """A hub's settings with ``channels=webchat,voice``, driving ``asterisk``."""
    return hub_settings(
        var_dir=var_dir, database_url=database_url, channels="webchat,voice", voice_ari_url=asterisk.ari_url,
        voice_ari_username=asterisk.ari_user, voice_ari_password=asterisk.ari_password, voice_app=asterisk.app,
        voice_prompt_dir=asterisk.prompt_dir, voice_reconnect_max_seconds=1.0)


@pytest.fixture
def own_voice_settings(asterisk: Asterisk, backend: str, tmp_path: Path) -> Iterator[Settings]:
    """Settings of a hub on a database of the test's own (for tests that stop and start hubs)."""
    with new_database(backend, tmp_path) as url:
        yield voice_settings(asterisk, url, tmp_path / "var")


@pytest.fixture(scope="module")
async def voice(asterisk: Asterisk, backend: str, tmp_path_factory: pytest.TempPathFactory,
                ) -> AsyncIterator[VoiceWorld]:
    """A hub of its own database with ``channels=webchat,voice``, connected to ``asterisk``."""
    directory = tmp_path_factory.mktemp(f"voice-{backend}")
    with new_database(backend, directory) as url:
        async with connected_world(voice_settings(asterisk, url, directory / "var"), asterisk) as world:
            yield world


@contextlib.asynccontextmanager
async def connected_world(settings: Settings, asterisk: Asterisk) -> AsyncIterator[VoiceWorld]:
    """A hub with ``settings``, once its voice channel is connected to ``asterisk``; stopped after."""
    running = await start_hub(settings)
    try:
        world = VoiceWorld(running, asterisk)
        await asyncio.wait_for(world.adapter.ari.connected.wait(), 10)
        yield world
    finally:
        await running.runner.cleanup()


@pytest.fixture
def world(voice: VoiceWorld) -> Iterator[VoiceWorld]:
    """``voice`` with the IVR put back after the test."""
    yield voice
    voice.adapter.script = voice.default_script


RING_SECONDS = 5


def extension() -> str:
    """A new agent's extension, unlikely to be any other test's."""
    return str(1000 + uuid.uuid4().int % 900_000)[:6]


@pytest.fixture
async def desk(asterisk: Asterisk, own_voice_settings: Settings) -> AsyncIterator[VoiceWorld]:
    """A hub of its own, its line open around the clock, whose agents' phones ring for ``RING_SECONDS``."""
    async with connected_world(own_voice_settings.model_copy(update={
            "voice_ring_seconds": RING_SECONDS, "voice_hours": "24x7"}), asterisk) as world:
        yield world


async def agent_with_phone(world: VoiceWorld, admin: Staff, kind: str = "desk",
                           teams: list[str] | None = None) -> tuple[Staff, str, str]:
    """A new agent (in ``teams``, else the default team) with an extension of their own (a desk phone, or the
    inbox's ``browser`` softphone); the agent, the extension and its password."""
    agent = await world.hub.staff(Role.AGENT, teams=teams)
    number = extension()
    given = await admin.call("PUT", f"/api/users/{agent.user['id']}/phone", {"extension": number, "kind": kind})
    # The hub pushes the phone to Asterisk in a moment (its endpoint last): a phone registering before that is
    # refused, and would only try again minutes later.
    deadline = asyncio.get_running_loop().time() + 15
    while True:
        try:
            await world.adapter.ari.request("GET", f"/asterisk/config/dynamic/{CONFIG_CLASS}/endpoint/{number}")
            break
        except AriError:
            assert asyncio.get_running_loop().time() < deadline, f"phone {number} not pushed to Asterisk"
            await asyncio.sleep(0.1)
    return agent, number, given["password"]
