"""A stand-in SMSC per test, and a hub bound to it."""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import AsyncIterator, Callable

import pytest

from channels.sms.smpp_standin import StandInSmsc
from tests.conftest import RunningHub, start_hub
from tests.support.sms import PASSWORD, SYSTEM_ID, Handset, sms_settings

_numbers = itertools.count(random.randrange(10**7))


@pytest.fixture
async def smsc() -> AsyncIterator[StandInSmsc]:
    # Numbers ending 0000 are refused by the SMSC, those ending 4444 never reach the handset.
    async with StandInSmsc(SYSTEM_ID, PASSWORD, invalid=r"[0-9]*0000", undeliverable=r"[0-9]*4444") as running:
        yield running


@pytest.fixture
def handset(smsc: StandInSmsc) -> Callable[..., Handset]:
    def make(ending: str = "") -> Handset:
        national = f"139{next(_numbers) % 10**8:08d}"
        return Handset(smsc, "86" + national[:len(national) - len(ending)] + ending)
    return make


async def bound(running: RunningHub) -> RunningHub:
    await asyncio.wait_for(running.hub.adapters["sms"].provider.bound.wait(), 10)  # type: ignore[attr-defined]
    return running


@pytest.fixture
async def sms_hub(own_settings, smsc: StandInSmsc) -> AsyncIterator[RunningHub]:
    """A hub without a bot: texts queue for agents."""
    running = await bound(await start_hub(own_settings(**sms_settings(smsc))))
    yield running
    await running.runner.cleanup()
