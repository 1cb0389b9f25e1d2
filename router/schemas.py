"""Wire shapes of the REST API and the WebSocket frames (see docs/api-contract.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from router.models import Conversation, Message, StaffUser, Team


class ErrorDetail(BaseModel):
    code: str
    message: str
    details: dict[str, Any] | None = None


class ErrorBody(BaseModel):
    error: ErrorDetail


class AttachmentOut(BaseModel):
    url: str
    name: str
    size: int
    content_type: str


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


class TeamOut(BaseModel):
    id: int
    name: str


class UserOut(BaseModel):
    id: int
    username: str
    display_name: str
    role: str
    teams: list[TeamOut]


class ContactOut(BaseModel):
    id: int
    display_name: str
    vip: bool
    blacklisted: bool


class AgentRef(BaseModel):
    id: int
    display_name: str


class ConversationOut(BaseModel):
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


def team_out(team: Team | None) -> TeamOut | None:
    return TeamOut(id=team.id, name=team.name) if team is not None else None


def user_out(user: StaffUser) -> UserOut:
    return UserOut(
        id=user.id,
        username=user.username,
        display_name=user.display_name,
        role=user.role,
        teams=[TeamOut(id=t.id, name=t.name) for t in user.teams],
    )


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
        attachment=AttachmentOut(**attachment) if attachment else None,
        payload=payload or None,
        created_at=message.created_at,
        client_id=client_id,
        delivery=message.delivery,
        last_error=message.last_error,
    )


def conversation_out(conversation: Conversation, last_message: Message | None = None) -> ConversationOut:
    contact = conversation.contact
    assignee = conversation.assignee
    return ConversationOut(
        id=conversation.id,
        channel=conversation.channel,
        state=conversation.state,
        team=team_out(conversation.team),
        contact=ContactOut(
            id=contact.id, display_name=contact.display_name, vip=contact.vip, blacklisted=contact.blacklisted
        ),
        assignee=AgentRef(id=assignee.id, display_name=assignee.display_name) if assignee else None,
        last_message=message_out(last_message) if last_message is not None else None,
        disposition=conversation.disposition,
        created_at=conversation.created_at,
        updated_at=conversation.updated_at,
        queued_at=conversation.queued_at,
        assigned_at=conversation.assigned_at,
        closed_at=conversation.closed_at,
    )


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


def visibility_key(conversation: Conversation) -> dict[str, Any]:
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
