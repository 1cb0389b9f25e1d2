"""An automatic outbound campaign to a district's residents, against real Asterisk and sipp residents behind the
carrier's trunk: every resident called once (busy and unanswered ones again, up to the attempts), at most the
campaign's channels at a time, "do not call" honoured from then on, and a hub killed mid-way resumes without
calling anyone twice."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from router.campaigns import change_state, create_campaign
from router.db import create_engine, session_factory
from router.models import Campaign, CampaignState, CampaignTarget, Contact, ContactIdentity, DoNotCall, Region
from router.settings import Settings
from tests.conftest import PASSWORD
from tests.support.asterisk import Asterisk
from tests.support.hubproc import HubProcess
from tests.support.sipp import Residents

BUSY, NO_ANSWER, OPT_OUT = "[0-9]*0[0-4]", "[0-9]*0[5-9]", "[0-9]*1[0-4]"  # by the last two digits: 5 % each
CHANNELS, ATTEMPTS, RING_SECONDS = 10, 2, 5
# The district: 500 residents on PostgreSQL, the production database; the same run at a smaller scale on SQLite.
RESIDENTS = {"postgresql": 500, "sqlite": 120}
MESSAGE = "您好,这里是水务热线。您所在片区明日停水。"


def national(suffix: int, prefix: str) -> str:
    return f"{prefix}{suffix:04d}"


def kind_of(number: str) -> str:
    last_two = int(number[-2:])
    if last_two < 5:
        return "busy"
    if last_two < 10:
        return "no_answer"
    if 10 <= last_two < 15:
        return "opt_out"
    return "confirm"


class Database:
    def __init__(self, url: str) -> None:
        self.engine = create_engine(url, 2)
        self.sessions = session_factory(self.engine)

    async def residents(self, count: int, prefix: str) -> tuple[int, list[int]]:
        """A district of ``count`` residents, each known by their phone; the district and the contacts."""
        async with self.sessions.begin() as session:
            region = Region(code=f"d{uuid.uuid4().hex[:8]}", name="东湖片区")
            session.add(region)
            await session.flush()
            contacts = [Contact(display_name=f"居民{i}", region_id=region.id) for i in range(count)]
            session.add_all(contacts)
            await session.flush()
            session.add_all(ContactIdentity(contact_id=c.id, channel="voice", external_id=f"+86{national(i, prefix)}")
                            for i, c in enumerate(contacts))
            return region.id, [c.id for c in contacts]

    async def campaign(self, *, region_id: int | None = None, contact_ids: list[int] | None = None) -> int:
        async with self.sessions.begin() as session:
            campaign = Campaign(name="停水通知", kind="outage", message=MESSAGE, region_id=region_id,
                                channels=CHANNELS, max_attempts=ATTEMPTS, retry_seconds=5, ring_seconds=RING_SECONDS,
                                call_from="00:00", call_until="24:00")
            await create_campaign(session, campaign, contact_ids)
            await change_state(session, campaign.id, CampaignState.RUNNING)
            return campaign.id

    async def targets(self, campaign_id: int) -> dict[str, CampaignTarget]:
        async with self.sessions() as session:
            rows = await session.scalars(select(CampaignTarget).where(CampaignTarget.campaign_id == campaign_id))
            return {t.phone.removeprefix("+86"): t for t in rows}

    async def state(self, campaign_id: int) -> str:
        async with self.sessions() as session:
            campaign = await session.get(Campaign, campaign_id)
            assert campaign is not None
            return campaign.state

    async def barred(self) -> set[str]:
        async with self.sessions() as session:
            return {p.removeprefix("+86") for p in await session.scalars(select(DoNotCall.phone))}


@pytest.fixture
async def database(own_voice_settings: Settings) -> AsyncIterator[Database]:
    database = Database(own_voice_settings.database_url)
    yield database
    await database.engine.dispose()


def hub_env(settings: Settings, asterisk: Asterisk, residents: Residents) -> dict[str, str]:
    return {"HUB_DATABASE_URL": settings.database_url, "HUB_SECRET_KEY": "s" * 40,
            "HUB_FIRST_ADMIN_PASSWORD": PASSWORD, "HUB_CHANNELS": "webchat,voice", "HUB_RASA_URL": "",
            "HUB_VOICE_ARI_URL": asterisk.ari_url, "HUB_VOICE_ARI_USERNAME": asterisk.ari_user,
            "HUB_VOICE_ARI_PASSWORD": asterisk.ari_password, "HUB_VOICE_APP": asterisk.app,
            "HUB_VOICE_PROMPT_DIR": str(asterisk.prompt_dir), "HUB_VOICE_RECONNECT_MAX_SECONDS": "1",
            "HUB_VOICE_HOURS": "24x7", "HUB_VOICE_OUTBOUND_URI": f"sip:{{number}}@127.0.0.1:{residents.port}",
            "HUB_VOICE_OUTBOUND_CALLER_ID": "962740", "HUB_VOICE_CAMPAIGN_POLL_SECONDS": "0.5"}


def most_at_once(calls: list[tuple[datetime, datetime | None]]) -> tuple[int, list[tuple[datetime, datetime | None]]]:
    """The most calls up at one moment, and those calls."""
    edges = sorted([(start, 1) for start, _ in calls] + [(end, -1) for _, end in calls if end is not None],
                   key=lambda edge: (edge[0], edge[1]))
    level = peak = 0
    moment = None
    for at, step in edges:
        level += step
        if level > peak:
            peak, moment = level, at
    return peak, [(start, end) for start, end in calls if start <= moment and (end is None or end > moment)]


async def until(predicate, timeout: float, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await predicate():
        assert asyncio.get_running_loop().time() < deadline, what
        await asyncio.sleep(0.5)


@pytest.mark.timeout(900)
async def test_a_campaign_calls_every_resident_once_through_a_hub_kill(
        asterisk: Asterisk, own_voice_settings: Settings, database: Database, backend: str, tmp_path: Path) -> None:
    count = RESIDENTS[backend]
    prefix = f"139{uuid.uuid4().int % 10**4:04d}"
    numbers = [national(i, prefix) for i in range(count)]
    barred_before = numbers[20:23]  # confirmers who asked not to be called, before this campaign
    async with Residents(BUSY, NO_ANSWER, OPT_OUT) as residents:
        env = hub_env(own_voice_settings, asterisk, residents)
        first = HubProcess(env, tmp_path / "var", name="first")
        second = HubProcess(env, tmp_path / "var", name="second")
        try:
            await asyncio.to_thread(first.start)  # it brings the database up to date
            region_id, _ = await database.residents(count, prefix)
            async with database.sessions.begin() as session:
                session.add_all(DoNotCall(phone=f"+86{number}") for number in barred_before)
            campaign_id = await database.campaign(region_id=region_id)

            async def a_third_done() -> bool:  # then the hub is killed, with calls out
                targets = await database.targets(campaign_id)
                return sum(t.state not in ("pending", "dialing") for t in targets.values()) >= count // 3
            await until(a_third_done, 240, f"the campaign did not get going: {first.output()[-3000:]}"
                        f"\n{residents.output()}\n{await database.targets(campaign_id)}")
            first.kill()
            in_flight = {n for n, t in (await database.targets(campaign_id)).items() if t.state == "dialing"}
            await asyncio.to_thread(second.start)

            async def done() -> bool:
                return await database.state(campaign_id) == "done"
            await until(done, 600, f"the campaign did not finish: {second.output()[-3000:]}")
        finally:
            first.kill()
            second.kill()
        invites = residents.invites()
        phones_rang = residents.calls()
        targets = await database.targets(campaign_id)

    assert len(targets) == count
    assert {n for n, t in targets.items() if t.state == "skipped"} == set(barred_before)
    assert not any(invites[number] for number in barred_before)
    interrupted = {n for n, t in targets.items() if t.state == "interrupted"}
    assert interrupted <= in_flight and len(in_flight) <= CHANNELS
    for number in numbers:
        if number in barred_before:
            continue
        target, kind = targets[number], kind_of(number)
        if number in in_flight:  # out when the hub was killed: called (or about to be), not again once it was lost
            assert invites[number] <= target.attempts, (number, invites[number], target.attempts)
            assert target.state in ("interrupted", "heard", "confirmed", "opted_out", kind), (number, target.state)
            continue
        assert invites[number] == target.attempts, (number, target.state, invites[number], target.attempts)
        expected = {"busy": ("busy", ATTEMPTS), "no_answer": ("no_answer", ATTEMPTS), "opt_out": ("opted_out", 1),
                    "confirm": ("confirmed", 1)}[kind]
        assert (target.state, target.attempts) == expected, (number, target.state, target.attempts)
    assert {n for n, t in targets.items() if t.state == "opted_out"} <= await database.barred()
    # Calls out at once, as the residents' phones saw them (a call's record may be closed a little after its
    # channel was freed on a loaded machine, so the records are not the measure).
    peak, up = most_at_once(phones_rang)
    assert peak <= CHANNELS, sorted(up)
