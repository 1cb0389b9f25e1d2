"""Residents' messages that arrive while the database is away: kept on local disk, stored when it is back.

:meth:`Journal.accept` stores a message as usual. When that fails because the database cannot be reached
(:func:`router.db.unreachable`), the message goes into this process's spool (router/spool.py), durably, and
the channel tells its platform it was received (WeChat stops retrying, the widget shows it as received). A
replayer waits for the database to answer again and hands the spooled messages to the normal inbound flow in
the order they came, so the bot or an agent answers them; a message stored before (a retry, a replay cut
short by a crash) is recognised by its channel message id and stored once.

While anything is left in the spool, new messages join its end instead of overtaking it, so a resident's
messages are stored in the order they were sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections import defaultdict
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from channels.base import Attachment, InboundMessage, IngestResult, Journaled
from router.db import unreachable
from router.logs import get_logger
from router.models import utcnow
from router.settings import Settings
from router.spool import Spool

log = get_logger(__name__)

REPLAY_BATCH = 200
RETRY_FIRST_SECONDS = 0.5
RETRY_MAX_SECONDS = 5.0


def record_of(inbound: InboundMessage) -> dict[str, Any]:
    record = dataclasses.asdict(inbound)
    record["received_at"] = (inbound.received_at or utcnow()).isoformat()
    return record


def inbound_of(record: dict[str, Any]) -> InboundMessage:
    attachment = record.get("attachment")
    received_at = record.get("received_at")
    return InboundMessage(**{
        **record,
        "attachment": Attachment(**attachment) if attachment else None,
        "received_at": datetime.fromisoformat(received_at) if received_at else None,
    })


class Journal:
    def __init__(self, settings: Settings, ingest: Callable[[InboundMessage], Awaitable[IngestResult]],
                 probe: Callable[[], Awaitable[None]]) -> None:
        """``ingest`` stores and routes one message; ``probe`` raises while the database cannot be reached."""
        self._settings = settings
        self._ingest = ingest
        self._probe = probe
        self._spool: Spool | None = None
        self._disk = asyncio.Lock()  # the spool's files are used by one thread at a time
        self._appending = 0  # appends waiting for the disk: the spool counts as not empty meanwhile
        self._wake = asyncio.Event()
        self.drained = asyncio.Event()  # set while nothing waits in the spool
        self._replayer: asyncio.Task[None] | None = None
        self.replayed = 0

    @property
    def backlog(self) -> bool:
        """Whether messages wait in the spool (new ones then queue behind them)."""
        return self._appending > 0 or (self._spool is not None and not self._spool.empty)

    async def start(self) -> None:
        max_bytes = int(self._settings.spool_max_megabytes * 1024 * 1024)
        self._spool = await asyncio.to_thread(Spool.claim, self._settings.effective_spool_dir, max_bytes)
        self._replayer = asyncio.create_task(self._replay_when_possible(), name="journal-replayer")
        if self._spool.empty:
            self.drained.set()
        else:
            log.warning("messages left in the spool; replaying them", spool=str(self._spool.directory))
            self._wake.set()

    async def stop(self) -> None:
        """Stop replaying; what is left stays in the spool for the next start."""
        if self._replayer is not None:
            self._replayer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._replayer
        if self._spool is not None:
            async with self._disk:
                self._spool.close()

    async def accept(self, inbound: InboundMessage) -> IngestResult | Journaled:
        """Store ``inbound``, or journal it while the database cannot be reached.

        Raises :class:`router.spool.SpoolFull` when it can be neither stored nor journaled.
        """
        if self.backlog:
            return await self._journal(inbound)
        try:
            return await self._ingest(inbound)
        except Exception as exc:
            if not unreachable(exc):
                raise
            log.warning("database unreachable; message journaled", channel=inbound.channel, error=type(exc).__name__)
            return await self._journal(inbound)

    async def _journal(self, inbound: InboundMessage) -> Journaled:
        assert self._spool is not None, "journal not started"
        self.drained.clear()
        self._appending += 1
        try:
            async with self._disk:
                await asyncio.to_thread(self._spool.append, record_of(inbound))
        finally:
            self._appending -= 1
        self._wake.set()
        return Journaled(channel_message_id=inbound.channel_message_id)

    # -- replay -----------------------------------------------------------------------------------

    async def _replay_when_possible(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            delay = RETRY_FIRST_SECONDS
            while self.backlog:
                try:
                    await self._probe()
                    await self._replay_batch()
                    delay = RETRY_FIRST_SECONDS
                except Exception as exc:
                    if not unreachable(exc):
                        log.exception("journal replay failed; trying again")
                    await asyncio.sleep(delay)
                    delay = min(RETRY_MAX_SECONDS, delay * 2)
            self.drained.set()

    async def _replay_batch(self) -> None:
        assert self._spool is not None
        async with self._disk:
            records = await asyncio.to_thread(self._spool.read, REPLAY_BATCH)
        if not records:
            await asyncio.sleep(0.01)  # an append is under way; its record is read next time
            return
        by_address: defaultdict[tuple[str, str], list[InboundMessage]] = defaultdict(list)
        for _, record in records:
            try:
                inbound = inbound_of(record)
            except (TypeError, ValueError):  # written by another version of the hub, say: it must not block the rest
                log.error("journal record not understood; dropped", record=str(record)[:500])
                continue
            by_address[inbound.channel, inbound.external_id].append(inbound)
        # Residents side by side (their messages go into the same inbound batches), each one's in order.
        results = await asyncio.gather(*(self._replay_in_order(items) for items in by_address.values()),
                                       return_exceptions=True)
        failed = [r for r in results if isinstance(r, BaseException)]
        if failed:
            raise failed[0]  # the database went away again: the batch is replayed again (stored once)
        async with self._disk:
            await asyncio.to_thread(self._spool.advance, records[-1][0])
        self.replayed += len(records)
        log.info("journaled messages stored", count=len(records))

    async def _replay_in_order(self, items: list[InboundMessage]) -> None:
        for inbound in items:
            try:
                await self._ingest(inbound)
            except Exception as exc:
                if unreachable(exc):
                    raise
                # Not an outage: this message cannot be stored at all, and must not hold up the others.
                log.exception("journaled message refused by the database; dropped", channel=inbound.channel,
                              channel_message_id=inbound.channel_message_id)
