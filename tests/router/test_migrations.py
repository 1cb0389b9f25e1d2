"""Migrations that change existing rows, run on a database holding data from before them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from router.db import alembic_config, create_engine


def _upgrade(connection: Connection, revision: str) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


def _downgrade(connection: Connection, revision: str) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    command.downgrade(config, revision)


def _before(revision: str) -> str:
    down = ScriptDirectory.from_config(alembic_config()).get_revision(revision).down_revision
    assert isinstance(down, str)
    return down


def _tables(connection: Connection) -> dict[str, sa.Table]:
    metadata = sa.MetaData()
    metadata.reflect(connection, only=["contact", "conversation", "message"])
    return metadata.tables  # type: ignore[return-value]


def _inserted(connection: Connection, table: sa.Table, **values: Any) -> int:
    return connection.execute(sa.insert(table).values(**values).returning(table.c.id)).scalar_one()


async def test_the_sender_joins_the_message_key_and_existing_messages_get_theirs(fresh_database_url: str) -> None:
    engine = create_engine(fresh_database_url)
    now = datetime.now(UTC)

    def before(connection: Connection) -> dict[str, int]:
        _upgrade(connection, _before("0017"))
        t = _tables(connection)
        ids = {}
        for visitor in ("visitor-a", "visitor-b"):
            contact = _inserted(connection, t["contact"], display_name=visitor, vip=False, blacklisted=False,
                                created_at=now)
            conversation = _inserted(connection, t["conversation"], channel="webchat", external_id=visitor,
                                     contact_id=contact, state="queued", priority=0, reopen_count=0,
                                     created_at=now, updated_at=now)
            ids[visitor] = conversation
            common = {"conversation_id": conversation, "channel": "webchat", "type": "text", "attempts": 0,
                      "created_at": now}
            ids[f"{visitor}:in"] = _inserted(connection, t["message"], **common, direction="in", author="resident",
                                             text="停水了", channel_message_id=f"client-of-{visitor}")
            ids[f"{visitor}:out"] = _inserted(connection, t["message"], **common, direction="out", author="agent",
                                              text="收到", channel_message_id=f"out:provider-{visitor}")
        return ids

    def after(connection: Connection) -> None:
        _upgrade(connection, "head")

    def client_ids(connection: Connection) -> list[str | None]:
        return [row[0] for row in connection.execute(sa.text("SELECT channel_message_id FROM message ORDER BY id"))]

    def senders(connection: Connection) -> dict[int, str | None]:
        return {id_: sender for id_, sender in connection.execute(sa.text("SELECT id, sender FROM message"))}

    def same_id(connection: Connection, conversation: int, sender: str) -> None:
        connection.execute(sa.insert(_tables(connection)["message"]).values(
            conversation_id=conversation, channel="webchat", direction="in", author="resident", type="text",
            attempts=0, created_at=now, text="又一条", channel_message_id="client-of-visitor-a", sender=sender))

    try:
        async with engine.begin() as connection:
            ids = await connection.run_sync(before)
        async with engine.begin() as connection:
            await connection.run_sync(after)
        async with engine.connect() as connection:
            stored = await connection.run_sync(senders)
        assert stored == {ids["visitor-a:in"]: "visitor-a", ids["visitor-b:in"]: "visitor-b",
                          ids["visitor-a:out"]: None, ids["visitor-b:out"]: None}
        # Another sender may use visitor-a's client id; visitor-a may not use it twice.
        async with engine.begin() as connection:
            await connection.run_sync(same_id, ids["visitor-b"], "visitor-b")
        with pytest.raises(IntegrityError):
            async with engine.begin() as connection:
                await connection.run_sync(same_id, ids["visitor-a"], "visitor-a")
        # Back down, the old key holds again: the later of the two messages sharing an id loses it.
        async with engine.begin() as connection:
            await connection.run_sync(_downgrade, _before("0017"))
        async with engine.connect() as connection:
            kept = await connection.run_sync(client_ids)
        assert kept.count("client-of-visitor-a") == 1 and len(kept) == 5
    finally:
        await engine.dispose()
