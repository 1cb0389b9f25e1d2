"""Reading what a hub stored, while its database may still be coming back from an outage."""

from __future__ import annotations

import asyncio
import time

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from router.models import Conversation, Message
from tests.conftest import RunningHub


async def stored(running: RunningHub, resident: str) -> list[str]:
    """The channel message ids of what ``resident`` sent, in the order they were stored."""
    async with running.hub.sessions() as session:
        return list(await session.scalars(
            select(Message.channel_message_id).join(Conversation, Conversation.id == Message.conversation_id)
            .where(Conversation.external_id == resident, Message.direction == "in").order_by(Message.id)))


async def wait_for_stored(running: RunningHub, expected: dict[str, list[str]], timeout: float = 60) -> None:
    """Wait until each resident's stored messages are exactly ``expected`` (ids in order), or fail."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            found = {resident: await stored(running, resident) for resident in expected}
        except (SQLAlchemyError, OSError):  # the database is not back yet
            found = {}
        if found == expected or time.monotonic() > deadline:
            assert found == expected
            return
        await asyncio.sleep(0.2)
