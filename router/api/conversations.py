"""Agent API over conversations: list by state, read, claim, assign, reply (text or a file), note, close,
transfer."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, model_validator
from sqlalchemy import select

from router import conversations as convs
from router.access import OVERSEER_ROLES, STAFF_ROLES
from router.api import api
from router.api.auditing import audit
from router.api.spec import HUB, MAX_ID, Call
from router.models import Team
from router.schemas import (
    ConversationOut,
    ItemsOfConversations,
    ItemsOfMessages,
    ItemsOfTeams,
    MessageOut,
    StrictBody,
    conversation_out,
)
from router.uploads import read_upload

StateName = Literal["bot", "queued", "assigned", "waiting_resident", "closed"]
CONVERSATION = "/api/conversations/{conversation_id:\\d+}"


class ListQuery(BaseModel):
    state: StateName | None = None
    mine: bool = False
    limit: int = Field(50, ge=1, le=200)
    before_id: int | None = Field(None, ge=1, le=MAX_ID)


class MessagesQuery(BaseModel):
    limit: int = Field(200, ge=1, le=1000)


class ReplyBody(StrictBody):
    text: str = Field(min_length=1, max_length=2000)


class AssignBody(StrictBody):
    agent_id: int = Field(ge=1, le=MAX_ID)


class CloseBody(StrictBody):
    disposition: str | None = Field(None, max_length=64)


class TransferBody(StrictBody):
    agent_id: int | None = Field(None, ge=1, le=MAX_ID)
    team_id: int | None = Field(None, ge=1, le=MAX_ID)
    note: str | None = Field(None, max_length=500)

    @model_validator(mode="after")
    def one_target(self) -> TransferBody:
        if (self.agent_id is None) == (self.team_id is None):
            raise ValueError("give exactly one of agent_id and team_id")
        return self


@api.endpoint("GET", "/api/conversations", summary="Conversations the caller may see", roles=STAFF_ROLES,
              query=ListQuery, response=ItemsOfConversations, tag="conversations")
async def list_conversations(call: Call) -> ItemsOfConversations:
    query: ListQuery = call.query
    states = [query.state] if query.state else ["bot", "queued", "assigned", "waiting_resident"]
    async with call.request.app[HUB].sessions() as session:
        rows = await convs.list_visible(
            session, call.user, states=states, mine=query.mine, limit=query.limit, before_id=query.before_id
        )
        return ItemsOfConversations(items=[conversation_out(c, last) for c, last in rows])


@api.endpoint("GET", CONVERSATION, summary="One conversation", roles=STAFF_ROLES, response=ConversationOut,
              tag="conversations")
async def get_conversation(call: Call) -> ConversationOut:
    conversation_id = call.path["conversation_id"]
    async with call.request.app[HUB].sessions() as session:
        conversation = await convs.load_visible(session, call.user, conversation_id)
        last = (await convs.last_messages(session, [conversation_id])).get(conversation_id)
        return conversation_out(conversation, last)


@api.endpoint("GET", CONVERSATION + "/messages", summary="Messages, notes and events of a conversation",
              roles=STAFF_ROLES, query=MessagesQuery, response=ItemsOfMessages, tag="conversations")
async def list_messages(call: Call) -> ItemsOfMessages:
    hub = call.request.app[HUB]
    return ItemsOfMessages(items=await hub.messages_of(call.user, call.path["conversation_id"], call.query.limit))


@api.endpoint("POST", CONVERSATION + "/claim", summary="Take a queued conversation", roles=STAFF_ROLES,
              response=ConversationOut, tag="conversations", errors=(409,))
async def claim_conversation(call: Call) -> ConversationOut:
    return await call.request.app[HUB].claim(call.user, call.path["conversation_id"])


@api.endpoint("POST", CONVERSATION + "/assign", summary="Assign to an agent", roles=OVERSEER_ROLES,
              body=AssignBody, response=ConversationOut, tag="conversations", errors=(409,))
async def assign_conversation(call: Call) -> ConversationOut:
    conversation_id, agent_id = call.path["conversation_id"], call.body.agent_id
    action = "conversation.takeover" if agent_id == call.user.user_id else "conversation.assign"
    return await call.request.app[HUB].assign(call.user, conversation_id, agent_id,
                                              audit(call, action, "conversation", conversation_id, agent_id=agent_id))


@api.endpoint("POST", CONVERSATION + "/messages", summary="Reply to the resident", roles=STAFF_ROLES,
              body=ReplyBody, response=MessageOut, status=201, tag="conversations", errors=(409,))
async def reply_to_resident(call: Call) -> MessageOut:
    return await call.request.app[HUB].reply(call.user, call.path["conversation_id"], call.body.text)


@api.endpoint("POST", CONVERSATION + "/attachments", summary="Send the resident an image or a document "
              "(multipart field `file`)", roles=STAFF_ROLES, upload=True, response=MessageOut, status=201,
              tag="conversations", errors=(409,))
async def send_attachment(call: Call) -> MessageOut:
    hub = call.request.app[HUB]
    async with hub.sessions() as session:  # 403/404 before reading a large body
        await convs.load_visible(session, call.user, call.path["conversation_id"])
    upload = await read_upload(call.request, hub.settings.upload_max_bytes)
    return await hub.send_file(call.user, call.path["conversation_id"], upload)


@api.endpoint("POST", CONVERSATION + "/notes", summary="Add an internal note (a supervisor's whisper to the agent)",
              roles=STAFF_ROLES, body=ReplyBody, response=MessageOut, status=201, tag="conversations")
async def add_note(call: Call) -> MessageOut:
    return await call.request.app[HUB].add_note(call.user, call.path["conversation_id"], call.body.text)


@api.endpoint("POST", CONVERSATION + "/close", summary="Close with a disposition", roles=STAFF_ROLES,
              body=CloseBody, response=ConversationOut, tag="conversations", errors=(409,))
async def close_conversation(call: Call) -> ConversationOut:
    return await call.request.app[HUB].close(call.user, call.path["conversation_id"], call.body.disposition)


@api.endpoint("POST", CONVERSATION + "/transfer", summary="Transfer to an agent or a team", roles=STAFF_ROLES,
              body=TransferBody, response=ConversationOut, tag="conversations", errors=(409,))
async def transfer_conversation(call: Call) -> ConversationOut:
    body: TransferBody = call.body
    return await call.request.app[HUB].transfer(
        call.user, call.path["conversation_id"], body.agent_id, body.team_id, body.note
    )


@api.endpoint("GET", "/api/teams", summary="Teams (skill groups)", roles=STAFF_ROLES, response=ItemsOfTeams,
              tag="conversations")
async def list_teams(call: Call) -> ItemsOfTeams:
    async with call.request.app[HUB].sessions() as session:
        teams = await session.scalars(select(Team).order_by(Team.id))
        return ItemsOfTeams(items=[{"id": t.id, "name": t.name} for t in teams])
