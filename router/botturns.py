"""Bot turns that are not lost: every resident message for the bot is answered, or handed to people, once.

A message the bot should answer is stored together with a :class:`~router.models.PendingBotTurn` (the
question, a claim token and a lease), in the same transaction. The process that stored it runs the turn at
once; the bot's answer is recorded, and the pending turn removed, in one transaction that succeeds only while
the claim token is still the turn's (fencing): a process that lost its claim cannot add a second answer.

Should the turn not finish (the process is killed or stops past its grace period, the database fails as the
answer is written), its lease runs out and the sweep of any process claims it with a new token and asks the bot
again; after ``HUB_BOT_TURN_MAX_ATTEMPTS`` the conversation goes to the human queue with a note for the agent.
A bot that is down or gives no answer hands the resident to people at once, as before.

As a turn starts, the buttons of the conversation's latest bot message are read (one query on the messages'
``(conversation_id, id)`` index, in the transaction that renews the lease): the turns of a conversation run one
at a time, so that message is the bot's last word before this one, the offer the resident answers. A click,
a typed title or a number then goes to the bot as the button's payload (:func:`router.bot.answer_for_bot`).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from router import conversations as convs
from router.bot import CHOICE, BotBridge, BotReply, BotTurn, BotUnavailable, answer_for_bot, offered_buttons
from router.db import log_pass_failure
from router.errors import NotFound
from router.logs import get_logger
from router.models import (
    Author,
    Conversation,
    ConversationState,
    Direction,
    Message,
    MessageType,
    PendingBotTurn,
    utcnow,
)
from router.outbound import new_outbound
from router.settings import Settings

log = get_logger(__name__)

HANDOFF_NOTICE = "正在为您转接人工客服,请稍候。"
SWEEP_BATCH = 100

# What the conversation's latest bot message offers (its payload): the index (conversation_id, id), read backwards.
_LATEST_BOT_MESSAGE = (
    select(Message.payload)
    .where(Message.conversation_id == bindparam("conversation_id"), Message.author == Author.BOT)
    .order_by(Message.id.desc())
    .limit(1)
)

Publisher = Callable[[Conversation, list[Message], bool], Awaitable[None]]


class KeyedLock:
    """One asyncio lock per key, dropped when nobody holds or waits for it (keys come and go)."""

    def __init__(self) -> None:
        self._locks: dict[int, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: int) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    def __len__(self) -> int:
        return len(self._locks)


@dataclass(frozen=True, slots=True)
class Claim:
    """A pending turn as its current holder knows it."""

    message_id: int
    conversation_id: int
    token: str
    text: str
    context: dict[str, Any]
    attempts: int


def new_claim_token() -> str:
    return secrets.token_hex(16)


def first_claim(message_id: int, conversation_id: int, text: str, context: dict[str, Any]) -> Claim:
    """The claim of the process that stores the message, on its turn's first attempt."""
    return Claim(message_id=message_id, conversation_id=conversation_id, token=new_claim_token(), text=text,
                 context=context, attempts=1)


def pending_row(claim: Claim, lease_seconds: float, now: datetime) -> dict[str, Any]:
    """The :class:`PendingBotTurn` row that keeps ``claim`` until the turn is over."""
    return {"message_id": claim.message_id, "conversation_id": claim.conversation_id, "claim_token": claim.token,
            "lease_until": now + timedelta(seconds=lease_seconds), "attempts": claim.attempts, "text": claim.text,
            "context": claim.context, "created_at": now}


class TurnKeeper:
    """Runs bot turns one at a time per conversation, and sweeps up the turns nobody finished."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], settings: Settings, bot: BotBridge | None,
                 publish: Publisher, wake_outbound: Callable[[], None]) -> None:
        self._sessions = sessions
        self._settings = settings
        self._bot = bot
        self._publish = publish
        self._wake_outbound = wake_outbound
        self._lease = timedelta(seconds=settings.bot_turn_lease_seconds)
        self._turns = KeyedLock()  # one bot turn at a time per conversation, in arrival order
        self._running: dict[asyncio.Task[None], list[Claim]] = {}  # turns under way, each task's in order
        self._sweeper: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="bot-turn-sweep")

    async def stop(self) -> None:
        """Let the turns under way finish within the grace period; give up the leases of the others at once."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        if not self._running:
            return
        await asyncio.wait(list(self._running), timeout=self._settings.shutdown_grace_seconds)
        unfinished = {task: claims for task, claims in self._running.items() if not task.done()}
        if not unfinished:
            return
        for task in unfinished:
            task.cancel()
        await asyncio.wait(list(unfinished))
        log.warning("bot turns unfinished at shutdown; released for another process", count=len(unfinished))
        with contextlib.suppress(Exception):  # otherwise their leases run out
            await self._release([claim for claims in unfinished.values() for claim in claims])

    def begin(self, claim: Claim) -> None:
        """Run a claimed turn in the background."""
        self._spawn([claim])

    def _spawn(self, claims: list[Claim]) -> None:
        task = asyncio.create_task(self._run_in_order(claims))
        self._running[task] = claims
        task.add_done_callback(self._running.pop)

    async def _run_in_order(self, claims: list[Claim]) -> None:
        for claim in claims:
            try:
                await self.run(claim)
            except Exception:
                # Its lease runs out and the sweep takes it up again (the database failed, most likely).
                log.exception("bot turn failed; it will be taken up again", message_id=claim.message_id,
                              conversation_id=claim.conversation_id)

    async def run(self, claim: Claim) -> None:
        """Ask the bot about one resident message and record its answer; on failure hand the resident to people."""
        async with self._turns.hold(claim.conversation_id):
            offered = await self._renew(claim)
            if offered is None:
                return  # answered meanwhile, or taken over by another process
            if claim.attempts > self._settings.bot_turn_max_attempts:
                log.warning("bot turn failed too often; handing off", conversation_id=claim.conversation_id,
                            attempts=claim.attempts - 1)
                await self._hand_off(claim, team=None, reason=f"机器人{claim.attempts - 1}次未能作答")
                return
            if self._bot is None:
                await self._hand_off(claim, team=None, reason="机器人未配置")
                return
            context = dict(claim.context)
            choice = context.pop(CHOICE, None)
            text = answer_for_bot(claim.text, choice if isinstance(choice, str) else None, offered)
            try:
                turn = await self._bot.ask(str(claim.conversation_id), text, context)
            except BotUnavailable as exc:
                log.warning("bot unavailable; handing off", conversation_id=claim.conversation_id, error=str(exc))
                await self._hand_off(claim, team=None, reason=f"机器人不可用:{exc}")
                return
            if not turn.replies and turn.handoff is None:
                # Rasa answers nothing when one of its actions failed (the action server is down, for one):
                # a resident left without an answer is trapped, so a person takes over.
                log.warning("bot gave no answer; handing off", conversation_id=claim.conversation_id)
                await self._hand_off(claim, team=None, reason="机器人没有回答")
                return
            await self._answer(claim, turn)

    # -- recording the outcome, fenced by the claim token ---------------------------------------

    async def _renew(self, claim: Claim) -> list[tuple[str, str]] | None:
        """Extend the lease as the turn starts (it may have waited behind the conversation's earlier turns).

        Returns the buttons the conversation's latest bot message offers, or None if the claim is lost.
        """
        async with self._sessions.begin() as session:
            renewed = await session.execute(
                update(PendingBotTurn)
                .where(PendingBotTurn.message_id == claim.message_id, PendingBotTurn.claim_token == claim.token)
                .values(lease_until=utcnow() + self._lease))
            if renewed.rowcount != 1:
                return None
            latest = await session.scalar(_LATEST_BOT_MESSAGE, {"conversation_id": claim.conversation_id})
            return offered_buttons(latest)

    @staticmethod
    async def _finish(session: AsyncSession, claim: Claim) -> Conversation | None:
        """Remove the pending turn if this claim still holds it; the conversation, locked, if it is the bot's."""
        removed = await session.execute(
            delete(PendingBotTurn)
            .where(PendingBotTurn.message_id == claim.message_id, PendingBotTurn.claim_token == claim.token))
        if removed.rowcount != 1:
            log.info("bot turn taken over by another process; its answer is dropped", message_id=claim.message_id)
            return None
        try:
            conversation = await convs.load_for_update(session, claim.conversation_id)
        except NotFound:
            return None
        # A person may have taken over while the bot was thinking: its answer is dropped.
        return conversation if conversation.state == ConversationState.BOT else None

    async def _answer(self, claim: Claim, turn: BotTurn) -> None:
        async with self._sessions.begin() as session:
            conversation = await self._finish(session, claim)
            if conversation is None:
                return
            replies = [_bot_message(conversation, reply) for reply in turn.replies]
            session.add_all(replies)
            handoff = []
            if turn.handoff is not None:
                handoff = await _handoff(session, conversation, team=turn.handoff.team, reason=turn.handoff.reason,
                                         note=turn.handoff.note)
            await session.flush()
        await self._publish(conversation, replies, False)
        if handoff:
            await self._publish(conversation, handoff, True)
        self._wake_outbound()

    async def _hand_off(self, claim: Claim, *, team: str | None, reason: str) -> None:
        async with self._sessions.begin() as session:
            conversation = await self._finish(session, claim)
            if conversation is None:
                return
            messages = await _handoff(session, conversation, team=team, reason=reason)
            await session.flush()
        await self._publish(conversation, messages, True)
        self._wake_outbound()

    async def _release(self, claims: list[Claim]) -> None:
        async with self._sessions.begin() as session:
            for claim in claims:
                await session.execute(
                    update(PendingBotTurn)
                    .where(PendingBotTurn.message_id == claim.message_id, PendingBotTurn.claim_token == claim.token)
                    .values(lease_until=utcnow()))

    # -- the sweep ---------------------------------------------------------------------------------

    async def _sweep_forever(self) -> None:
        while True:
            try:
                await self.sweep_once()
            except Exception as exc:
                log_pass_failure(log, "bot turn sweep failed", exc)
            await asyncio.sleep(self._settings.bot_turn_sweep_seconds)

    async def sweep_once(self) -> int:
        """Claim the pending turns whose lease has passed, with new tokens, and run them; returns how many."""
        now = utcnow()
        async with self._sessions.begin() as session:
            rows = list(await session.scalars(
                select(PendingBotTurn)
                .where(PendingBotTurn.lease_until < now)
                .order_by(PendingBotTurn.message_id)
                .limit(SWEEP_BATCH)
                .with_for_update(skip_locked=True)))
            for row in rows:
                row.claim_token = new_claim_token()
                row.lease_until = now + self._lease
                row.attempts += 1
            claims = [Claim(message_id=row.message_id, conversation_id=row.conversation_id, token=row.claim_token,
                            text=row.text, context=row.context, attempts=row.attempts) for row in rows]
        per_conversation: defaultdict[int, list[Claim]] = defaultdict(list)
        for claim in claims:
            per_conversation[claim.conversation_id].append(claim)
        for items in per_conversation.values():
            log.info("bot turns taken up again", conversation_id=items[0].conversation_id, count=len(items),
                     attempts=max(c.attempts for c in items))
            self._spawn(items)
        return len(claims)


async def _handoff(session: AsyncSession, conversation: Conversation, *, team: str | None,
                   reason: str, note: str | None = None) -> list[Message]:
    """Queue a bot conversation for people (in ``team`` if the bot named a known one) and tell the resident;
    the bot's ``note`` (what it collected) stays in the conversation as an internal note for the agent."""
    if not await convs.queue_in_team_named(session, conversation, team):
        log.warning("bot asked for an unknown team; using the default", team=team)
    event = convs.transition(session, conversation, "handoff", actor="bot", reason=reason)
    messages = [event]
    if note:
        summary = Message(conversation_id=conversation.id, channel=conversation.channel,
                          direction=Direction.INTERNAL, author=Author.BOT, author_user=None, type=MessageType.TEXT,
                          text=note,
                          payload={"kind": "bot_summary"}, created_at=utcnow())
        session.add(summary)
        messages.append(summary)
    notice = new_outbound(conversation, author=Author.SYSTEM, text=HANDOFF_NOTICE)
    session.add(notice)
    return [*messages, notice]


def _bot_message(conversation: Conversation, reply: BotReply) -> Message:
    payload: dict[str, Any] = {}
    if reply.buttons:
        payload["buttons"] = reply.buttons
    if reply.custom:
        payload["custom"] = reply.custom
    if reply.image_url:
        payload["attachment"] = {"url": reply.image_url, "name": "image", "size": 0, "content_type": "image/*"}
    return new_outbound(
        conversation,
        author=Author.BOT,
        text=reply.text,
        type=MessageType.IMAGE if reply.image_url and not reply.text else MessageType.TEXT,
        payload=payload or None,
    )
