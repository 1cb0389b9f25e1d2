"""Supervisors set campaigns up, start, pause, resume and cancel them through the API; the dialer keeps to a
campaign's call window; bad input is refused with the field named, and agents may not touch campaigns."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from router.campaigns import in_window
from router.models import CampaignTarget, Role
from router.settings import Settings
from tests.channels.voice.campaigns.test_campaign_dialer import Database
from tests.channels.voice.conftest import VoiceWorld, connected_world
from tests.support.asterisk import Asterisk

SHANGHAI = ZoneInfo("Asia/Shanghai")
POLL = 0.3


def test_the_call_window_is_read_in_the_hubs_time_zone_and_may_run_over_midnight() -> None:
    noon = datetime(2026, 12, 7, 4, 0, tzinfo=ZoneInfo("UTC"))  # 12:00 in Shanghai
    assert in_window("09:00", "20:00", noon, SHANGHAI)
    assert not in_window("13:00", "20:00", noon, SHANGHAI)
    assert not in_window("09:00", "12:00", noon, SHANGHAI)  # the end is not in it
    assert in_window("00:00", "24:00", noon, SHANGHAI)
    assert in_window("20:00", "13:00", noon, SHANGHAI) and not in_window("20:00", "08:00", noon, SHANGHAI)
    with pytest.raises(ValueError):
        in_window("9:00", "20:00", noon, SHANGHAI)


@pytest.fixture
async def world(asterisk: Asterisk, own_voice_settings: Settings) -> AsyncIterator[VoiceWorld]:
    async with connected_world(own_voice_settings.model_copy(update={
            "voice_hours": "24x7", "voice_campaign_poll_seconds": POLL,
            "voice_outbound_uri": "sip:{number}@127.0.0.1:9"}), asterisk) as world:
        yield world


async def test_supervisors_run_campaigns_and_the_dialer_keeps_to_the_window(
        world: VoiceWorld, own_voice_settings: Settings) -> None:
    database = Database(own_voice_settings.database_url)
    try:
        region_id, contacts = await database.residents(3, "1370000")
        supervisor, agent = await world.hub.staff(Role.SUPERVISOR), await world.hub.staff(Role.AGENT)
        status, refused = await agent.attempt("GET", "/api/campaigns")
        assert (status, refused["error"]["code"]) == (403, "role_forbidden")

        closed = (datetime.now(SHANGHAI) + timedelta(hours=12)).strftime("%H:%M")  # a minute, half a day away
        shut = (datetime.now(SHANGHAI) + timedelta(hours=12, minutes=1)).strftime("%H:%M")
        body = {"name": "停水通知", "kind": "outage", "message": "您所在片区明日停水。", "region_id": region_id,
                "channels": 2, "call_from": closed, "call_until": shut, "ring_seconds": 5}
        status, refused = await supervisor.attempt("POST", "/api/campaigns", {**body, "call_from": "25:00"})
        assert status == 422 and "call_from" in str(refused["error"])
        status, refused = await supervisor.attempt("POST", "/api/campaigns", {**body, "region_id": 999999})
        assert (status, refused["error"]["code"]) == (404, "no_region")
        status, refused = await supervisor.attempt("POST", "/api/campaigns", {**body, "contact_ids": [999999]})
        assert (status, refused["error"]["code"]) == (409, "no_targets")

        created = await supervisor.call("POST", "/api/campaigns", {**body, "start": True}, expect=201)
        assert (created["state"], created["targets"], created["progress"]) == ("running", 3, {"pending": 3})
        await asyncio.sleep(POLL * 5)  # the dialer looked several times: outside the window, nobody is called
        async with database.sessions() as session:
            targets = list(await session.scalars(select(CampaignTarget).where(
                CampaignTarget.campaign_id == created["id"])))
        assert [(t.state, t.attempts) for t in targets] == [("pending", 0)] * 3

        path = f"/api/campaigns/{created['id']}"
        for _ in range(2):  # a double click pauses once
            paused = await supervisor.call("POST", f"{path}/state", {"state": "paused"})
            assert paused["state"] == "paused"
        listed = await supervisor.call("GET", f"{path}/targets?state=pending")
        assert [t["phone"] for t in listed["items"]] == [f"+*********{i:04d}" for i in range(3)]
        assert [t["contact_name"] for t in listed["items"]] == ["居民0", "居民1", "居民2"]
        assert [t["contact_id"] for t in listed["items"]] == contacts
        cancelled = await supervisor.call("POST", f"{path}/state", {"state": "cancelled"})
        assert (cancelled["state"], cancelled["progress"]) == ("cancelled", {"cancelled": 3})
        status, refused = await supervisor.attempt("POST", f"{path}/state", {"state": "running"})
        assert (status, refused["error"]["code"]) == (409, "bad_state")
        assert [c["id"] for c in (await supervisor.call("GET", "/api/campaigns"))["items"]] == [created["id"]]
    finally:
        await database.engine.dispose()
