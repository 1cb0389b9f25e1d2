"""Database engine, sessions and schema migrations (Alembic, applied on start)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import event, text
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
# An arbitrary constant: every hub process that starts takes this PostgreSQL advisory lock while
# it migrates, so that several processes starting together do not race on the schema.
_MIGRATION_LOCK_KEY = 962740
PROVISIONING_LOCK_KEY = 962740_0002  # first admin, default team, demo staff: processes starting together


def create_engine(url: str, pool_size: int = 10, server_settings: dict[str, str] | None = None) -> AsyncEngine:
    """The engine for ``url``; ``server_settings`` (PostgreSQL) apply to every connection it opens."""
    if url.startswith("sqlite"):
        engine = create_async_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            # Let SQLAlchemy issue BEGIN itself (below) instead of the driver's lazy, deferred one.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        @event.listens_for(engine.sync_engine, "begin")
        def _begin_immediate(connection: Any) -> None:
            # SQLite has one writer: taking the write lock when the transaction starts makes a
            # read-then-write transaction (claim, ingest) wait its turn instead of failing or racing.
            connection.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    return create_async_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True,
                               connect_args={"server_settings": server_settings} if server_settings else {})


def dialect_insert(dialect: str) -> Any:
    """The INSERT construct of ``dialect`` (``postgresql`` or ``sqlite``), for its ``ON CONFLICT`` clauses."""
    return postgresql_insert if dialect == "postgresql" else sqlite_insert


def session_factory(engine: AsyncEngine) -> async_sessionmaker:
    return async_sessionmaker(engine, expire_on_commit=False)


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def _upgrade(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY})
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


async def migrate(engine: AsyncEngine) -> None:
    """Bring the schema to the newest revision."""
    async with engine.begin() as connection:
        await connection.run_sync(_upgrade)


async def take_turns(session: AsyncSession, key: int) -> None:
    """Run the rest of this transaction alone among all processes taking turns on ``key``.

    A transaction-scoped PostgreSQL advisory lock; on SQLite, the single-process mode, the database's one
    writer already orders transactions.
    """
    if session.bind.dialect.name == "postgresql":
        await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


# SQLSTATE classes and codes that mean the server cannot be reached or is going away, not that a statement
# was wrong: 08 connection exceptions; 57P01-57P03 admin or crash shutdown and "cannot connect now".
_UNREACHABLE_SQLSTATES = ("08", "57P01", "57P02", "57P03")


def unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` says the database cannot be reached at the moment (refused, cut, shutting down).

    The driver's error travels wrapped (SQLAlchemy's ``orig``, ``__cause__``): the whole chain is read. A
    statement the database refused (a constraint, a syntax error) is not an outage.
    """
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, DBAPIError) and current.connection_invalidated:
            return True
        if isinstance(current, OSError | TimeoutError):  # refused, reset, no route; a connect that timed out
            return True
        sqlstate = getattr(current, "sqlstate", None) or getattr(current, "pgcode", None)
        if isinstance(sqlstate, str) and sqlstate.startswith(_UNREACHABLE_SQLSTATES):
            return True
        pending.extend([current.__cause__, getattr(current, "orig", None)])
    return False


def log_pass_failure(logger: Any, event: str, exc: BaseException) -> None:
    """Log a background pass (a sweep, a queue worker) that failed; call from its ``except`` block.

    While the database is away every pass fails the same way, several times a second: one line each without
    the traceback. Anything else is a fault and keeps its traceback.
    """
    if unreachable(exc):
        logger.warning(f"{event}: database unreachable", error=type(exc).__name__)
    else:
        logger.exception(event)
