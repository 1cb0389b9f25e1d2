"""What the hub knows when a call arrives, for the IVR's pre-menu: whether the line is staffed now (hours and
holidays), the caller's flags (blacklisted, VIP) and district from the contact with that phone number, and the
outage notices in force. The runtime adds whether an agent is signed in and gives the result to the walk."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from channels.voice.walk import CallerContext, Notice
from router.models import PHONE_CHANNELS, Contact, ContactIdentity, Region
from router.settings import Settings
from workorders.bulletin import Notice as BulletinNotice
from workorders.calendar import WorkingHours

MAX_NOTICE_CHARS = 120  # a notice read out before the menu: its title and the start of its text


class LineHours:
    """The phone line's staffed hours (``HUB_VOICE_HOURS``, else ``HUB_WORKING_HOURS``, or ``24x7``)."""

    def __init__(self, settings: Settings) -> None:
        periods = settings.voice_hours or settings.working_hours
        self._hours = None if periods == "24x7" else WorkingHours(periods, settings.timezone)

    def is_open(self, at: datetime) -> bool:
        return self._hours is None or self._hours.is_open(at)


def spoken_notice(title: str, body: str) -> str:
    text = f"{title.strip().rstrip('。')}。{body.strip()}"
    return text if len(text) <= MAX_NOTICE_CHARS else text[:MAX_NOTICE_CHARS].rstrip() + "……"


async def caller_context(sessions: async_sessionmaker[AsyncSession], number: str, now: datetime, hours: LineHours,
                         *, agents_available: bool) -> CallerContext:
    """The facts of a call from ``number`` arriving at ``now``."""
    async with sessions() as session:
        contact = await session.scalar(
            select(Contact).join(ContactIdentity, ContactIdentity.contact_id == Contact.id)
            .where(ContactIdentity.channel.in_(PHONE_CHANNELS), ContactIdentity.external_id == number)
            .order_by(Contact.id).limit(1))
        district = None
        if contact is not None and contact.region_id is not None:
            district = await session.scalar(select(Region.code).where(Region.id == contact.region_id))
        notices = list(await session.scalars(
            select(BulletinNotice).where(BulletinNotice.starts_at <= now, BulletinNotice.ends_at >= now)
            .order_by(BulletinNotice.starts_at)))
    return CallerContext(
        open_now=hours.is_open(now), agents_available=agents_available,
        blacklisted=bool(contact and contact.blacklisted), vip=bool(contact and contact.vip), district=district,
        notices=tuple(Notice(spoken_notice(n.title, n.body), tuple(n.districts.get("codes", []))) for n in notices))
