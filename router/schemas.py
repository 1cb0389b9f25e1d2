"""Wire shapes of the REST API and the WebSocket frames (see docs/api-contract.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from router.filelinks import file_path
from router.models import Conversation, Message, StaffUser


class ErrorDetail(BaseModel):
    code: str
    message: str
    details: dict[str, Any] | None = None


class ErrorBody(BaseModel):
    error: ErrorDetail


class FromRow(BaseModel):
    """Read from an ORM row's attributes of the same names."""

    model_config = ConfigDict(from_attributes=True)


class AttachmentOut(BaseModel):
    url: str
    name: str
    size: int
    content_type: str
    file_id: str | None = Field(None, description="set for files stored in the hub (fetched at /files/{id})")


class MessageOut(BaseModel):
    id: int
    conversation_id: int
    direction: Literal["in", "out", "internal"]
    author: Literal["resident", "bot", "agent", "system"]
    author_name: str | None
    type: str
    text: str | None
    attachment: AttachmentOut | None
    payload: dict[str, Any] | None
    created_at: datetime
    client_id: str | None
    delivery: str | None
    last_error: str | None = None


class TeamOut(FromRow):
    id: int
    name: str


class UserOut(BaseModel):
    id: int
    username: str
    display_name: str
    role: str
    teams: list[TeamOut]
    department_id: int | None = None


class ContactOut(FromRow):
    id: int
    display_name: str
    vip: bool
    blacklisted: bool


class AgentRef(FromRow):
    id: int
    display_name: str


class ConversationOut(FromRow):
    id: int
    channel: str
    state: str
    team: TeamOut | None
    contact: ContactOut
    assignee: AgentRef | None
    last_message: MessageOut | None = None
    disposition: str | None
    created_at: datetime
    updated_at: datetime
    queued_at: datetime | None
    assigned_at: datetime | None
    closed_at: datetime | None


class ItemsOfConversations(BaseModel):
    items: list[ConversationOut]


class ItemsOfMessages(BaseModel):
    items: list[MessageOut]


class ItemsOfUsers(BaseModel):
    items: list[UserOut]


class ItemsOfTeams(BaseModel):
    items: list[TeamOut]


class StrictBody(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


def user_out(user: StaffUser) -> UserOut:
    return UserOut(
        id=user.id,
        username=user.username,
        display_name=user.display_name,
        role=user.role,
        teams=[TeamOut.model_validate(t) for t in user.teams],
        department_id=user.department_id,
    )


def _attachment_out(attachment: dict[str, Any]) -> AttachmentOut:
    """A stored file is fetched at its one address (messages stored earlier kept a channel's own path)."""
    if attachment.get("file_id"):
        attachment = {**attachment, "url": file_path(attachment["file_id"])}
    return AttachmentOut(**attachment)


def message_out(message: Message) -> MessageOut:
    payload = dict(message.payload or {})
    attachment = payload.pop("attachment", None)
    client_id = message.channel_message_id if message.direction == "in" else None
    return MessageOut(
        id=message.id,
        conversation_id=message.conversation_id,
        direction=message.direction,  # type: ignore[arg-type]
        author=message.author,  # type: ignore[arg-type]
        author_name=message.author_user.display_name if message.author_user is not None else None,
        type=message.type,
        text=message.text,
        attachment=_attachment_out(attachment) if attachment else None,
        payload=payload or None,
        created_at=message.created_at,
        client_id=client_id,
        delivery=message.delivery,
        last_error=message.last_error,
    )


def conversation_out(conversation: Conversation, last_message: Message | None = None) -> ConversationOut:
    out = ConversationOut.model_validate(conversation)
    if last_message is not None:
        out.last_message = message_out(last_message)
    return out


class VisibilityKey(BaseModel):
    """What an event carries so that each subscriber can decide whether its user may see it."""

    conversation_id: int
    channel: str
    external_id: str
    state: str
    team_id: int | None
    assignee_id: int | None
    last_agent_id: int | None
    contact_id: int = Field(...)


# The conversation columns a visibility key is made of: select these instead of whole rows.
KEY_COLUMNS = (
    Conversation.id,
    Conversation.channel,
    Conversation.external_id,
    Conversation.state,
    Conversation.team_id,
    Conversation.assignee_id,
    Conversation.last_agent_id,
    Conversation.contact_id,
)


def visibility_key(conversation: Any) -> dict[str, Any]:
    """From a Conversation, or a row of :data:`KEY_COLUMNS`."""
    return VisibilityKey(
        conversation_id=conversation.id,
        channel=conversation.channel,
        external_id=conversation.external_id,
        state=conversation.state,
        team_id=conversation.team_id,
        assignee_id=conversation.assignee_id,
        last_agent_id=conversation.last_agent_id,
        contact_id=conversation.contact_id,
    ).model_dump()


def message_event(message: Message, conversation: Conversation) -> dict[str, Any]:
    """The bus event for a new message, with what subscribers need to filter it."""
    return {"type": "message", "key": visibility_key(conversation),
            "message": message_out(message).model_dump(mode="json")}


def conversation_event(conversation: Conversation, last_message: Message | None = None) -> dict[str, Any]:
    """The bus event for a conversation whose state, team or assignee changed."""
    return {"type": "conversation", "key": visibility_key(conversation),
            "conversation": conversation_out(conversation, last_message).model_dump(mode="json")}
