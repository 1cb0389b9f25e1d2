"""The contract between the router and every channel adapter.

An adapter turns what its platform sends into an :class:`InboundMessage`, hands it to the router
(:class:`RouterPort`), and sends :class:`OutboundMessage` objects back out, reporting how far each
got. Adapters never touch the database; capabilities say what a channel can carry, so callers never
branch on a channel's name (an image becomes a link where a channel has no images).
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

if TYPE_CHECKING:
    from aiohttp import web

    from router.acd.calls import AgentOnPhone, Standing
    from router.callbacks import CallbackList
    from router.campaigns import CampaignBook
    from router.settings import Settings


class Capability(enum.StrEnum):
    TEXT = "text"
    IMAGE = "image"
    FILE = "file"
    VOICE = "voice"
    LOCATION = "location"
    BUTTONS = "buttons"
    TEMPLATE = "template"
    TYPING = "typing"
    READ_RECEIPT = "read_receipt"


@dataclass(frozen=True, slots=True)
class Attachment:
    url: str
    name: str
    size: int
    content_type: str
    file_id: str | None = None


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """What a resident sent, in the hub's terms.

    ``channel_message_id`` is the platform's own id (WeChat MsgId, the widget's client id, an SMS
    id): the router stores a message with the same (channel, id) only once, so platform retries and
    reconnect resends are harmless. ``phone`` is the resident's own number where the channel knows it
    (an SMS sender, a caller id), in E.164 (:func:`router.phones.normalized_phone`): a resident new on a
    channel joins the contact already known by that number on SMS or the phone. A shared location is
    ``type="location"`` with ``payload["location"] = {"lat": float, "lng": float, "label": str}`` (the
    label is the address).
    """

    channel: str
    external_id: str
    channel_message_id: str
    type: str = "text"
    text: str | None = None
    attachment: Attachment | None = None
    payload: dict[str, Any] = field(default_factory=dict)
    display_name: str | None = None
    received_at: datetime | None = None
    phone: str | None = None


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    """One message to send to a resident; ``idempotency_key`` stays the same across retries."""

    message_id: int
    idempotency_key: str
    conversation_id: int
    channel: str
    recipient: str
    type: str
    author: str
    text: str | None = None
    author_name: str | None = None
    attachment: Attachment | None = None
    payload: dict[str, Any] = field(default_factory=dict)
    created_at: datetime | None = None


class DeliveryState(enum.StrEnum):
    SENT = "sent"
    DELIVERED = "delivered"


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    state: DeliveryState = DeliveryState.SENT
    provider_message_id: str | None = None


class ChannelSendError(Exception):
    """A send that failed; ``retryable`` tells the outbound queue whether to try again later."""

    def __init__(self, reason: str, *, retryable: bool = True) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable


@dataclass(frozen=True, slots=True)
class StoredFileInfo:
    file_id: str
    name: str
    content_type: str
    size: int
    owner_channel: str
    owner_external_id: str


EventHandler = Callable[[dict[str, Any]], Awaitable[None]]


Producer = Callable[[], Awaitable[tuple[str, timedelta]]]  # a new shared value and how long it lasts


class SharedValues(Protocol):
    """A value all hub processes share, produced by one of them (an API's access token): see router/shared.py."""

    async def __call__(self, key: str, produce: Producer, *, margin: timedelta,
                       stale: str | None = None) -> tuple[str, datetime]: ...


@dataclass(frozen=True, slots=True)
class IngestResult:
    """The stored message (as the web chat protocol shows it) and where it went."""

    message: dict[str, Any]
    conversation_id: int
    conversation_state: str
    duplicate: bool


@dataclass(frozen=True, slots=True)
class Journaled:
    """A message kept on the hub's disk while its database is unreachable: it is stored, and answered, once
    the database is back (router/journal.py). The channel tells its platform the message was received."""

    channel_message_id: str


@dataclass(frozen=True)
class AgentPhone:
    """An agent's SIP phone: its extension (the SIP user name) and the password digest Asterisk checks."""

    extension: str
    md5_cred: str
    webrtc: bool = False  # the softphone in the agent's inbox: SIP over WebSocket, DTLS-SRTP media


@dataclass(frozen=True)
class OpenCall:
    """A call record not ended yet, as a restarted hub finds it."""

    call_id: int
    conversation_id: int | None  # None until the call's conversation is stored (the database was away)


class CallLog(Protocol):
    """What a voice channel keeps and reads in the hub's database: call records (``call`` and ``call_event``)
    and the agents' phones (router/calls.py)."""

    async def agent_phones(self) -> list[AgentPhone]:
        """The phones of active staff accounts that have an extension."""

    async def open(self, channel_id: str, caller: str | None, did: str | None, started_at: datetime) -> int:
        """A new call record (or the one already open for ``channel_id``); its id."""

    async def update(self, call_id: int, **fields: Any) -> None:
        """Set ``conversation_id``, ``answered_at``, ``recording_file_id`` or ``outcome``."""

    async def event(self, call_id: int, kind: str, *, node: str | None = None, key: str | None = None,
                    detail: dict[str, Any] | None = None, at: datetime | None = None,
                    fields: Mapping[str, Any] | None = None) -> None:
        """Record what happened during the call; a ``node`` event also extends the call's IVR path. ``fields``
        are set on the call's record in the same transaction (as :meth:`update`): a hub stopping between the two
        never leaves a record that says connected without its ``connect`` event, say."""

    async def close(self, call_id: int, *, ended_at: datetime, cause: int | None, cause_text: str | None,
                    side: str) -> bool:
        """End the call record; False when it had been ended already."""

    async def open_calls(self) -> dict[str, OpenCall]:
        """Asterisk channel id → every call record not ended yet."""

    async def talking(self, call_id: int) -> tuple[int, datetime, bool] | None:
        """The agent a call not ended yet was put through to, when, and whether the agents' hang-up is recorded
        (the caller went on to the survey); None before (or without) one."""

    async def waiting(self, call_id: int) -> tuple[datetime, str | None] | None:
        """A call not ended yet that waits in the queue for an agent (not put through): since when it waits, and
        the team it waits for; None otherwise."""

    async def last_node(self, call_id: int) -> str | None:
        """The IVR node the caller entered last (None before the first)."""


class CallDesk(Protocol):
    """What a voice channel asks of the people's side for a caller who wants a person (router/acd/calls.py)."""

    async def agents_on_duty(self, team: str | None = None) -> bool:
        """Whether somebody with a phone is signed in (in ``team`` when given)."""

    async def enqueue(self, conversation_id: int, *, team: str | None) -> None:
        """Queue the call's conversation for ``team``; the ACD assigns it like a chat."""

    async def standing(self, conversation_id: int) -> Standing:
        """The calls ahead of this one and the expected wait."""

    async def assigned_agent(self, conversation_id: int) -> AgentOnPhone | None:
        """The agent (and phone) the ACD gave the call to, or None while it waits."""

    async def agent_phone(self, agent_id: int) -> AgentOnPhone | None:
        """An active staff member's phone (None: no such account, or no phone)."""

    async def hand_over(self, conversation_id: int, agent_id: int) -> None:
        """The call was transferred: its conversation goes to ``agent_id``."""

    async def requeue(self, conversation_id: int, *, team: str) -> None:
        """An agent sent the call to ``team``'s queue: its conversation waits there for the next agent."""

    async def after_call(self, agent_id: int) -> None:
        """The agent's part of a call is over: a ready agent goes to after-call work for its set time."""

    async def ring_missed(self, conversation_id: int, agent_id: int, cause: str) -> None:
        """The agent's phone did not take the call: back to the queue in its place, the agent set away."""

    async def abandon(self, conversation_id: int, *, phone: str | None) -> None:
        """The caller hung up while waiting: close the conversation, put the number on the callback list."""


class RouterPort(Protocol):
    """What the router offers an adapter."""

    settings: Settings
    secret_key: str
    calls: CallLog
    callbacks: CallbackList  # residents who asked to be called back
    call_desk: CallDesk  # callers who asked for a person
    campaigns: CampaignBook  # automatic outbound campaigns

    async def ingest(self, message: InboundMessage) -> IngestResult: ...

    async def ingest_or_journal(self, message: InboundMessage) -> IngestResult | Journaled:
        """:meth:`ingest`, or, while the database is unreachable, keep the message to store it later.

        Raises :class:`router.spool.SpoolFull` when the journal is full too.
        """

    async def report_delivery(
        self, channel: str, external_id: str, message_ids: list[int], state: DeliveryState
    ) -> None: ...

    async def report_provider_status(self, channel: str, provider_message_id: str, status: str) -> None:
        """The platform's late word on a sent message (``success`` or its failure text), by the platform's id."""

    shared_value: SharedValues

    async def first_use(self, key: str, lifetime: timedelta) -> bool:
        """True the first time ``key`` is used within ``lifetime``, in all hub processes (nonces of callbacks)."""

    async def history(self, channel: str, external_id: str, limit: int = 100) -> tuple[
        dict[str, Any] | None, list[dict[str, Any]]
    ]: ...

    async def resident_typing(self, channel: str, external_id: str) -> None: ...

    async def store_file(
        self, channel: str, external_id: str, name: str, content_type: str, data: bytes, *,
        from_resident: bool = False,
    ) -> Attachment:
        """Keep a file; one ``from_resident`` counts against their daily upload quota (or is refused)."""

    async def open_file(self, file_id: str) -> tuple[StoredFileInfo, Path] | None: ...

    def subscribe(self, topic: str, handler: EventHandler) -> Callable[[], None]: ...

    async def publish(self, topic: str, event: dict[str, Any]) -> None: ...


CHOICES_INTRO = "回复数字即可选择:"
CHOICE_TITLE_MAX_CHARS = 30
ELLIPSIS = "…"


def readable_text(message: OutboundMessage, fits: Callable[[str], bool]) -> str:
    """The text a resident reads on a channel of plain text (WeChat, SMS): the words, a file as its link, buttons
    as a numbered list of their titles.

    Such a channel has no buttons: the resident replies with a number (or the title), and the hub gives the bot
    that button's payload (router/bot.py ``answer_for_bot``), so the list keeps the buttons' order. The list is
    kept whole and the words before it are shortened (ending in …) until the text ``fits`` the channel.
    """
    words = message.text or ""
    if message.attachment is not None:
        words = f"{words}\n{message.attachment.name or '附件'}: {message.attachment.url}".strip()
    buttons = message.payload.get("buttons") if message.payload else None
    choices = ""
    if buttons and isinstance(buttons, list):
        lines = [CHOICES_INTRO]
        for number, button in enumerate(buttons, start=1):
            title = str(button.get("title") or "") if isinstance(button, dict) else ""
            if len(title) > CHOICE_TITLE_MAX_CHARS:
                title = title[:CHOICE_TITLE_MAX_CHARS - 1] + ELLIPSIS
            lines.append(f"{number}. {title}")
        choices = "\n".join(lines)
    if not choices:
        return _longest_fitting(words, lambda kept: kept, fits)
    if words and fits(whole := f"{words}\n{choices}"):
        return whole
    if words and fits(f"{ELLIPSIS}\n{choices}"):
        return _longest_fitting(words, lambda kept: f"{kept}\n{choices}", fits)
    return _longest_fitting(choices, lambda kept: kept, fits)


def _longest_fitting(text: str, framed: Callable[[str], str], fits: Callable[[str], bool]) -> str:
    """``framed(text)`` if it fits, or else ``framed`` of the longest start of ``text`` that, with an ellipsis,
    does (a binary search: ``fits`` holds for every shorter start once it holds for one)."""
    if fits(framed(text)):
        return framed(text)
    low, high = 0, len(text) - 1
    while low < high:
        middle = (low + high + 1) // 2
        if fits(framed(text[:middle] + ELLIPSIS)):
            low = middle
        else:
            high = middle - 1
    return framed(text[:low] + ELLIPSIS)


class ChannelAdapter(ABC):
    """Base of every channel; one subclass per folder under ``channels/``."""

    name: ClassVar[str]
    capabilities: ClassVar[frozenset[Capability]]
    # Paths that pages on other sites may call (no cookies; their own tokens): they get CORS headers.
    cross_origin_paths: ClassVar[tuple[str, ...]] = ()

    def __init__(self, router: RouterPort) -> None:
        self.router = router

    @abstractmethod
    def routes(self) -> list[web.RouteDef]:
        """The aiohttp routes through which the platform reaches the hub."""

    @abstractmethod
    def parse(self, raw: Any, external_id: str) -> InboundMessage:
        """Validate one raw inbound payload and turn it into an :class:`InboundMessage`.

        Raises ``ValueError`` with a message fit for the sender when the payload is invalid.
        """

    @abstractmethod
    async def send(self, message: OutboundMessage) -> DeliveryResult:
        """Send one message; raise :class:`ChannelSendError` when it did not go out."""

    def healthy(self) -> bool | None:
        """Whether the platform is reachable now, for ``/readyz``; None for a channel that holds no connection."""
        return None

    async def start(self) -> None:
        """Open long-lived connections; called once the router is ready."""

    async def disconnect(self) -> None:
        """Close client connections as shutdown begins, so that clients reconnect to another process."""

    async def stop(self) -> None:
        """Release what ``start`` opened; called on shutdown after in-flight sends finished."""

    def render_fallback_text(self, message: OutboundMessage) -> str:
        """Text for a message this channel cannot carry natively (e.g. an image as a link)."""
        if message.attachment is not None and message.type not in {c.value for c in self.capabilities}:
            label = message.attachment.name or message.attachment.url
            return f"{message.text or ''}\n{label}: {message.attachment.url}".strip()
        return message.text or ""
