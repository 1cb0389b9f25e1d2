"""Residents' messages during a database outage: journaled on disk, then stored once, in order (router/journal.py).

The outage is real: the hub's PostgreSQL server of its own (tests/support/pgcluster.py) is stopped and started.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy.exc import IntegrityError

from channels.base import InboundMessage, IngestResult, Journaled
from router.db import unreachable
from router.journal import record_of
from router.models import Conversation
from router.spool import Spool
from tests.conftest import outage_settings, start_hub
from tests.support.outage import stored, wait_for_stored
from tests.support.pgcluster import PrivateCluster

RESIDENTS = ("journal-a", "journal-b")


def said(resident: str, n: int, text: str | None = None) -> InboundMessage:
    return InboundMessage(channel="webchat", external_id=resident, channel_message_id=f"{resident}-{n:04d}",
                          text=text or f"{resident} 第{n}条")


async def test_messages_sent_while_the_database_is_down_are_stored_once_in_order_when_it_is_back(
    private_pg: PrivateCluster, tmp_path: Path
) -> None:
    running = await start_hub(outage_settings(private_pg, tmp_path / "var"))
    try:
        for resident in RESIDENTS:
            assert isinstance(await running.hub.ingest_or_journal(said(resident, 0)), IngestResult)
        private_pg.stop()
        answers = []
        for n in range(1, 6):
            for resident in RESIDENTS:
                answers.append(await running.hub.ingest_or_journal(said(resident, n)))
        answers.append(await running.hub.ingest_or_journal(said("journal-a", 3)))  # a resend: the same id
        assert all(isinstance(a, Journaled) for a in answers), answers
        assert list((tmp_path / "var" / "spool").glob("*/*.seg"))  # on disk, not in memory
        private_pg.start()
        # A message written after the outage does not overtake those journaled during it.
        await running.hub.ingest_or_journal(said("journal-a", 6))
        await wait_for_stored(running, {r: [f"{r}-{n:04d}" for n in range(7 if r == "journal-a" else 6)]
                                        for r in RESIDENTS})
        # Stored is visible before the replayer moves past the batch: wait for it to finish.
        await asyncio.wait_for(running.hub.journal.drained.wait(), 30)
        assert running.hub.journal.replayed >= 11
        assert not running.hub.journal.backlog
    finally:
        await running.runner.cleanup()


async def test_what_was_journaled_is_stored_by_the_next_hub_on_the_same_disk(
    private_pg: PrivateCluster, tmp_path: Path
) -> None:
    settings = outage_settings(private_pg, tmp_path / "var")
    running = await start_hub(settings)
    try:
        await running.hub.ingest_or_journal(said("journal-a", 0))
        private_pg.stop()
        for n in range(1, 4):
            assert isinstance(await running.hub.ingest_or_journal(said("journal-a", n)), Journaled)
    finally:
        await running.runner.cleanup()  # the hub stops (or crashes) before the database is back
    private_pg.start()
    running = await start_hub(settings)
    try:
        await wait_for_stored(running, {"journal-a": [f"journal-a-{n:04d}" for n in range(4)]})
    finally:
        await running.runner.cleanup()


async def test_an_outage_is_told_from_a_refused_statement(private_pg: PrivateCluster, tmp_path: Path) -> None:
    running = await start_hub(outage_settings(private_pg, tmp_path / "var"))
    try:
        async with running.hub.sessions() as session:
            with pytest.raises(IntegrityError) as refused:
                session.add(Conversation(channel="webchat", external_id="x", contact_id=999_999, state="bot",
                                         priority=0, reopen_count=0))
                await session.flush()
        assert not unreachable(refused.value)
        private_pg.stop()
        with pytest.raises(Exception) as down:
            await stored(running, "journal-a")
        assert unreachable(down.value)
    finally:
        await running.runner.cleanup()


async def test_a_record_the_hub_cannot_read_does_not_hold_up_the_others(private_pg: PrivateCluster,
                                                                        tmp_path: Path) -> None:
    settings = outage_settings(private_pg, tmp_path / "var")
    spool = Spool.claim(settings.effective_spool_dir, 1024 * 1024)
    spool.append({"channel": "webchat", "unknown_field": "from another version"})
    spool.append(record_of(said("journal-a", 0)))
    spool.close()
    running = await start_hub(settings)
    try:
        await wait_for_stored(running, {"journal-a": ["journal-a-0000"]})
    finally:
        await running.runner.cleanup()


async def test_first_messages_caught_by_an_outage_while_their_conversations_open_are_journaled_not_left_waiting(
    private_pg: PrivateCluster, tmp_path: Path
) -> None:
    """The server stops just as new residents' conversations are being opened together (a refused connect is a
    bare OSError, not a driver error): each message is journaled and stored once the database is back, none is
    left waiting for an answer that never comes."""
    running = await start_hub(outage_settings(private_pg, tmp_path / "var"))
    ingestor = running.hub.ingestor
    open_batch = ingestor._open_batch

    async def the_database_goes_away_first(openers: list) -> list:
        await asyncio.to_thread(private_pg.stop)
        return await open_batch(openers)

    newcomers = ("journal-new-a", "journal-new-b", "journal-new-c")
    try:
        ingestor._open_batch = the_database_goes_away_first
        answers = await asyncio.wait_for(
            asyncio.gather(*(running.hub.ingest_or_journal(said(resident, 0)) for resident in newcomers)), 30)
        assert all(isinstance(answer, Journaled) for answer in answers), answers
        ingestor._open_batch = open_batch
        private_pg.start()
        await wait_for_stored(running, {resident: [f"{resident}-0000"] for resident in newcomers})
    finally:
        await running.runner.cleanup()
