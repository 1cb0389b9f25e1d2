"""The retention job: closed conversations, their files and audit entries past the period are deleted; what is
open, work orders, the conversations they were made from and their files are kept; two processes sweeping at
once delete each thing once."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import aiohttp
from sqlalchemy import select, update

from router.audit import AuditEntry, record
from router.models import Conversation, Message, Role, StoredFile, utcnow
from router.retention import remove_expired
from tests.conftest import start_hub
from tests.support.actors import Resident
from tests.support.files import png_bytes
from tests.support.files import visitor_upload as upload
from tests.workorders.conftest import LEAK

LONG_AGO = timedelta(days=400)


async def test_what_passed_the_retention_period_is_deleted_and_nothing_else(own_settings: Callable[..., Any],
                                                                           http: aiohttp.ClientSession) -> None:
    hub = await start_hub(own_settings(retention_days=365))
    agent = await hub.staff(Role.AGENT, listen=False)
    residents: list[Resident] = []

    async def resident_writes(text: str, picture: bytes | None = None) -> tuple[int, str | None]:
        resident = await Resident(http, hub.url).connect()
        residents.append(resident)
        said = await resident.says(text)
        file_id = None
        if picture is not None:
            status, body = await upload(http, hub.url, resident.token, "水表.png", picture)
            assert status == 201
            file_id = body["message"]["attachment"]["file_id"]
        return said["conversation_id"], file_id

    try:
        only_chat = png_bytes(3, 3)
        shared_with_order = png_bytes(5, 5)
        old, old_file = await resident_writes("去年的咨询", only_chat)
        sharing, sharing_file = await resident_writes("去年的照片", shared_with_order)
        ordered, _ = await resident_writes("去年报修的漏水")
        still_open, _ = await resident_writes("去年开始一直没人回")
        recent, recent_file = await resident_writes("上周的咨询", png_bytes(7, 7))
        for conversation_id in (old, sharing, ordered, recent):
            await agent.claims(conversation_id)
        order = await agent.call("POST", "/api/workorders", {**LEAK, "conversation_id": ordered}, expect=201)
        await agent.upload(f"/api/workorders/{order['id']}/attachments", "现场.png", shared_with_order)
        for conversation_id in (old, sharing, ordered, recent):
            await agent.closes(conversation_id)

        long_ago = utcnow() - LONG_AGO
        async with hub.hub.sessions.begin() as session:
            await session.execute(update(Conversation).where(Conversation.id.in_([old, sharing, ordered]))
                                  .values(closed_at=long_ago, last_message_at=long_ago, created_at=long_ago))
            await session.execute(update(Conversation).where(Conversation.id == still_open)
                                  .values(last_message_at=long_ago, created_at=long_ago))
            record(session, "system", "test.old").at = long_ago
            record(session, "system", "test.recent")

        first, second = await asyncio.gather(*(remove_expired(hub.hub.sessions, hub.hub.files, 365)
                                               for _ in range(2)))  # two processes at once
        assert first.conversations + second.conversations == 2
        assert first.files + second.files == 2 and first.bytes_files + second.bytes_files == 1

        async with hub.hub.sessions() as session:
            left = set(await session.scalars(select(Conversation.id).where(
                Conversation.id.in_([old, sharing, ordered, still_open, recent]))))
            assert left == {ordered, still_open, recent}
            assert list(await session.scalars(select(Message.id).where(
                Message.conversation_id.in_([old, sharing])))) == []
            files = set(await session.scalars(select(StoredFile.id).where(
                StoredFile.id.in_([old_file, sharing_file, recent_file]))))
            assert files == {recent_file}
            actions = set(await session.scalars(select(AuditEntry.action).where(AuditEntry.action.like("test.%"))))
            assert actions == {"test.recent"}
        uploads = hub.hub.settings.uploads_dir
        on_disk = {path.name for path in uploads.rglob("*") if path.is_file()}

        assert hashlib.sha256(only_chat).hexdigest() not in on_disk  # no row refers to it any more
        assert hashlib.sha256(shared_with_order).hexdigest() in on_disk  # the order's photo is the same bytes
        detail = await agent.call("GET", f"/api/workorders/{order['id']}")
        photo = detail["attachments"][0]
        status, data, _ = await agent.fetch(photo["url"])
        assert status == 200 and data == shared_with_order
    finally:
        for resident in residents:
            await resident.close()
        await agent.close()
        await hub.runner.cleanup()
