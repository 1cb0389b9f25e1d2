"""Stored IVR menu versions: every saved YAML text with who saved it and when; one of them is current.

The phone runtime calls :func:`current_menu` when a call arrives, so a menu saved by an admin applies from the
next call on, in every hub process, without a restart. The first call (or :func:`ensure_default_menu` at start)
on an empty table imports ``channels/voice/ivr.yml``. Only menus that :func:`~channels.voice.ivr.parse_menu`
accepts are stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Boolean, Integer, String, Text, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from channels.voice.ivr import DEFAULT_MENU, IvrMenu, MenuInvalid, parse_menu
from router.db import take_turns
from router.logs import get_logger
from router.models import Base, utcnow

log = get_logger(__name__)

IVR_MENU_LOCK_KEY = 962740_0018  # saving a version and importing the default: one process at a time
SYSTEM = "system"  # saved_by of the imported default


class IvrMenuVersion(Base):
    __tablename__ = "ivr_menu"
    id: Mapped[int] = mapped_column(primary_key=True)
    yaml_text: Mapped[str] = mapped_column(Text)
    saved_by: Mapped[str] = mapped_column(String(100))  # username, or "system" for the imported default
    saved_by_user_id: Mapped[int | None] = mapped_column(Integer)  # no FK: versions outlive accounts
    saved_at: Mapped[datetime] = mapped_column(default=utcnow)
    current: Mapped[bool] = mapped_column(Boolean, default=False, index=True)


@dataclass(frozen=True, slots=True)
class CurrentMenu:
    version: int
    menu: IvrMenu
    yaml_text: str
    saved_by: str
    saved_at: datetime


async def save_menu(session: AsyncSession, text: str, saved_by: str,
                    saved_by_user_id: int | None = None) -> IvrMenuVersion:
    """Store ``text`` as the new current version; :class:`MenuInvalid` (nothing stored) when it is not a
    valid menu. Runs in the caller's transaction."""
    parse_menu(text)
    await take_turns(session, IVR_MENU_LOCK_KEY)
    await session.execute(update(IvrMenuVersion).where(IvrMenuVersion.current.is_(True)).values(current=False))
    version = IvrMenuVersion(yaml_text=text, saved_by=saved_by[:100], saved_by_user_id=saved_by_user_id,
                             saved_at=utcnow(), current=True)
    session.add(version)
    await session.flush()
    return version


async def current_version(session: AsyncSession) -> IvrMenuVersion | None:
    return await session.scalar(select(IvrMenuVersion).where(IvrMenuVersion.current.is_(True))
                                .order_by(IvrMenuVersion.id.desc()).limit(1))


async def ensure_default_menu(sessions: async_sessionmaker[AsyncSession]) -> bool:
    """Import the default menu when no version is stored; True if it was imported."""
    async with sessions.begin() as session:
        await take_turns(session, IVR_MENU_LOCK_KEY)
        if await session.scalar(select(IvrMenuVersion.id).limit(1)) is not None:
            return False
        await save_menu(session, DEFAULT_MENU.read_text("utf-8"), SYSTEM)
    return True


async def current_menu(sessions: async_sessionmaker[AsyncSession]) -> CurrentMenu:
    """The menu for a call arriving now. A stored version the code no longer accepts (validation rules changed
    since it was saved) is logged and the default file is played instead of leaving the caller in silence."""
    async with sessions() as session:
        version = await current_version(session)
    if version is None:
        await ensure_default_menu(sessions)
        async with sessions() as session:
            version = await current_version(session)
        assert version is not None
    try:
        menu = parse_menu(version.yaml_text)
    except MenuInvalid as exc:
        log.error("ivr_menu_invalid", version=version.id, problems=[str(p) for p in exc.problems])
        return CurrentMenu(0, parse_menu(DEFAULT_MENU.read_text("utf-8")), DEFAULT_MENU.read_text("utf-8"),
                           SYSTEM, version.saved_at)
    return CurrentMenu(version.id, menu, version.yaml_text, version.saved_by, version.saved_at)


async def menu_versions(session: AsyncSession, limit: int = 50) -> list[IvrMenuVersion]:
    """The newest versions first."""
    return list(await session.scalars(select(IvrMenuVersion).order_by(IvrMenuVersion.id.desc()).limit(limit)))
