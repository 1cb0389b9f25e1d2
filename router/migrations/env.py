"""Alembic environment: runs on the connection the hub hands over, or on ``HUB_DATABASE_URL``."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

# Every package's tables must be in the metadata that autogenerate compares with the database.
import channels.voice.menus
import channels.voice.recordings  # noqa: F401
import router.audit
import router.nonces
import router.throttle  # noqa: F401
import workorders.bulletin
import workorders.dispatch
import workorders.models
import workorders.notices  # noqa: F401  (binds the tables; the name itself is unused)
from router.models import Base
from router.settings import Settings

target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        # APScheduler's job table is created by migration 0005 but described by APScheduler, not by us.
        include_object=lambda obj, name, kind, *_: not (kind == "table" and name == "apscheduler_jobs"),
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_standalone() -> None:
    from router.db import create_engine

    engine = create_engine(Settings().effective_database_url)
    async with engine.begin() as connection:
        await connection.run_sync(_run)
    await engine.dispose()


connection = context.config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    asyncio.run(_run_standalone())
