"""Tables owned by the router: contacts and their identities, conversations, messages, staff and teams.

Work orders and the knowledge base keep their own tables in their own packages; every change goes
through an Alembic migration in ``router/migrations``.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC timestamps on every backend (SQLite drops the offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime stored; use router.models.utcnow()")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON(none_as_null=True)}


class Role(enum.StrEnum):
    ADMIN = "admin"
    SUPERVISOR = "supervisor"
    EDITOR = "editor"
    AGENT = "agent"
    FIELD_CREW = "field_crew"
    HANDLER = "handler"


class ConversationState(enum.StrEnum):
    BOT = "bot"
    QUEUED = "queued"
    ASSIGNED = "assigned"
    WAITING_RESIDENT = "waiting_resident"
    CLOSED = "closed"


class Direction(enum.StrEnum):
    IN = "in"
    OUT = "out"
    INTERNAL = "internal"


class Author(enum.StrEnum):
    RESIDENT = "resident"
    BOT = "bot"
    AGENT = "agent"
    SYSTEM = "system"


class MessageType(enum.StrEnum):
    TEXT = "text"
    IMAGE = "image"
    VOICE = "voice"
    LOCATION = "location"
    FILE = "file"
    EVENT = "event"
    TEMPLATE = "template"


class Delivery(enum.StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    FAILED = "failed"


user_team = Table(
    "user_team",
    Base.metadata,
    Column("user_id", ForeignKey("staff_user.id", ondelete="CASCADE"), primary_key=True),
    Column("team_id", ForeignKey("team.id", ondelete="CASCADE"), primary_key=True),
)

user_skill = Table(
    "user_skill",
    Base.metadata,
    Column("user_id", ForeignKey("staff_user.id", ondelete="CASCADE"), primary_key=True),
    Column("skill_id", ForeignKey("skill.id", ondelete="CASCADE"), primary_key=True),
)


class RoutingStrategy(enum.StrEnum):
    LEAST_BUSY = "least_busy"
    LONGEST_IDLE = "longest_idle"
    ROUND_ROBIN = "round_robin"


class PhoneKind(enum.StrEnum):
    """What an agent's extension is: a SIP desk phone (UDP), or the softphone in their inbox (WebRTC)."""

    DESK = "desk"
    BROWSER = "browser"


class PresenceState(enum.StrEnum):
    SIGNED_OUT = "signed_out"
    READY = "ready"
    AWAY = "away"
    BUSY = "busy"  # also while on a phone call: a call fills the agent's capacity
    ACW = "acw"  # after-call work, back to ready when ``acw_until`` passes


class Team(Base):
    """A team (skill group) and its queue: how the ACD routes conversations waiting for it."""

    __tablename__ = "team"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    strategy: Mapped[str] = mapped_column(String(20), default=RoutingStrategy.LEAST_BUSY,
                                          server_default=RoutingStrategy.LEAST_BUSY)
    prefer_last_agent: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    bind_region: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    overflow_team_id: Mapped[int | None] = mapped_column(ForeignKey("team.id", ondelete="SET NULL"))
    overflow_after_seconds: Mapped[int | None] = mapped_column(Integer)
    service_level_seconds: Mapped[int] = mapped_column(Integer, default=20, server_default=text("20"))
    rr_cursor: Mapped[int | None] = mapped_column(Integer)  # the agent round robin chose last


class Skill(Base):
    __tablename__ = "skill"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)


class Region(Base):
    __tablename__ = "region"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("region.id"))


class StaffUser(Base):
    """A member of staff: agent, supervisor, editor, field crew, department handler or admin."""

    __tablename__ = "staff_user"
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(20))
    password_hash: Mapped[str] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    max_chats: Mapped[int] = mapped_column(Integer, default=5)
    region_id: Mapped[int | None] = mapped_column(ForeignKey("region.id"))
    department_id: Mapped[int | None] = mapped_column(ForeignKey("department.id", use_alter=True))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_login_at: Mapped[datetime | None]
    # A one-time password (printed for the first admin, set by an admin's reset) must be replaced at sign-in,
    # and stops working at password_expires_at.
    must_change_password: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    password_expires_at: Mapped[datetime | None]
    # The SIP phone (desk phone or softphone) the person takes calls on: its extension, which is also its SIP user
    # name, and the digest Asterisk checks, MD5 of "extension:realm:password" (channels/voice/phones.py). The
    # password itself is shown to the admin once and kept nowhere.
    sip_extension: Mapped[str | None] = mapped_column(String(16), unique=True)
    sip_kind: Mapped[str | None] = mapped_column(String(8))  # PhoneKind: a desk phone or the inbox's softphone
    sip_md5_cred: Mapped[str | None] = mapped_column(String(32))
    teams: Mapped[list[Team]] = relationship(secondary=user_team, lazy="selectin", order_by=Team.id)
    skills: Mapped[list[Skill]] = relationship(secondary=user_skill, lazy="selectin")


class UserSession(Base):
    """A browser sign-in; the cookie carries the random token, the table only its SHA-256."""

    __tablename__ = "user_session"
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("staff_user.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]


class ApiToken(Base):
    """A bearer token for a service (the bot's action server, an importer); stored as SHA-256."""

    __tablename__ = "api_token"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]


class AgentPresence(Base):
    """A staff member's routing state now; every change is also appended to :class:`PresenceLog`."""

    __tablename__ = "agent_presence"
    user_id: Mapped[int] = mapped_column(ForeignKey("staff_user.id", ondelete="CASCADE"), primary_key=True)
    state: Mapped[str] = mapped_column(String(20), default=PresenceState.SIGNED_OUT)
    reason: Mapped[str | None] = mapped_column(String(100))
    since: Mapped[datetime] = mapped_column(default=utcnow)
    acw_until: Mapped[datetime | None]
    seen_at: Mapped[datetime | None]  # last sign of a connected inbox; stale → signed out
    last_assigned_at: Mapped[datetime | None]  # for "longest idle"


class PresenceLog(Base):
    __tablename__ = "presence_log"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("staff_user.id", ondelete="CASCADE"), index=True)
    state: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str | None] = mapped_column(String(100))
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor: Mapped[str | None] = mapped_column(String(100))  # who made the change, when not the agent


class Disposition(Base):
    """What a closed conversation was about (业务咨询, 报修, 投诉, …): picked on closing, counted by reports."""

    __tablename__ = "disposition"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    label: Mapped[str] = mapped_column(String(100))
    position: Mapped[int] = mapped_column(Integer, default=0)
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class CannedReply(Base):
    """A stock answer an agent inserts by its shortcut: everyone's (no team, no owner), a team's or an agent's."""

    __tablename__ = "canned_reply"
    id: Mapped[int] = mapped_column(primary_key=True)
    shortcut: Mapped[str] = mapped_column(String(32))
    text: Mapped[str] = mapped_column(Text)
    team_id: Mapped[int | None] = mapped_column(ForeignKey("team.id", ondelete="CASCADE"), index=True)
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("staff_user.id", ondelete="CASCADE"), index=True)
    created_by: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Contact(Base):
    """One resident, whichever channels they use."""

    __tablename__ = "contact"
    id: Mapped[int] = mapped_column(primary_key=True)
    display_name: Mapped[str] = mapped_column(String(100))
    vip: Mapped[bool] = mapped_column(Boolean, default=False)
    blacklisted: Mapped[bool] = mapped_column(Boolean, default=False)
    region_id: Mapped[int | None] = mapped_column(ForeignKey("region.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    identities: Mapped[list[ContactIdentity]] = relationship(back_populates="contact", lazy="selectin")


PHONE_CHANNELS = frozenset({"sms", "voice"})  # channels that know the resident by their phone number


class ContactIdentity(Base):
    """How a channel knows the resident: WeChat openid, phone number, web visitor id, account number."""

    __tablename__ = "contact_identity"
    __table_args__ = (UniqueConstraint("channel", "external_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contact.id", ondelete="CASCADE"), index=True)
    channel: Mapped[str] = mapped_column(String(32))
    external_id: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    contact: Mapped[Contact] = relationship(back_populates="identities", lazy="joined")


class Conversation(Base):
    """One thread on one channel with one contact; ``state`` follows ``router.conversations``."""

    __tablename__ = "conversation"
    __table_args__ = (
        # At most one open conversation per channel address, whatever races happen between processes.
        Index(
            "uq_conversation_open_address",
            "channel",
            "external_id",
            unique=True,
            postgresql_where=text("state <> 'closed'"),
            sqlite_where=text("state <> 'closed'"),
        ),
        Index("ix_conversation_address", "channel", "external_id", "id"),
        Index("ix_conversation_state_queued", "state", "queued_at"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(32))
    external_id: Mapped[str] = mapped_column(String(128))  # the resident's address on this channel
    contact_id: Mapped[int] = mapped_column(ForeignKey("contact.id"), index=True)
    state: Mapped[str] = mapped_column(String(20))
    team_id: Mapped[int | None] = mapped_column(ForeignKey("team.id"))
    skill_id: Mapped[int | None] = mapped_column(ForeignKey("skill.id"))
    region_id: Mapped[int | None] = mapped_column(ForeignKey("region.id"))
    priority: Mapped[int] = mapped_column(Integer, default=0)
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("staff_user.id"), index=True)
    last_agent_id: Mapped[int | None] = mapped_column(ForeignKey("staff_user.id"))
    disposition: Mapped[str | None] = mapped_column(String(64))
    reopen_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    bot_at: Mapped[datetime | None]
    queued_at: Mapped[datetime | None]
    queue_entered_at: Mapped[datetime | None]  # entered its current team's queue (overflow counts from here)
    assigned_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    last_message_at: Mapped[datetime | None]
    contact: Mapped[Contact] = relationship(lazy="joined")
    team: Mapped[Team | None] = relationship(lazy="joined")
    assignee: Mapped[StaffUser | None] = relationship(foreign_keys=[assignee_id], lazy="joined")


class Message(Base):
    """Every message of a conversation in both directions, plus internal notes and system events.

    Outbound rows double as the send queue: a worker picks rows whose ``delivery`` is ``queued``
    (or ``sending`` with an expired lease) and whose ``next_attempt_at`` has come; each claim writes a new
    ``lease_id``, and only an update naming it may record the send's outcome.
    """

    __tablename__ = "message"
    __table_args__ = (
        # A resident's message is stored once per sender: a client id or MsgId names a message only with it.
        UniqueConstraint("channel", "channel_message_id", "sender"),
        Index("ix_message_outbox", "delivery", "next_attempt_at"),
        Index("ix_message_conversation", "conversation_id", "id"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversation.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(32))
    direction: Mapped[str] = mapped_column(String(10))
    author: Mapped[str] = mapped_column(String(10))
    author_user_id: Mapped[int | None] = mapped_column(ForeignKey("staff_user.id"))
    type: Mapped[str] = mapped_column(String(16))
    text: Mapped[str | None] = mapped_column(Text)
    payload: Mapped[dict[str, Any] | None]
    channel_message_id: Mapped[str | None] = mapped_column(String(128))
    sender: Mapped[str | None] = mapped_column(String(128))  # a resident's message: their address on the channel
    delivery: Mapped[str | None] = mapped_column(String(12))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None]
    lease_until: Mapped[datetime | None]
    lease_id: Mapped[str | None] = mapped_column(String(36))  # the claim holding the row: outcomes must name it
    last_error: Mapped[str | None] = mapped_column(String(500))
    sent_at: Mapped[datetime | None]
    delivered_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    author_user: Mapped[StaffUser | None] = relationship(lazy="joined")


class PendingBotTurn(Base):
    """A resident's message the bot has yet to answer: stored with the message, removed with the answer.

    The process running the turn holds it by ``claim_token`` until ``lease_until``; a lease that passed
    (the process died, or its turn failed) is taken over by the sweep of any process with a new token, and
    only the holder of the current token may record the answer (see :mod:`router.botturns`).
    """

    __tablename__ = "pending_bot_turn"
    message_id: Mapped[int] = mapped_column(ForeignKey("message.id", ondelete="CASCADE"), primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversation.id", ondelete="CASCADE"), index=True)
    claim_token: Mapped[str] = mapped_column(String(32))
    lease_until: Mapped[datetime] = mapped_column(index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=1)  # times the bot was asked (or is being asked)
    text: Mapped[str] = mapped_column(Text)  # what the bot is asked, and with what (router.bot.question_for_bot)
    context: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class StoredFile(Base):
    """An uploaded file; the bytes live under ``var/uploads`` named by their SHA-256."""

    __tablename__ = "stored_file"
    __table_args__ = (Index("ix_stored_file_owner", "owner_channel", "owner_external_id"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    owner_channel: Mapped[str] = mapped_column(String(32))
    owner_external_id: Mapped[str] = mapped_column(String(128))
    name: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class CallSide(enum.StrEnum):
    """Who ended a call."""

    CALLER = "caller"
    HUB = "hub"


class Call(Base):
    """One phone call from the first ring to hang-up; its conversation holds it among the resident's contacts.

    ``ivr_path`` lists the menu nodes the caller went through, in order; ``outcome`` is what the call came to
    (``self_service``, ``voicemail``, ``agent``, ``abandoned``…), set by the IVR or the agents' side.
    """

    __tablename__ = "call"
    __table_args__ = (Index("ix_call_caller_started", "caller", "started_at"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    channel_id: Mapped[str] = mapped_column(String(64), unique=True)  # Asterisk's channel id
    caller: Mapped[str | None] = mapped_column(String(32))  # caller id as received; None when withheld
    did: Mapped[str | None] = mapped_column(String(32))  # the number dialled
    conversation_id: Mapped[int | None] = mapped_column(ForeignKey("conversation.id", ondelete="SET NULL"),
                                                        index=True)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    answered_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None] = mapped_column(index=True)
    hangup_cause: Mapped[int | None] = mapped_column(Integer)  # Q.850 cause code
    hangup_cause_text: Mapped[str | None] = mapped_column(String(64))
    hangup_side: Mapped[str | None] = mapped_column(String(16))  # CallSide
    recording_file_id: Mapped[str | None] = mapped_column(ForeignKey("stored_file.id", ondelete="SET NULL"))
    ivr_path: Mapped[list[Any]] = mapped_column(JSON, default=list)
    outcome: Mapped[str | None] = mapped_column(String(32))
    queued_at: Mapped[datetime | None]  # the caller asked for a person and joined the queue
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("staff_user.id", ondelete="SET NULL"), index=True)
    connected_at: Mapped[datetime | None]  # the agent answered: the caller was put through
    survey_score: Mapped[int | None] = mapped_column(SmallInteger)  # 1-5, keyed by the caller after the agent


class CallEventKind(enum.StrEnum):
    KEY = "key"
    PROMPT = "prompt"
    NODE = "node"
    LOOKUP = "lookup"
    VOICEMAIL = "voicemail"
    ANSWER = "answer"
    HANGUP = "hangup"
    MENU = "menu"  # the menu version the call walks
    WORK_ORDER = "work_order"  # an order filed from the call (a voicemail's)
    TO_AGENT = "to_agent"  # the caller asked for a person and may be put through
    TIMEOUT = "timeout"  # nothing pressed in time at the node
    INVALID = "invalid"  # a key or number the node does not take
    QUEUED = "queued"  # the call waits in a team's queue for an agent
    ANNOUNCE = "announce"  # the caller was told their place in the queue and the expected wait
    RING = "ring"  # the ACD chose an agent: their phone rings
    MISSED = "missed"  # the agent's phone rang out, was busy or is not registered
    CONNECT = "connect"  # the agent answered: caller and agent talk (recorded)
    AGENT_HANGUP = "agent_hangup"  # an agent left the call (the last one: the caller stays for the survey)
    HOLD = "hold"  # the agents stepped aside; the caller hears music
    RESUME = "resume"  # back from hold
    CONSULT = "consult"  # another agent answered, aside with the agents while the caller is on hold
    TRANSFER = "transfer"  # the consulted agent has the caller now; the others left
    CONFERENCE = "conference"  # caller and every agent together
    MONITOR = "monitor"  # a supervisor listens, whispers to the agent, or barges in
    SURVEY = "survey"  # the caller's score (or none given)
    ABANDON = "abandon"  # the caller hung up while waiting for an agent
    DIAL = "dial"  # an agent's call to a resident (or to a number outside, to consult): that phone is rung
    OUTSIDE_HANGUP = "outside_hangup"  # the number outside an agent consulted or transferred to hung up
    REQUEUE = "requeue"  # an agent sent the caller back to a team's queue (a blind transfer)
    RELEASE = "release"  # a supervisor ended the call (强拆)


class CallEvent(Base):
    """Something that happened during a call, in order: a key press (with the menu node it was pressed at),
    a prompt played, a menu node entered, a self-service lookup, a voicemail."""

    __tablename__ = "call_event"
    id: Mapped[int] = mapped_column(primary_key=True)
    call_id: Mapped[int] = mapped_column(ForeignKey("call.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    kind: Mapped[str] = mapped_column(String(16))  # CallEventKind
    node: Mapped[str | None] = mapped_column(String(64))
    key: Mapped[str | None] = mapped_column(String(1))
    detail: Mapped[dict[str, Any] | None]


class CallbackState(enum.StrEnum):
    OPEN = "open"  # waiting for an agent to call
    TAKEN = "taken"  # an agent is calling
    DONE = "done"  # the resident was reached
    UNREACHABLE = "unreachable"  # no answer at the last attempt
    CANCELLED = "cancelled"


ACTIVE_CALLBACK_STATES = (CallbackState.OPEN.value, CallbackState.TAKEN.value)


class CallbackRequest(Base):
    """A resident to be called back: asked for from the web chat or WeChat (router/callbacks.py).

    A contact has at most one active request (open or taken): asking again changes it (another number, another
    time) rather than queueing a second call.
    """

    __tablename__ = "callback_request"
    __table_args__ = (
        Index("uq_callback_request_active_contact", "contact_id", unique=True,
              sqlite_where=text("state IN ('open', 'taken')"), postgresql_where=text("state IN ('open', 'taken')")),
        Index("ix_callback_request_state_created", "state", "created_at"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contact.id", ondelete="CASCADE"))
    conversation_id: Mapped[int | None] = mapped_column(ForeignKey("conversation.id", ondelete="SET NULL"))
    channel: Mapped[str] = mapped_column(String(20))  # where the resident asked
    phone: Mapped[str] = mapped_column(String(20))  # E.164
    preferred_after: Mapped[datetime | None]  # not before; None: as soon as possible
    note: Mapped[str | None] = mapped_column(String(200))
    state: Mapped[str] = mapped_column(String(16), default=CallbackState.OPEN.value)  # CallbackState
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # calls made that no one answered
    taken_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_user.id", ondelete="SET NULL"))
    taken_at: Mapped[datetime | None]
    outcome_note: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    closed_at: Mapped[datetime | None]


class CampaignState(enum.StrEnum):
    DRAFT = "draft"  # set up, nobody called yet
    RUNNING = "running"  # dialling within its call window
    PAUSED = "paused"
    DONE = "done"  # every target has a final result
    CANCELLED = "cancelled"


class TargetState(enum.StrEnum):
    """Where one resident of a campaign stands; all but ``pending`` and ``dialing`` are final."""

    PENDING = "pending"  # to be called (again, after ``next_attempt_at``)
    DIALING = "dialing"  # a call is out to them now
    CONFIRMED = "confirmed"  # answered and pressed the confirmation key
    HEARD = "heard"  # answered and heard the message, pressed nothing
    OPTED_OUT = "opted_out"  # pressed "do not call": on the do-not-call list from then on
    NO_ANSWER = "no_answer"  # rang out at every attempt
    BUSY = "busy"  # busy at every attempt
    FAILED = "failed"  # the number could not be reached (unallocated, rejected, no trunk)
    INTERRUPTED = "interrupted"  # the hub stopped while the call was out: not called again
    SKIPPED = "skipped"  # on the do-not-call list
    CANCELLED = "cancelled"  # the campaign was cancelled before they were called


OPEN_TARGET_STATES = (TargetState.PENDING.value, TargetState.DIALING.value)


class Campaign(Base):
    """An automatic outbound campaign (router/campaigns.py): one recorded message spoken to every target, with a
    key to confirm and one to ask never to be called again."""

    __tablename__ = "campaign"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(16))  # arrears, outage, survey, notice
    message: Mapped[str] = mapped_column(String(500))  # spoken by TTS
    region_id: Mapped[int | None] = mapped_column(ForeignKey("region.id", ondelete="SET NULL"))
    channels: Mapped[int] = mapped_column(Integer)  # calls out at once, at most
    max_attempts: Mapped[int] = mapped_column(Integer)  # per target, counting retries after no answer or busy
    retry_seconds: Mapped[int] = mapped_column(Integer)  # wait before calling a busy or unanswered target again
    ring_seconds: Mapped[int] = mapped_column(Integer)
    call_from: Mapped[str] = mapped_column(String(5))  # HH:MM in the hub's time zone
    call_until: Mapped[str] = mapped_column(String(5))  # HH:MM, exclusive; 24:00 for the end of the day
    state: Mapped[str] = mapped_column(String(16), default=CampaignState.DRAFT.value)  # CampaignState
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_user.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]


class CampaignTarget(Base):
    __tablename__ = "campaign_target"
    __table_args__ = (UniqueConstraint("campaign_id", "phone"),
                      Index("ix_campaign_target_due", "campaign_id", "state", "next_attempt_at"),
                      Index("ix_campaign_target_phone", "phone", "state"))  # an opt-out skips the number everywhere
    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaign.id", ondelete="CASCADE"))
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contact.id", ondelete="SET NULL"))
    phone: Mapped[str] = mapped_column(String(20))  # E.164
    state: Mapped[str] = mapped_column(String(16), default=TargetState.PENDING.value)  # TargetState
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # calls placed
    next_attempt_at: Mapped[datetime | None]  # not before; None: as soon as a channel is free
    call_id: Mapped[int | None] = mapped_column(ForeignKey("call.id", ondelete="SET NULL"))  # the latest call
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class DoNotCall(Base):
    """A number no campaign calls: its owner pressed the opt-out key, or staff put it here."""

    __tablename__ = "do_not_call"
    phone: Mapped[str] = mapped_column(String(20), primary_key=True)  # E.164
    campaign_id: Mapped[int | None] = mapped_column(ForeignKey("campaign.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
