"""Storing what residents send: once per channel message id, in the right conversation.

Messages that arrive together are stored together (group commit): one transaction finds the open
conversations of a whole batch, inserts its messages in one statement and stamps the conversations
in another. That is the path nearly every message takes. A message that needs more (a first
message that opens a conversation, a reopen, a duplicate, a state transition) takes the careful
path, one message at a time with row locks, and so does a batch whose transaction failed.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from channels.base import Attachment, InboundMessage, IngestResult
from router import conversations as convs
from router.logs import get_logger
from router.models import (
    Author,
    Contact,
    ContactIdentity,
    Conversation,
    ConversationState,
    Direction,
    Message,
    utcnow,
)
from router.schemas import KEY_COLUMNS, conversation_event, message_event, message_out, visibility_key
from router.settings import Settings

log = get_logger(__name__)

MAX_BATCH = 500
# States in which a new message changes nothing but the conversation's activity time.
_PLAIN_STATES = (ConversationState.BOT, ConversationState.QUEUED, ConversationState.ASSIGNED)

# The batch path's statements, built once (their compiled forms are cached).
_LOCK_OPEN_CONVERSATIONS = (
    select(*KEY_COLUMNS)
    .where(
        tuple_(Conversation.channel, Conversation.external_id).in_(bindparam("addresses", expanding=True)),
        Conversation.state.in_(_PLAIN_STATES),
    )
    .order_by(Conversation.id)  # every batch locks in the same order: no deadlocks between batches
    .with_for_update()
)
_STAMP_ACTIVITY = (
    update(Conversation.__table__)
    .where(Conversation.__table__.c.id.in_(bindparam("ids", expanding=True)))
    .values(updated_at=bindparam("now"), last_message_at=bindparam("now"))
)
_INSERTED_COLUMNS = ("conversation_id", "channel", "direction", "author", "type", "text", "payload",
                     "channel_message_id", "attempts", "created_at")
_MESSAGES = Message.__table__


@functools.cache
def _insert_new_messages(dialect: str) -> Any:
    """INSERT … ON CONFLICT DO NOTHING: a message stored before is skipped, not an error."""
    insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    return (
        insert(_MESSAGES)
        .on_conflict_do_nothing(index_elements=[_MESSAGES.c.channel, _MESSAGES.c.channel_message_id])
        .returning(_MESSAGES.c.id, _MESSAGES.c.channel, _MESSAGES.c.channel_message_id)
    )


@dataclass(slots=True)
class Ingested:
    """A stored message, the events to publish about it, and whether the bot should answer it."""

    result: IngestResult
    events: list[dict[str, Any]] = field(default_factory=list)
    ask_bot: bool = False


@dataclass(slots=True)
class _Pending:
    inbound: InboundMessage
    future: asyncio.Future[Ingested]

    @property
    def address(self) -> tuple[str, str]:
        return self.inbound.channel, self.inbound.external_id

    @property
    def key(self) -> tuple[str, str]:
        return self.inbound.channel, self.inbound.channel_message_id


def attachment_payload(attachment: Attachment) -> dict[str, Any]:
    """How a message keeps its file in ``Message.payload["attachment"]``, either way it travels."""
    kept = {"url": attachment.url, "name": attachment.name, "size": attachment.size,
            "content_type": attachment.content_type}
    return kept | ({"file_id": attachment.file_id} if attachment.file_id else {})


def resident_message(inbound: InboundMessage, conversation_id: int, now: datetime) -> Message:
    payload = dict(inbound.payload)
    if inbound.attachment is not None:
        payload["attachment"] = attachment_payload(inbound.attachment)
    return Message(
        conversation_id=conversation_id,
        channel=inbound.channel,
        direction=Direction.IN,
        author=Author.RESIDENT,
        author_user=None,
        type=inbound.type,
        text=inbound.text,
        payload=payload or None,
        channel_message_id=inbound.channel_message_id,
        attempts=0,
        created_at=now,
    )


class Ingestor:
    def __init__(
        self,
        engine: AsyncEngine,
        sessions: async_sessionmaker[AsyncSession],
        settings: Settings,
        *,
        bot_enabled: bool,
        default_team_id: Callable[[], int | None],
    ) -> None:
        self._engine = engine
        self._sessions = sessions
        self._settings = settings
        self._bot_enabled = bot_enabled
        self._default_team_id = default_team_id
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self.stored = collections.Counter[str]()  # messages stored by each path, for monitoring
        self._workers: list[asyncio.Task[None]] = []
        self._careful: dict[tuple[str, str], asyncio.Task[None]] = {}  # per address, its latest careful task

    def start(self) -> None:
        # Several batches in flight: one is being written while the database commits another.
        self._workers = [asyncio.create_task(self._run(), name=f"inbound-batcher-{i}")
                         for i in range(self._settings.ingest_pipelines)]

    async def stop(self) -> None:
        """Store what was already handed in, then stop."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), timeout=self._settings.shutdown_grace_seconds)
        if self._careful:
            await asyncio.wait(list(self._careful.values()), timeout=self._settings.shutdown_grace_seconds)
        for worker in self._workers:
            worker.cancel()
        for worker in self._workers:
            with contextlib.suppress(asyncio.CancelledError):
                await worker

    async def ingest(self, inbound: InboundMessage) -> Ingested:
        future: asyncio.Future[Ingested] = asyncio.get_running_loop().create_future()
        await self._queue.put(_Pending(inbound, future))
        return await future

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < MAX_BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                await self._store(batch)
            except Exception as exc:
                log.exception("inbound batch failed")
                for pending in batch:
                    if not pending.future.done():
                        pending.future.set_exception(exc)
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def _store(self, batch: list[_Pending]) -> None:
        try:
            careful = await self._store_batch(batch)
        except (IntegrityError, DBAPIError) as exc:
            # Another process stored one of these, or the database refused the batch: go one by one.
            log.info("inbound batch falls back to one by one", size=len(batch), error=type(exc).__name__)
            careful = [p for p in batch if not p.future.done()]
        arrival = {id(p): i for i, p in enumerate(batch)}
        by_address: dict[tuple[str, str], list[_Pending]] = defaultdict(list)
        for pending in sorted(careful, key=lambda p: arrival[id(p)]):
            by_address[pending.address].append(pending)
        # The careful path runs beside the batches, so that a flood of first messages (new conversations)
        # does not hold up messages into open ones; per address it stays in arrival order.
        for address, items in by_address.items():
            task = asyncio.create_task(self._one_by_one(items, after=self._careful.get(address)))
            self._careful[address] = task
            task.add_done_callback(functools.partial(self._careful_done, address))

    def _careful_done(self, address: tuple[str, str], task: asyncio.Task[None]) -> None:
        if self._careful.get(address) is task:
            del self._careful[address]

    async def _one_by_one(self, items: list[_Pending], after: asyncio.Task[None] | None) -> None:
        if after is not None:
            await asyncio.wait([after])  # the same resident's earlier messages first
        for pending in items:  # in arrival order: the first may open the conversation the next one joins
            try:
                pending.future.set_result(await self._store_carefully(pending.inbound))
                self.stored["one_by_one"] += 1
            except Exception as exc:
                pending.future.set_exception(exc)

    async def _store_batch(self, batch: list[_Pending]) -> list[_Pending]:
        """Store the plain messages of ``batch``; returns those that need the careful path."""
        careful: list[_Pending] = []
        first_of_key: dict[tuple[str, str], _Pending] = {}
        for pending in batch:
            if pending.key in first_of_key:
                careful.append(pending)  # a copy inside the batch: stored after the first, as a duplicate
            else:
                first_of_key[pending.key] = pending
        addresses = list({p.address for p in first_of_key.values()})
        now = utcnow()
        async with self._engine.begin() as connection:
            open_rows = {
                (row.channel, row.external_id): row
                for row in await connection.execute(_LOCK_OPEN_CONVERSATIONS, {"addresses": addresses})
            }
            plain = [p for p in first_of_key.values() if p.address in open_rows]
            careful += [p for p in first_of_key.values() if p.address not in open_rows]
            if not plain:
                return careful
            messages = {p.key: resident_message(p.inbound, open_rows[p.address].id, now) for p in plain}
            inserted = await connection.execute(
                _insert_new_messages(connection.dialect.name),
                [{column: getattr(m, column) for column in _INSERTED_COLUMNS} for m in messages.values()],
            )
            ids = {(row.channel, row.channel_message_id): row.id for row in inserted}
            await connection.execute(_STAMP_ACTIVITY, {"ids": [open_rows[p.address].id for p in plain], "now": now})
        for pending in plain:
            if pending.key not in ids:
                careful.append(pending)  # stored before, by another process or an earlier batch
                continue
            self.stored["batched"] += 1
            message = messages[pending.key]
            message.id = ids[pending.key]
            row = open_rows[pending.address]
            out = message_out(message).model_dump(mode="json")
            pending.future.set_result(Ingested(
                result=IngestResult(message=out, conversation_id=row.id, conversation_state=row.state,
                                    duplicate=False),
                events=[{"type": "message", "key": visibility_key(row), "message": out}],
                ask_bot=row.state == ConversationState.BOT and self._bot_enabled,
            ))
        return careful

    async def _store_carefully(self, inbound: InboundMessage) -> Ingested:
        for attempt in range(3):
            try:
                return await self._store_one(inbound)
            except IntegrityError:
                # A concurrent delivery of the same message, or a concurrent first message of the
                # same resident, won the race; the next pass finds what it stored.
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def _store_one(self, inbound: InboundMessage) -> Ingested:
        now = utcnow()
        async with self._sessions.begin() as session:
            existing = await session.scalar(
                select(Message).where(
                    Message.channel == inbound.channel, Message.channel_message_id == inbound.channel_message_id
                )
            )
            if existing is not None:
                conversation = await session.get(Conversation, existing.conversation_id)
                assert conversation is not None
                return Ingested(IngestResult(message=message_out(existing).model_dump(mode="json"),
                                             conversation_id=conversation.id,
                                             conversation_state=conversation.state, duplicate=True))
            conversation, events, state_changed = await self._open_conversation(session, inbound)
            message = resident_message(inbound, conversation.id, now)
            session.add(message)
            convs.stamp_activity(conversation, now)
            if conversation.state == ConversationState.WAITING_RESIDENT:
                events.append(convs.transition(session, conversation, "resident_replied", actor="resident"))
                state_changed = True
            await session.flush()
            published = [message_event(m, conversation) for m in [*events, message]]
            if state_changed:
                published.append(conversation_event(conversation, message))
        out = message_out(message).model_dump(mode="json")
        return Ingested(
            result=IngestResult(message=out, conversation_id=conversation.id,
                                conversation_state=conversation.state, duplicate=False),
            events=published,
            ask_bot=conversation.state == ConversationState.BOT and self._bot_enabled,
        )

    async def _open_conversation(
        self, session: AsyncSession, inbound: InboundMessage
    ) -> tuple[Conversation, list[Message], bool]:
        """The resident's open conversation on this channel address, reopened or new if none."""
        address = (Conversation.channel == inbound.channel) & (Conversation.external_id == inbound.external_id)
        open_conversation = await session.scalar(
            select(Conversation)
            .where(address, Conversation.state != ConversationState.CLOSED)
            .with_for_update(of=Conversation)
        )
        if open_conversation is not None:
            return open_conversation, [], False
        now = utcnow()
        last_closed = await session.scalar(
            select(Conversation).where(address).order_by(Conversation.id.desc()).limit(1)
        )
        window = timedelta(seconds=self._settings.reopen_window_seconds)
        if last_closed is not None and last_closed.closed_at and now - last_closed.closed_at <= window:
            # Within the window the thread goes on: back to humans if humans handled it.
            action = "reopen_queue" if last_closed.last_agent_id or not self._bot_enabled else "reopen_bot"
            last_closed.reopen_count += 1
            return last_closed, [convs.transition(session, last_closed, action, actor="resident")], True
        contact = await self._resolve_contact(session, inbound)
        conversation = Conversation(
            channel=inbound.channel,
            external_id=inbound.external_id,
            contact_id=contact.id,
            contact=contact,
            assignee=None,
            state=ConversationState.BOT if self._bot_enabled else ConversationState.QUEUED,
            team_id=self._default_team_id(),
            priority=1 if contact.vip else 0,
            created_at=now,
            updated_at=now,
            bot_at=now if self._bot_enabled else None,
            queued_at=None if self._bot_enabled else now,
            queue_entered_at=None if self._bot_enabled else now,
            reopen_count=0,
        )
        session.add(conversation)
        await session.flush()
        await session.refresh(conversation, ["team"])
        events = []
        if not self._bot_enabled:
            events.append(
                convs.system_event(conversation, "queued", "未配置机器人,会话直接进入人工排队", reason="no_bot")
            )
            session.add(events[-1])
        return conversation, events, True

    @staticmethod
    async def _resolve_contact(session: AsyncSession, inbound: InboundMessage) -> Contact:
        """The resident this channel identity belongs to, created on first contact."""
        identity = await session.scalar(
            select(ContactIdentity).where(
                ContactIdentity.channel == inbound.channel, ContactIdentity.external_id == inbound.external_id
            )
        )
        if identity is not None:
            return identity.contact
        contact = Contact(
            display_name=inbound.display_name or f"访客 {inbound.external_id[-4:]}",
            vip=False,
            blacklisted=False,
            created_at=utcnow(),
        )
        session.add(contact)
        await session.flush()
        session.add(
            ContactIdentity(
                contact_id=contact.id, channel=inbound.channel, external_id=inbound.external_id, created_at=utcnow()
            )
        )
        await session.flush()
        return contact
