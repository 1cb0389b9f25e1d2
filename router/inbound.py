"""Storing what residents send: once per sender and channel message id, in the right conversation.

Messages that arrive together are stored together (group commit): one transaction finds the open
conversations of a whole batch, inserts its messages in one statement and stamps the conversations
in another. That is the path nearly every message takes. First messages of residents who have no
conversation (a burst of them follows every main break) are opened together too: one transaction
creates the contacts, conversations and messages of many residents. A message that needs more (a
reopen, a duplicate, a state transition, a blacklisted resident) takes the careful path, one message
at a time with row locks, and so does every message of a batch whose transaction failed.

The de-duplication key includes the sender: a web chat ``client_id`` is chosen by the visitor's
browser and a WeChat MsgId by WeChat, so only with the sender's address do they name one message.
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

from sqlalchemy import bindparam, insert, or_, select, tuple_, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import lazyload

from channels.base import Attachment, InboundMessage, IngestResult
from router import conversations as convs
from router.bot import question_for_bot
from router.botturns import Claim, first_claim, pending_row
from router.db import dialect_insert, unreachable
from router.logs import get_logger
from router.models import (
    PHONE_CHANNELS,
    Author,
    Contact,
    ContactIdentity,
    Conversation,
    ConversationState,
    Direction,
    Message,
    MessageType,
    PendingBotTurn,
    Team,
    utcnow,
)
from router.schemas import KEY_COLUMNS, conversation_event, message_event, message_out, visibility_key
from router.settings import Settings

log = get_logger(__name__)

MAX_BATCH = 500
BLOCKED_DISPOSITION = "blacklisted"  # a conversation opened closed, for a blacklisted resident's messages
# States in which a new message changes nothing but the conversation's activity time.
_PLAIN_STATES = (ConversationState.BOT, ConversationState.QUEUED, ConversationState.ASSIGNED)

# The batch path's statements, built once (their compiled forms are cached).
_LOCK_OPEN_CONVERSATIONS = (
    select(*KEY_COLUMNS)
    .join(Contact, Contact.id == Conversation.contact_id)
    .where(
        tuple_(Conversation.channel, Conversation.external_id).in_(bindparam("addresses", expanding=True)),
        Conversation.state.in_(_PLAIN_STATES),
        Contact.blacklisted.is_(False),  # a blacklisted resident's messages take the careful path, and stop there
    )
    .order_by(Conversation.id)  # every batch locks in the same order: no deadlocks between batches
    .with_for_update(of=Conversation)
)
_STAMP_ACTIVITY = (
    update(Conversation.__table__)
    .where(Conversation.__table__.c.id.in_(bindparam("ids", expanding=True)))
    .values(updated_at=bindparam("now"), last_message_at=bindparam("now"))
)
_INSERTED_COLUMNS = ("conversation_id", "channel", "direction", "author", "type", "text", "payload",
                     "channel_message_id", "sender", "attempts", "created_at")
_MESSAGES = Message.__table__
_INSERT_PENDING_TURNS = insert(PendingBotTurn.__table__)


@functools.cache
def _insert_new_messages(dialect: str) -> Any:
    """INSERT … ON CONFLICT DO NOTHING: a message stored before is skipped, not an error."""
    insert = dialect_insert(dialect)
    return (
        insert(_MESSAGES)
        .on_conflict_do_nothing(index_elements=[_MESSAGES.c.channel, _MESSAGES.c.channel_message_id,
                                                _MESSAGES.c.sender])
        .returning(_MESSAGES.c.id, _MESSAGES.c.channel, _MESSAGES.c.sender, _MESSAGES.c.channel_message_id)
    )


@dataclass(slots=True)
class Ingested:
    """A stored message, the events to publish about it, and the bot's turn to answer it (stored with it)."""

    result: IngestResult
    events: list[dict[str, Any]] = field(default_factory=list)
    bot_turn: Claim | None = None


@dataclass(slots=True)
class _Pending:
    inbound: InboundMessage
    future: asyncio.Future[Ingested]

    @property
    def address(self) -> tuple[str, str]:
        return self.inbound.channel, self.inbound.external_id

    @property
    def key(self) -> tuple[str, str, str]:
        """What names the message: channel, sender, and the id the channel or the sender gave it."""
        return self.inbound.channel, self.inbound.external_id, self.inbound.channel_message_id


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
        sender=inbound.external_id,
        attempts=0,
        created_at=now,
    )


def _queued_without_bot(conversation: Conversation) -> Message:
    return convs.system_event(conversation, "queued", "未配置机器人,会话直接进入人工排队", reason="no_bot")


async def _contact_by_phone(session: AsyncSession, phone: str) -> Contact | None:
    """The resident already known by ``phone`` (E.164) on a channel addressed by phone numbers (SMS, calls)."""
    identity = await session.scalar(
        select(ContactIdentity).where(ContactIdentity.channel.in_(PHONE_CHANNELS), ContactIdentity.external_id == phone)
        .order_by(ContactIdentity.id).limit(1))
    return identity.contact if identity is not None else None


def new_contact(inbound: InboundMessage) -> Contact:
    """The resident who writes from ``inbound``'s address for the first time."""
    return Contact(display_name=inbound.display_name or f"访客 {inbound.external_id[-4:]}", vip=False,
                   blacklisted=False, created_at=utcnow())


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
                if unreachable(exc):  # the callers journal these messages (router/journal.py)
                    log.warning("inbound batch not stored: database unreachable", size=len(batch))
                else:
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
        # A resident's first message may open their conversation together with others' (in the background,
        # like the careful path); one whose address has careful work in flight waits for it instead.
        openers = [items[0] for address, items in by_address.items() if address not in self._careful]
        opening = asyncio.create_task(self._open_together(openers)) if openers else None
        opened = {p.address for p in openers}
        # The careful path runs beside the batches, so that a flood of first messages (new conversations)
        # does not hold up messages into open ones; per address it stays in arrival order.
        for address, items in by_address.items():
            if opening is not None and address in opened:
                rest = items[1:]
                task = asyncio.create_task(self._one_by_one(rest, after=opening)) if rest else opening
            else:
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
                result = await self._store_carefully(pending.inbound)
            except Exception as exc:
                if not pending.future.done():
                    pending.future.set_exception(exc)
                continue
            self.stored["one_by_one"] += 1
            if not pending.future.done():  # its caller may have given up waiting; the message is stored all the same
                pending.future.set_result(result)

    async def _open_together(self, openers: list[_Pending]) -> None:
        """Open the conversations of ``openers`` in one transaction; what that cannot do goes one by one."""
        try:
            leftover = await self._open_batch(openers)
        except Exception as exc:
            # Another process opened one of these conversations meanwhile, or the database went away (a refused
            # connect arrives as a bare OSError): each finds its own way, and every caller gets its answer, the
            # error included, so that a message the database could not take is journaled, never left waiting.
            log.info("opening conversations together falls back to one by one", size=len(openers),
                     error=type(exc).__name__)
            leftover = [pending for pending in openers if not pending.future.done()]
        if leftover:
            await asyncio.gather(*(self._one_by_one([pending], after=None) for pending in leftover))

    async def _open_batch(self, openers: list[_Pending]) -> list[_Pending]:
        """Store the first messages of residents without a conversation, opening one for each.

        Returns the messages this does not store: a resident with a conversation open or closed within
        the reopen window, a blacklisted resident, a message stored before. The careful path knows those.
        """
        now = utcnow()
        addresses = [p.address for p in openers]
        window_start = now - timedelta(seconds=self._settings.reopen_window_seconds)
        async with self._sessions.begin() as session:
            busy = {tuple(row) for row in await session.execute(
                select(Conversation.channel, Conversation.external_id).where(
                    tuple_(Conversation.channel, Conversation.external_id).in_(addresses),
                    or_(Conversation.state != ConversationState.CLOSED, Conversation.closed_at >= window_start),
                ))}
            stored = {tuple(row) for row in await session.execute(
                select(Message.channel, Message.sender, Message.channel_message_id).where(
                    tuple_(Message.channel, Message.channel_message_id, Message.sender).in_(
                        [(channel, message_id, sender) for channel, sender, message_id in (p.key for p in openers)]),
                ))}
            contacts = {(channel, external_id): contact for channel, external_id, contact in await session.execute(
                select(ContactIdentity.channel, ContactIdentity.external_id, Contact)
                .join(Contact, Contact.id == ContactIdentity.contact_id)
                .where(tuple_(ContactIdentity.channel, ContactIdentity.external_id).in_(addresses))
                .options(lazyload(Contact.identities))
            )}
            leftover, fresh = [], []
            for pending in openers:
                contact = contacts.get(pending.address)
                known = pending.address in busy or pending.key in stored
                # A new address with a phone number may be a resident known by that number on another channel.
                careful = known or (contact.blacklisted if contact is not None else bool(pending.inbound.phone))
                (leftover if careful else fresh).append(pending)
            if not fresh:
                return leftover
            team_id = self._default_team_id()
            team = await session.get(Team, team_id) if team_id is not None else None
            conversations: list[Conversation] = []
            for pending in fresh:
                contact = contacts.get(pending.address)
                if contact is None:
                    contact = new_contact(pending.inbound)
                    session.add(ContactIdentity(contact=contact, channel=pending.inbound.channel,
                                                external_id=pending.inbound.external_id, created_at=now))
                conversations.append(self._new_conversation(pending.inbound, contact, team, now))
            session.add_all(conversations)
            await session.flush()  # contacts, identities and conversations, each kind in one statement
            messages = [resident_message(p.inbound, c.id, now) for p, c in zip(fresh, conversations, strict=True)]
            queued = [[_queued_without_bot(c)] if c.state == ConversationState.QUEUED else [] for c in conversations]
            session.add_all([*(event for events in queued for event in events), *messages])
            await session.flush()
            outs = [message_out(message).model_dump(mode="json") for message in messages]
            turns = [self._bot_turn(p.inbound, c, out) for p, c, out in zip(fresh, conversations, outs, strict=True)]
            lease = self._settings.bot_turn_lease_seconds
            session.add_all([PendingBotTurn(**pending_row(turn, lease, now)) for turn in turns if turn is not None])
        for index, (pending, conversation, message) in enumerate(zip(fresh, conversations, messages, strict=True)):
            self.stored["opened_together"] += 1
            published = [message_event(m, conversation) for m in [*queued[index], message]]
            published.append(conversation_event(conversation, message))
            pending.future.set_result(Ingested(
                result=IngestResult(message=outs[index], conversation_id=conversation.id,
                                    conversation_state=conversation.state, duplicate=False),
                events=published,
                bot_turn=turns[index],
            ))
        return leftover

    def _self_served(self, inbound: InboundMessage) -> bool:
        """Whether a conversation ``inbound`` opens starts without people: with the bot, or with the channel's own
        self-service when the channel opens it by an event (a call coming in: the IVR serves the caller and hands
        the call to people itself, in the team its menu names)."""
        return self._bot_enabled or inbound.type == MessageType.EVENT

    def _new_conversation(self, inbound: InboundMessage, contact: Contact, team: Team | None,
                          now: datetime) -> Conversation:
        """A resident's new conversation: self-served (:meth:`_self_served`), or queued for people."""
        served = self._self_served(inbound)
        return Conversation(
            channel=inbound.channel,
            external_id=inbound.external_id,
            contact_id=contact.id,
            contact=contact,
            assignee=None,
            state=ConversationState.BOT if served else ConversationState.QUEUED,
            team_id=team.id if team is not None else None,
            team=team,
            priority=1 if contact.vip else 0,
            created_at=now,
            updated_at=now,
            last_message_at=now,
            bot_at=now if served else None,
            queued_at=None if served else now,
            queue_entered_at=None if served else now,
            reopen_count=0,
        )

    async def _store_batch(self, batch: list[_Pending]) -> list[_Pending]:
        """Store the plain messages of ``batch``; returns those that need the careful path."""
        careful: list[_Pending] = []
        first_of_key: dict[tuple[str, str, str], _Pending] = {}
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
            ids = {(row.channel, row.sender, row.channel_message_id): row.id for row in inserted}
            await connection.execute(_STAMP_ACTIVITY, {"ids": [open_rows[p.address].id for p in plain], "now": now})
            outs: dict[tuple[str, str, str], dict[str, Any]] = {}
            turns: dict[tuple[str, str, str], Claim] = {}
            for pending in plain:
                if pending.key in ids:
                    message = messages[pending.key]
                    message.id = ids[pending.key]
                    outs[pending.key] = message_out(message).model_dump(mode="json")
                    turn = self._bot_turn(pending.inbound, open_rows[pending.address], outs[pending.key])
                    if turn is not None:
                        turns[pending.key] = turn
            if turns:
                lease = self._settings.bot_turn_lease_seconds
                await connection.execute(_INSERT_PENDING_TURNS, [pending_row(t, lease, now) for t in turns.values()])
        for pending in plain:
            if pending.key not in ids:
                careful.append(pending)  # stored before, by another process or an earlier batch
                continue
            self.stored["batched"] += 1
            row = open_rows[pending.address]
            out = outs[pending.key]
            pending.future.set_result(Ingested(
                result=IngestResult(message=out, conversation_id=row.id, conversation_state=row.state,
                                    duplicate=False),
                events=[{"type": "message", "key": visibility_key(row), "message": out}],
                bot_turn=turns.get(pending.key),
            ))
        return careful

    def _bot_turn(self, inbound: InboundMessage, conversation: Any, message: dict[str, Any]) -> Claim | None:
        """The bot's turn to answer a stored message, if the bot is handling its conversation.

        A channel's event (a call coming in: the IVR answers the caller, not the bot) asks the bot nothing.
        """
        if not self._bot_enabled or conversation.state != ConversationState.BOT or inbound.type == MessageType.EVENT:
            return None
        text, context = question_for_bot(inbound, conversation.id, message)
        return first_claim(message["id"], conversation.id, text, context)

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
                    Message.channel == inbound.channel, Message.channel_message_id == inbound.channel_message_id,
                    Message.sender == inbound.external_id,
                )
            )
            if existing is not None:
                conversation = await session.get(Conversation, existing.conversation_id)
                assert conversation is not None
                return Ingested(IngestResult(message=message_out(existing).model_dump(mode="json"),
                                             conversation_id=conversation.id,
                                             conversation_state=conversation.state, duplicate=True))
            contact = await self._resolve_contact(session, inbound)
            if contact.blacklisted:
                return await self._store_blocked(session, inbound, contact, now)
            conversation, events, state_changed = await self._open_conversation(session, inbound, contact)
            message = resident_message(inbound, conversation.id, now)
            session.add(message)
            convs.stamp_activity(conversation, now)
            if conversation.state == ConversationState.WAITING_RESIDENT:
                events.append(convs.transition(session, conversation, "resident_replied", actor="resident"))
                state_changed = True
            await session.flush()
            out = message_out(message).model_dump(mode="json")
            turn = self._bot_turn(inbound, conversation, out)
            if turn is not None:
                session.add(PendingBotTurn(**pending_row(turn, self._settings.bot_turn_lease_seconds, now)))
            published = [message_event(m, conversation) for m in [*events, message]]
            if state_changed:
                published.append(conversation_event(conversation, message))
        return Ingested(
            result=IngestResult(message=out, conversation_id=conversation.id,
                                conversation_state=conversation.state, duplicate=False),
            events=published,
            bot_turn=turn,
        )

    async def _store_blocked(self, session: AsyncSession, inbound: InboundMessage, contact: Contact,
                             now: datetime) -> Ingested:
        """Keep a blacklisted resident's message, marked, in a closed conversation: no bot, no queue, no agent.

        Staff find it on the resident's contact page; nothing is published and nothing is answered, so that
        a resident who harasses the hotline gets no reaction to work on.
        """
        conversation = await session.scalar(
            select(Conversation)
            .where(Conversation.channel == inbound.channel, Conversation.external_id == inbound.external_id,
                   Conversation.state == ConversationState.CLOSED)
            .order_by(Conversation.id.desc()).limit(1))
        if conversation is None:
            conversation = Conversation(
                channel=inbound.channel, external_id=inbound.external_id, contact_id=contact.id, contact=contact,
                assignee=None, state=ConversationState.CLOSED, team_id=self._default_team_id(), priority=0,
                created_at=now, updated_at=now, closed_at=now, disposition=BLOCKED_DISPOSITION, reopen_count=0)
            session.add(conversation)
            await session.flush()
        message = resident_message(inbound, conversation.id, now)
        message.payload = {**(message.payload or {}), "blacklisted": True}
        session.add(message)
        convs.stamp_activity(conversation, now)
        await session.flush()
        log.info("message of a blacklisted resident stored, not routed", conversation_id=conversation.id)
        return Ingested(IngestResult(message=message_out(message).model_dump(mode="json"),
                                     conversation_id=conversation.id, conversation_state=conversation.state,
                                     duplicate=False))

    async def _open_conversation(
        self, session: AsyncSession, inbound: InboundMessage, contact: Contact
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
            # Within the window the thread goes on: back to humans if humans handled it (a call still meets its
            # IVR first, which hands it to people).
            served = inbound.type == MessageType.EVENT or (self._bot_enabled and not last_closed.last_agent_id)
            action = "reopen_bot" if served else "reopen_queue"
            last_closed.reopen_count += 1
            return last_closed, [convs.transition(session, last_closed, action, actor="resident")], True
        team_id = self._default_team_id()
        team = await session.get(Team, team_id) if team_id is not None else None
        conversation = self._new_conversation(inbound, contact, team, now)
        session.add(conversation)
        await session.flush()
        events = []
        if conversation.state == ConversationState.QUEUED:
            events.append(_queued_without_bot(conversation))
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
        contact = await _contact_by_phone(session, inbound.phone) if inbound.phone else None
        if contact is None:
            contact = new_contact(inbound)
            session.add(contact)
            await session.flush()
        session.add(
            ContactIdentity(
                contact_id=contact.id, channel=inbound.channel, external_id=inbound.external_id, created_at=utcnow()
            )
        )
        await session.flush()
        return contact
