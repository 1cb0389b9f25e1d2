"""The hub: wires storage, the event bus, the bot bridge, the outbound worker and the channels.

It is the :class:`channels.base.RouterPort` the adapters talk to, and the service layer the HTTP
handlers call. Every public method commits its own transaction, then publishes events.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, text, update

from channels import load_adapter
from channels.base import (
    Attachment,
    ChannelAdapter,
    DeliveryState,
    EventHandler,
    InboundMessage,
    IngestResult,
    Journaled,
    Producer,
    StoredFileInfo,
)
from router import conversations as convs
from router.access import Principal, can_handle, can_view
from router.accounts import ensure_team
from router.acd import presence
from router.acd.calls import CallQueue
from router.acd.distributor import Distributor, PassResult
from router.bot import BotBridge
from router.bot_secrets import rasa_token
from router.botturns import TurnKeeper
from router.callbacks import CallbackList
from router.calls import CallRecords
from router.campaigns import CampaignBook
from router.db import PROVISIONING_LOCK_KEY, create_engine, migrate, session_factory, take_turns
from router.errors import Conflict, Forbidden
from router.events import create_event_bus
from router.filelinks import file_path
from router.inbound import Ingestor, attachment_payload
from router.journal import Journal
from router.logs import get_logger
from router.models import (
    Author,
    Conversation,
    ConversationState,
    Delivery,
    Direction,
    Message,
    MessageType,
    PresenceState,
    StaffUser,
    utcnow,
)
from router.nonces import NonceMemory
from router.outbound import OutboundWorker, new_outbound, provider_key
from router.residents import with_survey_link
from router.retention import RetentionJob
from router.schemas import (
    KEY_COLUMNS,
    ConversationOut,
    MessageOut,
    conversation_event,
    conversation_out,
    message_event,
    message_out,
    visibility_key,
)
from router.settings import Settings, load_secret_key
from router.shared import shared_value
from router.tasks import TaskSet
from router.uploads import FileStore, Upload, UploadQuota

if TYPE_CHECKING:
    from router.api.auditing import Audit

log = get_logger(__name__)

TOPIC = "conversation"  # staff-facing and channel-facing conversation events
LATE_REPORT_DELAYS = (0.5, 1.0, 2.0, 4.0)  # seconds between tries of a delivery report for a send not yet recorded


class Hub:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.engine = create_engine(settings.effective_database_url, settings.database_pool_size)
        self.sessions = session_factory(self.engine)
        self.bus = create_event_bus(settings.redis_url, settings.redis_prefix)
        self.secret_key = load_secret_key(settings)
        self.bot = BotBridge(settings.rasa_url, settings.bot_timeout_seconds,
                             rasa_token(settings.rasa_token, self.secret_key)) if settings.rasa_url else None
        self.files = FileStore(self.sessions, settings.uploads_dir)
        self.calls = CallRecords(self.sessions)
        self.callbacks = CallbackList(self.sessions)
        self.campaigns = CampaignBook(self.sessions)
        self.call_desk = CallQueue(self.sessions, self.callbacks, self._publish_changed,
                                   lambda event: self.bus.publish(presence.TOPIC, event), settings.acw_seconds)
        self.nonces = NonceMemory(self.sessions, settings.effective_database_url, settings.redis_url,
                                  settings.redis_prefix)
        self.retention = RetentionJob(self.sessions, self.files, settings.retention_days,
                                      timedelta(hours=settings.retention_interval_hours))
        self.adapters: dict[str, ChannelAdapter] = {}
        for name in filter(None, (n.strip() for n in settings.channels.split(","))):
            self.adapters[name] = load_adapter(name)(self)
        self.worker = OutboundWorker(self.sessions, self.adapters, settings, self.secret_key, self._publish_delivery)
        self.ingestor = Ingestor(self.engine, self.sessions, settings, bot_enabled=self.bot is not None,
                                 default_team_id=lambda: self.default_team_id)
        self.journal = Journal(settings, self.ingest, self._probe_database)
        self.distributor = Distributor(self.sessions, settings, self._publish_pass)
        self.turns = TurnKeeper(self.sessions, settings, self.bot, self._publish_all, self.worker.wake)
        self.default_team_id: int | None = None
        self.staff_sockets: weakref.WeakSet[Any] = weakref.WeakSet()
        self._late_reports = TaskSet()

    # -- life cycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        self.settings.uploads_dir.mkdir(parents=True, exist_ok=True)
        await migrate(self.engine)
        async with self.sessions.begin() as session:
            await take_turns(session, PROVISIONING_LOCK_KEY)  # another process may be starting too
            self.default_team_id = (await ensure_team(session, self.settings.default_team)).id
        await self.bus.start()
        self.nonces.start()
        self.retention.start()
        if self.bot is not None:
            await self.bot.start()
        self.ingestor.start()
        await self.journal.start()
        for adapter in self.adapters.values():
            await adapter.start()
        self.worker.start()
        self.turns.start()
        self.bus.subscribe(TOPIC, self._maybe_distribute)
        self.bus.subscribe(presence.TOPIC, self._maybe_distribute)
        self.distributor.start()

    async def stop(self) -> None:
        """Finish what is under way (bot turns, sends), then close connections."""
        await self.journal.stop()
        await self.ingestor.stop()
        await self.distributor.stop()
        await self.turns.stop()
        await self.worker.stop()
        await self._late_reports.cancel()
        for adapter in self.adapters.values():
            await adapter.stop()
        if self.bot is not None:
            await self.bot.stop()
        await self.nonces.stop()
        await self.retention.stop()
        await self.bus.stop()
        await self.engine.dispose()

    async def ready(self) -> dict[str, bool]:
        checks = {"database": True, "events": await self.bus.healthy()}
        for name, adapter in self.adapters.items():
            healthy = adapter.healthy()
            if healthy is not None:
                checks[name] = healthy  # a channel's platform out of reach: reported, the hub stays ready
        try:
            await self._probe_database()
        except Exception:
            checks["database"] = False
        return checks

    async def _probe_database(self) -> None:
        async with self.sessions() as session:
            await session.execute(text("SELECT 1"))

    # -- events -------------------------------------------------------------------------------

    def subscribe(self, topic: str, handler: EventHandler) -> Callable[[], None]:
        return self.bus.subscribe(topic, handler)

    async def publish(self, topic: str, event: dict[str, Any]) -> None:
        await self.bus.publish(topic, event)

    async def _publish_message(self, message: Message, conversation: Conversation) -> None:
        await self.bus.publish(TOPIC, message_event(message, conversation))

    async def _publish_conversation(self, conversation: Conversation, last: Message | None = None) -> None:
        await self.bus.publish(TOPIC, conversation_event(conversation, last))

    async def _publish_all(self, conversation: Conversation, messages: list[Message], state_changed: bool) -> None:
        for message in messages:
            await self._publish_message(message, conversation)
        if state_changed:
            visible = [m for m in messages if m.direction != Direction.INTERNAL]
            await self._publish_conversation(conversation, visible[-1] if visible else None)

    async def _maybe_distribute(self, event: dict[str, Any]) -> None:
        """Wake the ACD when a conversation starts waiting or a chat ends (here or in another process),
        or an agent becomes ready."""
        if event["type"] == "conversation":
            if event["conversation"]["state"] in {ConversationState.QUEUED, ConversationState.CLOSED}:
                self.distributor.wake()
        elif event["type"] == "presence" and event["presence"]["state"] == PresenceState.READY:
            self.distributor.wake()

    async def _publish_changed(self, conversation: Conversation, messages: list[Message]) -> None:
        await self._publish_all(conversation, messages, state_changed=True)

    async def _publish_pass(self, result: PassResult) -> None:
        moved = result.overflowed + result.assigned
        if moved:
            async with self.sessions() as session:
                last = await convs.last_messages(session, [c.id for c, _ in moved])
            for conversation, event in moved:
                await self._publish_message(event, conversation)
                await self._publish_conversation(conversation, last.get(conversation.id))
        for event in result.presence_events:
            await self.bus.publish(presence.TOPIC, event)

    async def _publish_delivery(self, message_ids: list[int]) -> None:
        if not message_ids:
            return
        async with self.sessions() as session:
            rows = (await session.execute(
                select(Message.id.label("message_id"), Message.delivery, Message.last_error, *KEY_COLUMNS)
                .join(Conversation, Conversation.id == Message.conversation_id)
                .where(Message.id.in_(message_ids))
            )).all()
        for row in rows:
            await self.bus.publish(TOPIC, {"type": "delivery", "key": visibility_key(row), "message_id": row.message_id,
                                           "delivery": row.delivery, "last_error": row.last_error})

    # -- inbound ------------------------------------------------------------------------------

    async def ingest(self, inbound: InboundMessage) -> IngestResult:
        """Store a resident's message once, in the right conversation, and route it (bot or human)."""
        ingested = await self.ingestor.ingest(inbound)
        for event in ingested.events:
            await self.bus.publish(TOPIC, event)
        if ingested.bot_turn is not None:
            self.turns.begin(ingested.bot_turn)
        return ingested.result

    async def ingest_or_journal(self, inbound: InboundMessage) -> IngestResult | Journaled:
        return await self.journal.accept(inbound)

    # -- staff actions ------------------------------------------------------------------------

    async def _staff_action(self, conversation_id: int, action: Any, audit: Audit | None = None) -> ConversationOut:
        async with self.sessions.begin() as session:
            result = await action(session)
            if audit is not None:
                audit(session)
            events = result if isinstance(result, list) else [result]
            await session.flush()
            conversation = await session.get(Conversation, conversation_id)
            assert conversation is not None
            await session.refresh(conversation, ["assignee", "team"])
            last = (await convs.last_messages(session, [conversation_id])).get(conversation_id)
        await self._publish_all(conversation, events, state_changed=False)
        await self._publish_conversation(conversation, last)
        return conversation_out(conversation, last)

    async def claim(self, principal: Principal, conversation_id: int) -> ConversationOut:
        return await self._staff_action(conversation_id, lambda s: convs.claim(s, principal, conversation_id))

    async def assign(self, principal: Principal, conversation_id: int, agent_id: int,
                     audit: Audit | None = None) -> ConversationOut:
        return await self._staff_action(
            conversation_id, lambda s: convs.assign(s, principal, conversation_id, agent_id), audit
        )

    async def close(self, principal: Principal, conversation_id: int, disposition: str | None) -> ConversationOut:
        return await self._staff_action(
            conversation_id, lambda s: convs.close(s, principal, conversation_id, disposition)
        )

    async def transfer(
        self, principal: Principal, conversation_id: int, agent_id: int | None, team_id: int | None, note: str | None
    ) -> ConversationOut:
        return await self._staff_action(
            conversation_id,
            lambda s: convs.transfer(
                s, principal, conversation_id, agent_id=agent_id, team_id=team_id, note=note
            ),
        )

    @staticmethod
    def _require_replier(principal: Principal, conversation: Conversation) -> None:
        key = visibility_key(conversation)
        if not can_view(principal, key):
            raise Forbidden("无权查看该会话")
        if conversation.state not in {ConversationState.ASSIGNED, ConversationState.WAITING_RESIDENT}:
            raise Conflict("请先接入会话再回复", code="not_assigned", details={"state": conversation.state})
        if not can_handle(principal, key):
            raise Forbidden("只有接待该会话的坐席或班长可以回复")

    async def reply(self, principal: Principal, conversation_id: int, text: str | None,
                    attachment: Attachment | None = None) -> MessageOut:
        """Send the resident a text, or a stored file (an image or a document) from :meth:`send_file`."""
        async with self.sessions.begin() as session:
            conversation = await convs.load_for_update(session, conversation_id)
            self._require_replier(principal, conversation)
            agent = await session.get(StaffUser, principal.user_id) if principal.user_id else None
            if attachment is None:
                message = new_outbound(conversation, author=Author.AGENT, text=text, author_user=agent)
            else:
                image = attachment.content_type.startswith("image/")
                message = new_outbound(conversation, author=Author.AGENT, text=None, author_user=agent,
                                       type=MessageType.IMAGE if image else MessageType.FILE,
                                       payload={"attachment": attachment_payload(attachment)})
            session.add(message)
            convs.stamp_activity(conversation, message.created_at)
            await session.flush()
        await self._publish_message(message, conversation)
        self.worker.wake()
        return message_out(message)

    async def send_file(self, principal: Principal, conversation_id: int, upload: Upload) -> MessageOut:
        """Store an agent's file for the resident (who alone, besides staff, may download it) and send it."""
        async with self.sessions() as session:
            conversation = await convs.load_visible(session, principal, conversation_id)
            self._require_replier(principal, conversation)
            channel, external_id = conversation.channel, conversation.external_id
        attachment = await self.store_file(channel, external_id, upload.name, upload.kind.content_type, upload.data)
        return await self.reply(principal, conversation_id, None, attachment)

    async def add_note(self, principal: Principal, conversation_id: int, text: str) -> MessageOut:
        async with self.sessions.begin() as session:
            conversation, note = await convs.add_note(session, principal, conversation_id, text)
            await session.flush()
        await self._publish_message(note, conversation)
        return message_out(note)

    async def set_presence(
        self, user_id: int, state: PresenceState, reason: str | None, *, actor: str | None = None,
        audit: Audit | None = None,
    ) -> dict[str, Any]:
        """Change a staff member's presence (``actor`` when someone else forces it, ``audit`` recording that);
        returns the new state."""
        async with self.sessions.begin() as session:
            row, event = await presence.change(session, user_id, state, reason=reason, actor=actor,
                                               acw_seconds=self.settings.acw_seconds)
            if audit is not None:
                audit(session)
            current = presence.presence_out(row)
        if event is not None:
            await self.bus.publish(presence.TOPIC, event)
        return current

    async def touch_presence(self, user_id: int) -> None:
        async with self.sessions.begin() as session:
            await presence.touch(session, user_id)

    async def staff_typing(self, principal: Principal, conversation_id: int) -> None:
        async with self.sessions() as session:
            conversation = await session.get(Conversation, conversation_id)
        if conversation is not None and can_handle(principal, visibility_key(conversation)):
            await self.bus.publish(TOPIC, {"type": "typing", "key": visibility_key(conversation), "author": "agent"})

    async def messages_of(self, principal: Principal, conversation_id: int, limit: int) -> list[MessageOut]:
        async with self.sessions() as session:
            await convs.load_visible(session, principal, conversation_id)
            rows = await session.scalars(
                select(Message)
                .where(Message.conversation_id == conversation_id)
                .order_by(Message.id.desc())
                .limit(limit)
            )
            return [message_out(m) for m in reversed(list(rows.unique()))]

    # -- RouterPort for channels ----------------------------------------------------------------

    async def report_delivery(
        self, channel: str, external_id: str, message_ids: list[int], state: DeliveryState
    ) -> None:
        if not message_ids:
            return
        async with self.sessions.begin() as session:
            owned = select(Conversation.id).where(
                Conversation.channel == channel, Conversation.external_id == external_id
            )
            result = await session.execute(
                update(Message)
                .where(
                    Message.id.in_(message_ids),
                    Message.direction == Direction.OUT,
                    Message.conversation_id.in_(owned),
                    Message.delivery.in_([Delivery.QUEUED, Delivery.SENDING, Delivery.SENT]),
                )
                .values(delivery=state.value, delivered_at=utcnow(), lease_until=None)
                .returning(Message.id)
            )
            changed = list(result.scalars())
        await self._publish_delivery(changed)

    async def report_provider_status(self, channel: str, provider_message_id: str, status: str) -> None:
        if await self._apply_provider_status(channel, provider_message_id, status):
            return
        # A provider may report a send before the send's outcome (with the provider's id) is recorded here:
        # the report is tried again for a few seconds in the background, the provider having been answered.
        self._late_reports.spawn(self._apply_provider_status_later(channel, provider_message_id, status))

    async def _apply_provider_status_later(self, channel: str, provider_message_id: str, status: str) -> None:
        for delay in LATE_REPORT_DELAYS:
            await asyncio.sleep(delay)
            if await self._apply_provider_status(channel, provider_message_id, status):
                return
        log.info("delivery report for an unknown message", channel=channel)

    async def _apply_provider_status(self, channel: str, provider_message_id: str, status: str) -> bool:
        failed = status != "success"
        async with self.sessions.begin() as session:
            changed = list(await session.scalars(
                update(Message)
                .where(Message.channel == channel, Message.channel_message_id == provider_key(provider_message_id),
                       Message.direction == Direction.OUT)
                .values(delivery=Delivery.FAILED if failed else Delivery.DELIVERED,
                        delivered_at=None if failed else utcnow(), last_error=status[:500] if failed else None)
                .returning(Message.id)
            ))
        await self._publish_delivery(changed)
        return bool(changed)

    async def shared_value(self, key: str, produce: Producer, *, margin: timedelta,
                           stale: str | None = None) -> tuple[str, datetime]:
        return await shared_value(self.sessions, key, produce, margin=margin, stale=stale)

    async def first_use(self, key: str, lifetime: timedelta) -> bool:
        return await self.nonces.first_use(key, lifetime)

    async def history(
        self, channel: str, external_id: str, limit: int = 100
    ) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
        async with self.sessions() as session:
            conversation = await session.scalar(
                select(Conversation)
                .where(Conversation.channel == channel, Conversation.external_id == external_id)
                .order_by(Conversation.id.desc())
                .limit(1)
            )
            if conversation is None:
                return None, []
            rows = await session.scalars(
                select(Message)
                .where(Message.conversation_id == conversation.id, Message.direction != Direction.INTERNAL)
                .order_by(Message.id.desc())
                .limit(limit)
            )
            messages = [self._as_resident_reads(message_out(m).model_dump(mode="json"))
                        for m in reversed(list(rows.unique()))]
            return conversation_out(conversation).model_dump(mode="json"), messages

    def _as_resident_reads(self, message: dict[str, Any]) -> dict[str, Any]:
        """A message of the resident's history, with the links only they receive (their survey's)."""
        if not (message["payload"] or {}).get("survey"):
            return message
        text, payload = with_survey_link(message["text"], message["payload"], self.settings.base_url,
                                         self.secret_key)
        return {**message, "text": text, "payload": payload}

    async def resident_typing(self, channel: str, external_id: str) -> None:
        async with self.sessions() as session:
            conversation = await session.scalar(
                select(Conversation).where(
                    Conversation.channel == channel,
                    Conversation.external_id == external_id,
                    Conversation.state != ConversationState.CLOSED,
                )
            )
        if conversation is not None:
            await self.bus.publish(
                TOPIC, {"type": "typing", "key": visibility_key(conversation), "author": "resident"}
            )

    async def store_file(
        self, channel: str, external_id: str, name: str, content_type: str, data: bytes, *,
        from_resident: bool = False,
    ) -> Attachment:
        quota = UploadQuota(self.settings.upload_files_per_day, self.settings.upload_megabytes_per_day) \
            if from_resident else None
        stored = await self.files.store(channel, external_id, name, content_type, data, quota)
        return Attachment(url=file_path(stored.file_id), name=name, size=len(data),
                          content_type=content_type, file_id=stored.file_id)

    async def open_file(self, file_id: str) -> tuple[StoredFileInfo, Path] | None:
        return await self.files.open(file_id)
