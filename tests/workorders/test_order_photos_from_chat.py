"""A resident's photo from the chat becomes a real attachment of the order the bot files (attachment_message_ids)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select, update

from router.models import Conversation, ConversationState, StoredFile
from tests.support.actors import ActionServer, Resident
from tests.support.files import png_bytes, visitor_upload
from workorders.models import WorkOrder
from workorders.service import FILE_OWNER

PDF = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\ntrailer\n<<>>\n%%EOF\n"


async def with_the_bot(running_hub, conversation_id: int) -> None:
    """The conversation as the bot holds it (the hub of these tests runs without one)."""
    async with running_hub.hub.sessions.begin() as session:
        await session.execute(update(Conversation).where(Conversation.id == conversation_id)
                              .values(state=ConversationState.BOT))


async def sends(running_hub, http, resident: Resident, name: str, data: bytes) -> dict[str, Any]:
    status, body = await visitor_upload(http, running_hub.url, resident.token, name, data)
    assert status == 201, body
    return body["message"]


def order_body(conversation_id: int | None, message_ids: list[Any]) -> dict[str, Any]:
    body: dict[str, Any] = {"category": "consultation", "title": "居民报修", "description": "楼道水管漏水,见照片",
                            "source": "bot", "attachment_message_ids": message_ids}
    if conversation_id is not None:
        body["conversation_id"] = conversation_id
    return body


async def orders_and_files(running_hub) -> tuple[int, int]:
    async with running_hub.hub.sessions() as session:
        orders = await session.scalar(select(func.count()).select_from(WorkOrder))
        files = await session.scalar(select(func.count()).select_from(StoredFile)
                                     .where(StoredFile.owner_channel == FILE_OWNER))
    return orders or 0, files or 0


async def test_the_bot_files_an_order_with_the_residents_photo(running_hub, http, crew) -> None:
    resident = await Resident(http, running_hub.url).connect()
    said = await resident.says("楼道水管漏水了,我拍了照片")
    conversation_id = said["conversation_id"]
    photo = png_bytes(12, 9)
    picture = await sends(running_hub, http, resident, "漏水.png", photo)
    second = await sends(running_hub, http, resident, "水表.png", png_bytes(5, 5))
    await with_the_bot(running_hub, conversation_id)
    bot = await ActionServer.of(running_hub, http)

    order = await bot.call("POST", "/api/workorders",
                           order_body(conversation_id, [picture["id"], second["id"], picture["id"]]), expect=201)
    assert [(a["name"], a["content_type"]) for a in order["attachments"]] == [
        ("漏水.png", "image/png"), ("水表.png", "image/png")]  # the repeated id counts once
    attached = [e for e in order["timeline"] if e["action"] == "attach"]
    assert [e["data"]["message_id"] for e in attached] == [picture["id"], second["id"]]
    assert {e["data"]["file_id"] for e in attached} == {a["id"] for a in order["attachments"]}

    # Like a photo uploaded to the order: in its detail, served by the order's own file address.
    detail = await crew["agent"].call("GET", f"/api/workorders/{order['id']}")
    [first, _] = detail["attachments"]
    assert (first["size"], first["url"]) == (len(photo), f"/api/workorders/{order['id']}/files/{first['id']}")
    assert await crew["agent"].fetch(first["url"]) == (200, photo, "image/png")
    assert first["id"] != picture["attachment"]["file_id"]  # the order's own file, not the resident's
    await resident.close()


async def test_attachment_messages_are_checked_strictly(running_hub, http, crew) -> None:
    resident = await Resident(http, running_hub.url).connect()
    text = await resident.says("漏水了")
    conversation_id = text["conversation_id"]
    picture = await sends(running_hub, http, resident, "漏水.png", png_bytes(4, 4))
    document = await sends(running_hub, http, resident, "说明.pdf", PDF)
    neighbour = await Resident(http, running_hub.url).connect()
    await neighbour.says("我家也漏水")
    theirs = await sends(running_hub, http, neighbour, "别人的.png", png_bytes(3, 3))
    await with_the_bot(running_hub, conversation_id)
    bot = await ActionServer.of(running_hub, http)
    before = await orders_and_files(running_hub)

    refused = {
        "without a conversation": order_body(None, [picture["id"]]),
        "another conversation's": order_body(conversation_id, [picture["id"], theirs["id"]]),
        "a text message": order_body(conversation_id, [text["id"]]),
        "not an image": order_body(conversation_id, [document["id"]]),
        "no such message": order_body(conversation_id, [2**31 - 1]),
    }
    for case, body in refused.items():
        error = (await bot.call("POST", "/api/workorders", body, expect=422))["error"]
        assert error["code"] == "invalid_attachment_messages", case
        assert error["message"], case
    fields = (await bot.call("POST", "/api/workorders", refused["another conversation's"], expect=422))["error"]
    assert fields["details"]["fields"]["attachment_message_ids"] == {str(theirs["id"]): "not a message of this "
                                                                                          "conversation"}
    for bad in ([picture["id"]] * 6, [0], ["x"], [1.5], "1"):
        await bot.call("POST", "/api/workorders", order_body(conversation_id, bad), expect=422)
    assert await orders_and_files(running_hub) == before  # nothing filed, nothing stored

    # Who may: the bot only on the conversation it holds; staff only on a conversation they may see.
    for outsider in ("field", "handler"):
        await crew[outsider].call("POST", "/api/workorders", order_body(conversation_id, [picture["id"]]),
                                  expect=403)
    async with running_hub.hub.sessions.begin() as session:
        await session.execute(update(Conversation).where(Conversation.id == conversation_id)
                              .values(state=ConversationState.QUEUED))
    await bot.call("POST", "/api/workorders", order_body(conversation_id, [picture["id"]]), expect=403)
    supervisor = await crew["supervisor"].call("POST", "/api/workorders", order_body(conversation_id, [picture["id"]]),
                                               expect=201)
    assert [a["name"] for a in supervisor["attachments"]] == ["漏水.png"]
    await resident.close()
    await neighbour.close()
