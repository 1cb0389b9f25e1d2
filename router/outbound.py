"""The outbound queue: every message to a resident is stored first, then sent by a worker.

A row in ``message`` with a ``delivery`` state is a queue entry. The worker claims due rows by
setting ``sending`` with a lease (``lease_until``) and a fencing token (``lease_id``, new for every
claim), sends them through the channel adapter and records the outcome. The lease is renewed every
third of its length while the batch sends, a send is not started with less than a third of it left
(the rest of the batch is released instead), and an outcome is recorded only by the claim that holds
the row (``WHERE lease_id = ?``): a worker that stalled past its lease cannot overwrite what the
worker that took the rows over recorded.

A process that dies mid-send leaves its rows ``sending``; once the lease expires another worker
(or the same one after a restart) sends them again with the same idempotency key, so a receiver
that de-duplicates on it (the web chat widget does, by message id) shows each message once. A
receiver without such a key (WeChat's customer-service API) may get the send that was in flight
at the death twice: at most one message per conversation, since a conversation's messages go one
after another.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from channels.base import Attachment, ChannelAdapter, ChannelSendError, OutboundMessage
from router.db import log_pass_failure
from router.logs import get_logger
from router.models import Author, Conversation, Delivery, Direction, Message, MessageType, StaffUser, utcnow
from router.phones import normalized_phone
from router.residents import with_survey_link
from router.settings import Settings

log = get_logger(__name__)

DeliveryListener = Callable[[list[int]], Awaitable[None]]


def new_outbound(
    conversation: Conversation,
    *,
    author: Author,
    text: str | None,
    type: MessageType = MessageType.TEXT,
    author_user: StaffUser | None = None,
    payload: dict[str, Any] | None = None,
) -> Message:
    """A message to the resident, queued for the worker (add it to the session and commit)."""
    now = utcnow()
    return Message(
        conversation_id=conversation.id,
        channel=conversation.channel,
        direction=Direction.OUT,
        author=author,
        author_user_id=author_user.id if author_user is not None else None,
        author_user=author_user,
        type=type,
        text=text,
        payload=payload,
        delivery=Delivery.QUEUED,
        attempts=0,
        next_attempt_at=now,
        created_at=now,
    )


TEXTLESS_CHANNELS = frozenset({"voice"})  # no text reaches a resident here
SMS = "sms"


def notice_channel(conversation: Conversation, enabled: Collection[str]) -> str:
    """The channel a written notice to ``conversation``'s resident goes on: its own, or, for a caller (the phone
    carries no text), an SMS to their number while the SMS channel is on."""
    if (conversation.channel in TEXTLESS_CHANNELS and SMS in enabled
            and normalized_phone(conversation.external_id) == conversation.external_id):
        return SMS
    return conversation.channel


def backoff_seconds(attempt: int, base: float, cap: float) -> float:
    """Exponential back-off with full jitter: attempt 1 → up to ``base``, doubling up to ``cap``."""
    return random.uniform(0.5, 1.0) * min(cap, base * 2 ** max(0, attempt - 1))


def provider_key(provider_message_id: str) -> str:
    """How a sent message keeps the platform's id (inbound messages keep theirs bare in the same column)."""
    return f"out:{provider_message_id}"


def to_outbound(message: Message, conversation: Conversation, base_url: str, secret_key: str) -> OutboundMessage:
    """The message as it goes to the resident: with the links only they receive (see :mod:`router.residents`)."""
    payload = dict(message.payload or {})
    attachment = payload.pop("attachment", None)
    text, payload = with_survey_link(message.text, payload, base_url, secret_key)
    return OutboundMessage(
        message_id=message.id,
        idempotency_key=f"shuiwu-{message.id}",
        conversation_id=conversation.id,
        channel=message.channel,
        recipient=conversation.external_id,
        type=message.type,
        author=message.author,
        text=text,
        author_name=message.author_user.display_name if message.author_user is not None else None,
        attachment=Attachment(**attachment) if attachment else None,
        payload=payload,
        created_at=message.created_at,
    )


@dataclass
class Lease:
    """One claim's hold on its rows: the fencing token and when the hold ends, on this process's clock.

    ``deadline`` never lies after the ``lease_until`` stored in the rows: it is taken before that value is.
    """

    id: str
    deadline: float  # time.monotonic()

    def remaining(self) -> float:
        return self.deadline - time.monotonic()


class OutboundWorker:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        adapters: Mapping[str, ChannelAdapter],
        settings: Settings,
        secret_key: str,
        on_change: DeliveryListener,
        batch_size: int = 100,
    ) -> None:
        self._sessions = sessions
        self._adapters = adapters
        self._settings = settings
        self._secret_key = secret_key
        self._on_change = on_change
        self._batch_size = batch_size
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._in_flight: set[asyncio.Task[None]] = set()

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="outbound-worker")

    async def stop(self) -> None:
        """Stop claiming new rows and let the sends under way finish within the grace period."""
        self._stopping = True
        self._wake.set()
        if self._task is None:
            return
        try:
            await asyncio.wait_for(self._task, timeout=self._settings.shutdown_grace_seconds)
        except TimeoutError:
            # The pass under way is cancelled (waiting for the database, say): its rows are claimed again once
            # their lease runs out.
            log.warning("outbound worker stopped before its pass finished",
                        grace_seconds=self._settings.shutdown_grace_seconds)
        except asyncio.CancelledError:
            pass

    async def _run(self) -> None:
        while not self._stopping:
            # Cleared before the pass: a wake() during it (a reply committed meanwhile) is not lost.
            self._wake.clear()
            try:
                claimed = await self.drain_once()
            except Exception as exc:
                log_pass_failure(log, "outbound worker pass failed", exc)
                claimed = 0
            if claimed >= self._batch_size or self._stopping:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._settings.outbound_poll_seconds)

    async def drain_once(self) -> int:
        """Claim one batch of due messages and send it; returns how many rows were claimed."""
        claimed = await self._claim()
        if claimed is None:
            return 0
        lease, batch = claimed
        per_conversation: dict[int, list[tuple[Message, Conversation]]] = defaultdict(list)
        for message, conversation in batch:
            per_conversation[conversation.id].append((message, conversation))
        renewal = asyncio.create_task(self._renew(lease), name="outbound-lease-renewal")
        # Conversations in parallel; the messages of one conversation in order.
        tasks = [asyncio.create_task(self._send_in_order(items, lease)) for items in per_conversation.values()]
        self._in_flight.update(tasks)
        try:
            # Every conversation's sends end before the renewal stops, even when one of them failed.
            outcomes = await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            self._in_flight.difference_update(tasks)
            renewal.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewal
        await self._on_change([m.id for m, _ in batch])
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
        return len(batch)

    async def _claim(self) -> tuple[Lease, list[tuple[Message, Conversation]]] | None:
        seconds = self._settings.outbound_lease_seconds
        lease = Lease(id=str(uuid.uuid4()), deadline=time.monotonic() + seconds)
        now = utcnow()
        due = or_(
            and_(Message.delivery == Delivery.QUEUED, Message.next_attempt_at <= now),
            and_(Message.delivery == Delivery.SENDING, Message.lease_until < now),
        )
        async with self._sessions.begin() as session:
            ids = list(
                await session.scalars(
                    select(Message.id)
                    .where(due, Message.direction == Direction.OUT)
                    .order_by(Message.id)
                    .limit(self._batch_size)
                    .with_for_update(skip_locked=True)
                )
            )
            if not ids:
                return None
            await session.execute(
                update(Message)
                .where(Message.id.in_(ids))
                .values(
                    delivery=Delivery.SENDING,
                    lease_id=lease.id,
                    lease_until=now + timedelta(seconds=seconds),
                    attempts=Message.attempts + 1,
                )
            )
            rows = await session.execute(
                select(Message, Conversation)
                .join(Conversation, Conversation.id == Message.conversation_id)
                .where(Message.id.in_(ids))
                .order_by(Message.id)
            )
            return lease, [(m, c) for m, c in rows.unique()]

    async def _renew(self, lease: Lease) -> None:
        """Extend the lease every third of its length until the batch is done (cancelled then)."""
        seconds = self._settings.outbound_lease_seconds
        while True:
            await asyncio.sleep(seconds / 3)
            deadline = time.monotonic() + seconds
            try:
                async with self._sessions.begin() as session:
                    await session.execute(
                        update(Message)
                        .where(Message.lease_id == lease.id, Message.delivery == Delivery.SENDING)
                        .values(lease_until=utcnow() + timedelta(seconds=seconds))
                    )
            except Exception:
                # Not renewed: the sends stop starting once the old deadline comes near.
                log.warning("outbound lease not renewed", exc_info=True, lease=lease.id)
                continue
            lease.deadline = deadline

    async def _send_in_order(self, items: list[tuple[Message, Conversation]], lease: Lease) -> None:
        for index, (message, conversation) in enumerate(items):
            if lease.remaining() < self._settings.outbound_lease_seconds / 3:
                # Another worker may take the rows over before a send started now would end.
                await self._release([m.id for m, _ in items[index:]], lease)
                return
            await self._send(message, conversation, lease)

    async def _release(self, ids: list[int], lease: Lease) -> None:
        """Give unsent rows back to the queue, due at once, their claim not counted as an attempt."""
        log.warning("outbound lease running out; unsent messages released", lease=lease.id, count=len(ids))
        async with self._sessions.begin() as session:
            await session.execute(
                update(Message)
                .where(Message.id.in_(ids), Message.lease_id == lease.id, Message.delivery == Delivery.SENDING)
                .values(
                    delivery=Delivery.QUEUED,
                    lease_id=None,
                    lease_until=None,
                    next_attempt_at=utcnow(),
                    attempts=Message.attempts - 1,
                )
            )

    async def _send(self, message: Message, conversation: Conversation, lease: Lease) -> None:
        adapter = self._adapters.get(message.channel)
        values: dict[str, Any]
        try:
            if adapter is None:
                raise ChannelSendError(f"channel {message.channel} is not enabled", retryable=False)
            result = await adapter.send(to_outbound(message, conversation, self._settings.base_url, self._secret_key))
            values = {"delivery": result.state.value, "sent_at": utcnow(), "last_error": None}
            if result.provider_message_id:  # the platform's id, by which its delivery reports name the message
                values["channel_message_id"] = provider_key(result.provider_message_id)
        except ChannelSendError as exc:
            values = self._failure(message, exc.reason, exc.retryable)
        except Exception as exc:
            log.exception("channel send crashed", channel=message.channel, message_id=message.id)
            values = self._failure(message, f"{type(exc).__name__}: {exc}", retryable=True)
        await self._record(message.id, lease, values)

    async def _record(self, message_id: int, lease: Lease, values: dict[str, Any]) -> None:
        """Record a send's outcome, if this claim still holds the message (it may have been taken over).

        Retried while the lease lasts: a database that is away for a moment must not leave a finished send
        looking unfinished, to be sent again once the lease expires.
        """
        while True:
            try:
                async with self._sessions.begin() as session:
                    recorded = await session.execute(
                        update(Message)
                        .where(Message.id == message_id, Message.lease_id == lease.id,
                               Message.delivery == Delivery.SENDING)
                        .values(**values, lease_id=None, lease_until=None)
                    )
                break
            except (SQLAlchemyError, OSError):
                if lease.remaining() <= 0:
                    raise
                log.warning("outcome of a send not recorded yet; retrying", exc_info=True, message_id=message_id)
                await asyncio.sleep(min(1.0, lease.remaining() / 3))
        if recorded.rowcount == 0:
            log.warning("outcome of a send not recorded: this claim no longer holds the message",
                        message_id=message_id, lease=lease.id, outcome=values["delivery"])

    def _failure(self, message: Message, reason: str, retryable: bool) -> dict[str, Any]:
        attempts = message.attempts  # already counts this attempt (the claim incremented it)
        if not retryable or attempts >= self._settings.outbound_max_attempts:
            log.warning("outbound message failed", message_id=message.id, attempts=attempts, reason=reason)
            return {"delivery": Delivery.FAILED, "last_error": reason[:500]}
        delay = backoff_seconds(
            attempts, self._settings.outbound_backoff_base_seconds, self._settings.outbound_backoff_max_seconds
        )
        log.info("outbound send will be retried", message_id=message.id, attempts=attempts, retry_in=delay)
        return {
            "delivery": Delivery.QUEUED,
            "last_error": reason[:500],
            "next_attempt_at": utcnow() + timedelta(seconds=delay),
        }
