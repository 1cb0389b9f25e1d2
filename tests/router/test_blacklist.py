"""A blacklisted resident's messages are kept but reach no one: no bot, no queue, no agent; unflagged, they do."""

from __future__ import annotations

import aiohttp
import pytest
from sqlalchemy import select

from router.models import Conversation, ConversationState, Message, Role
from tests.support.actors import Resident


async def test_a_blacklisted_residents_messages_are_stored_but_reach_no_agent(running_hub,
                                                                              http: aiohttp.ClientSession) -> None:
    supervisor = await running_hub.staff(Role.SUPERVISOR)  # sees every conversation's events
    resident = await Resident(http, running_hub.url).connect()
    try:
        first = await resident.says("你们的水费算错了")
        await supervisor.sees_message("你们的水费算错了")
        conversation = await supervisor.call("GET", f"/api/conversations/{first['conversation_id']}")
        contact = f"/api/contacts/{conversation['contact']['id']}"

        await supervisor.call("PUT", f"{contact}/flags", {"vip": False, "blacklisted": True})
        closed = await supervisor.call("GET", f"/api/conversations/{first['conversation_id']}")
        assert closed["state"] == "closed"  # out of the queue it was waiting in

        blocked = await resident.says("骚扰信息:不接电话就一直发")  # the resident sees it sent …
        with pytest.raises(AssertionError, match="no matching frame"):  # … and no one on the desk gets it
            await supervisor.sees_message("骚扰信息:不接电话就一直发", timeout=2.0)
        async with running_hub.hub.sessions() as session:
            stored = await session.get(Message, blocked["id"])
            assert stored is not None and stored.payload["blacklisted"] is True
            where = await session.get(Conversation, stored.conversation_id)
            assert where is not None and where.state == ConversationState.CLOSED
            waiting = await session.scalars(select(Conversation).where(
                Conversation.contact_id == conversation["contact"]["id"],
                Conversation.state != ConversationState.CLOSED))
            assert list(waiting.unique()) == []  # nothing for the bot, the queue or the ACD
        view = await supervisor.call("GET", contact)  # looking at the resident, staff find the message
        assert stored.conversation_id in [c["id"] for c in view["conversations"]]
        kept = await supervisor.call("GET", f"/api/conversations/{stored.conversation_id}/messages")
        assert "骚扰信息:不接电话就一直发" in [m["text"] for m in kept["items"]]

        await supervisor.call("PUT", f"{contact}/flags", {"vip": False, "blacklisted": False})
        await resident.says("刚才是我不对,请帮我查一下水费")
        again = await supervisor.sees_message("刚才是我不对,请帮我查一下水费")
        reopened = await supervisor.call("GET", f"/api/conversations/{again['conversation_id']}")
        assert reopened["state"] == "queued"
    finally:
        await resident.close()
        await supervisor.close()
