"""The pre-menu facts of a call from the database: the caller's flags and district by phone number, the notices
in force, the line's staffed hours and holidays; and what the walk makes of them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from channels.voice.caller import LineHours, caller_context, spoken_notice
from channels.voice.ivr import DEFAULT_MENU, parse_menu
from channels.voice.walk import CallerContext, Hangup, IvrWalk, Notice, Play
from router.models import Contact, ContactIdentity, Region
from tests.conftest import RunningHub
from workorders.bulletin import Notice as BulletinNotice

# Monday 2026-12-07 10:00 and 20:00 in Shanghai; Thursday 2026-10-01 (National Day) 10:00.
MONDAY_MORNING = datetime(2026, 12, 7, 2, 0, tzinfo=UTC)
MONDAY_EVENING = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
NATIONAL_DAY = datetime(2026, 10, 1, 2, 0, tzinfo=UTC)


def test_staffed_hours_follow_the_settings_and_the_holidays(make_settings) -> None:
    office = LineHours(make_settings())
    assert office.is_open(MONDAY_MORNING) and not office.is_open(MONDAY_EVENING)
    assert not office.is_open(NATIONAL_DAY)
    evenings = LineHours(make_settings(voice_hours="08:00-22:00"))
    assert evenings.is_open(MONDAY_EVENING) and not evenings.is_open(NATIONAL_DAY)
    always = LineHours(make_settings(voice_hours="24x7"))
    assert always.is_open(NATIONAL_DAY)


def test_a_long_notice_is_cut_for_reading_out() -> None:
    assert spoken_notice("东湖区停水", "今晚十点至明早六点。") == "东湖区停水。今晚十点至明早六点。"
    assert spoken_notice("停水", "很" * 300).endswith("……") and len(spoken_notice("停水", "很" * 300)) == 122


async def test_the_callers_flags_district_and_the_notices_in_force(running_hub: RunningHub, make_settings) -> None:
    tag = uuid.uuid4().hex[:8]
    number, stranger = f"139{uuid.uuid4().int % 10**8:08d}", f"137{uuid.uuid4().int % 10**8:08d}"
    now = datetime.now(UTC)
    async with running_hub.hub.sessions.begin() as session:
        region = Region(code=f"r{tag}", name="东湖区")
        session.add(region)
        await session.flush()
        contact = Contact(display_name="来电居民", vip=True, blacklisted=False, region_id=region.id)
        session.add(contact)
        await session.flush()
        session.add(ContactIdentity(contact_id=contact.id, channel="sms", external_id=number))
        for title, codes, starts in ((f"东湖区停水{tag}", [region.code], -1), (f"西山区停水{tag}", ["elsewhere"], -1),
                                     (f"全市降压{tag}", [], -1), (f"明日停水{tag}", [region.code], 20)):
            session.add(BulletinNotice(kind="planned_outage", title=title, body="请提前储水。",
                                       districts={"codes": codes}, starts_at=now + timedelta(hours=starts),
                                       ends_at=now + timedelta(hours=starts + 5)))
    hours = LineHours(make_settings(voice_hours="24x7"))
    context = await caller_context(running_hub.hub.sessions, number, now, hours, agents_available=True)
    assert (context.vip, context.blacklisted, context.district, context.open_now) == (True, False, f"r{tag}", True)
    mine = [n for n in context.notices if tag in n.text]
    assert [n.text for n in mine] == [f"东湖区停水{tag}。请提前储水。", f"西山区停水{tag}。请提前储水。",
                                      f"全市降压{tag}。请提前储水。"]
    assert mine[0].districts == (f"r{tag}",) and mine[2].districts == ()

    # The walk broadcasts the caller's district's notice and the city-wide one only.
    menu = parse_menu(DEFAULT_MENU.read_text("utf-8"))
    spoken = [s.text for s in IvrWalk(menu, context).start() if isinstance(s, Play)][1]
    assert f"东湖区停水{tag}" in spoken and f"全市降压{tag}" in spoken and f"西山区停水{tag}" not in spoken

    unknown = await caller_context(running_hub.hub.sessions, stranger, now, hours, agents_available=False)
    assert (unknown.vip, unknown.blacklisted, unknown.district, unknown.agents_available) == (False, False, None, False)

    async with running_hub.hub.sessions.begin() as session:
        (await session.get(Contact, contact.id)).blacklisted = True
    context = await caller_context(running_hub.hub.sessions, number, now, hours, agents_available=True)
    assert IvrWalk(menu, context).start()[-1] == Hangup("blacklisted")


def test_notices_without_districts_reach_everyone() -> None:
    menu = parse_menu(DEFAULT_MENU.read_text("utf-8"))
    steps = IvrWalk(menu, CallerContext(district="x", notices=(Notice("全市停水"),))).start()
    assert steps[1] == Play("最新停水公告:全市停水", "zh")
