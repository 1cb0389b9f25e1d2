"""Offered choices: a click, a typed title or a number reaches the bot as the button's payload, nothing else does."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import select, text

from channels.base import OutboundMessage
from channels.wechat.messages import TEXT_MAX_BYTES, text_of
from router.bot import answer_for_bot, choice_number, offered_buttons
from router.botturns import _LATEST_BOT_MESSAGE
from router.models import Message
from tests.support.actors import Resident
from tests.support.choices import PLAIN, WHERE
from tests.support.restbot import StandInBot

OFFER = offered_buttons({"buttons": WHERE})


@pytest.mark.parametrize(("typed", "payload"), [
    ("户内", '/inform{"detail":"户内"}'),
    (" 户内。", '/inform{"detail":"户内"}'),
    ("户内!!!", '/inform{"detail":"户内"}'),
    ("戶內", '/inform{"detail":"户内"}'),  # traditional characters
    ("1", '/inform{"detail":"路面"}'),
    ("２", '/inform{"detail":"小区内"}'),  # full-width
    ("二", '/inform{"detail":"小区内"}'),
    ("两", '/inform{"detail":"小区内"}'),
    ("第2个", '/inform{"detail":"小区内"}'),
    ("选2", '/inform{"detail":"小区内"}'),
    ("选择 3", '/inform{"detail":"户内"}'),
    ("2.", '/inform{"detail":"小区内"}'),
    ("3。", '/inform{"detail":"户内"}'),
    ("③", '/inform{"detail":"户内"}'),
])
def test_a_typed_title_or_number_answers_with_the_buttons_payload(typed: str, payload: str) -> None:
    assert answer_for_bot(typed, None, OFFER) == payload


@pytest.mark.parametrize("typed", ["4", "0", "十", "户内漏水了", "2号楼", "我选2", "12345678901", "路"])
def test_other_text_goes_as_it_is(typed: str) -> None:
    assert answer_for_bot(typed, None, OFFER) == typed


def test_numbers_in_their_forms() -> None:
    forms = ["1", "１０", "十一", "十九", "⑳", "第 3 项", "选第2条"]
    assert [choice_number(t) for t in forms] == [1, 10, 11, 19, 20, 3, 2]
    assert [choice_number(t) for t in ["", "2 3", "二十", "第", "2号"]] == [None] * 5


def test_a_click_passes_only_an_offered_payload() -> None:
    assert answer_for_bot("户内", '/inform{"detail":"户内"}', OFFER) == '/inform{"detail":"户内"}'
    # A payload that was not offered: the words go, by the title they match if they do.
    assert answer_for_bot("户内", '/inform{"detail":"水表井"}', OFFER) == '/inform{"detail":"户内"}'
    assert answer_for_bot("重新开始", "/restart", OFFER) == "重新开始"
    assert answer_for_bot("重新开始", "/restart", []) == "重新开始"


@pytest.mark.parametrize(("typed", "asked"), [
    ("/restart", "restart"),
    ("//restart", "restart"),
    (" / /restart", "restart"),
    ('/inform{"detail":"水表井"}', 'inform{"detail":"水表井"}'),
    ("/", "[text]"),
])
def test_a_typed_structured_message_never_reaches_rasas_parser(typed: str, asked: str) -> None:
    assert answer_for_bot(typed, None, OFFER) == asked
    assert answer_for_bot(typed, None, []) == asked


def test_the_offered_payload_typed_goes_as_it_is_and_a_button_without_payload_says_its_title() -> None:
    assert answer_for_bot('/inform{"detail":"户内"}', None, OFFER) == '/inform{"detail":"户内"}'
    services = offered_buttons({"buttons": [{"title": "过户", "payload": "我要办理过户"}, {"title": "销户"}]})
    assert answer_for_bot("2", None, services) == "销户"
    assert answer_for_bot("1", None, services) == "我要办理过户"
    assert offered_buttons(None) == offered_buttons({"buttons": "x"}) == offered_buttons({}) == []


def wechat_out(text: str | None, buttons: list[Any]) -> OutboundMessage:
    return OutboundMessage(message_id=1, idempotency_key="k", conversation_id=1, channel="wechat", recipient="o",
                           type="text", author="bot", text=text, payload={"buttons": buttons})


def test_wechat_lists_the_buttons_numbered_in_their_order() -> None:
    listed = "回复数字即可选择:\n1. 路面\n2. 小区内\n3. 户内"
    assert text_of(wechat_out("请问漏水的位置是?", WHERE)) == "请问漏水的位置是?\n" + listed
    assert text_of(wechat_out(None, WHERE[:1])) == "回复数字即可选择:\n1. 路面"
    # Within WeChat's 2048 bytes the list stays whole; the words before it are shortened.
    long = text_of(wechat_out("漏" * 1000, WHERE))
    assert len(long.encode()) <= TEXT_MAX_BYTES
    assert long.endswith("…\n" + listed)
    titled = text_of(wechat_out("请选择", [{"title": "很" * 50, "payload": "x"}]))
    assert titled.endswith("\n1. " + "很" * 29 + "…")
    assert all(choice_number(line.split(".")[0]) == n
               for n, line in enumerate(text_of(wechat_out("?", WHERE)).splitlines()[2:], start=1))


# -- through the hub, with a stand-in bot that records what it is asked ----------------------------




async def turn(resident: Resident, bot: StandInBot, text: str, choice: str | None = None,
               client_id: str | None = None) -> tuple[dict[str, Any], str]:
    """Send a message (a click when ``choice`` is given); the stored message and what the bot was asked."""
    client_id = client_id or str(uuid.uuid4())
    frame: dict[str, Any] = {"type": "message", "client_id": client_id, "text": text}
    if choice is not None:
        frame["choice"] = choice
    asked = len(bot.received)
    await resident.send_raw(frame)
    stored = (await resident.expect(lambda f: f["type"] == "message" and f["message"]["client_id"] == client_id))
    await resident.hears("bot")
    await bot.wait_asked(asked + 1)
    return stored["message"], bot.received[asked]["message"]


async def test_answers_to_the_latest_offer_reach_the_bot_as_its_payloads(choices_hub, bot, http) -> None:
    resident = await Resident(http, choices_hub.url).connect()
    assert (await turn(resident, bot, "2"))[1] == "2"  # no offer yet
    assert (await turn(resident, bot, "第3个"))[1] == '/inform{"detail":"户内"}'
    assert (await turn(resident, bot, "小区内。"))[1] == '/inform{"detail":"小区内"}'

    message, asked = await turn(resident, bot, "户内", choice='/inform{"detail":"户内"}')
    assert asked == '/inform{"detail":"户内"}'
    assert (message["text"], message["payload"]) == ("户内", {"choice": '/inform{"detail":"户内"}'})
    async with choices_hub.hub.sessions() as session:
        kept = await session.get(Message, message["id"])
        assert kept is not None and (kept.text, kept.payload) == ("户内", {"choice": '/inform{"detail":"户内"}'})
    assert "choice" not in bot.received[-1]["metadata"]

    assert (await turn(resident, bot, "重新开始", choice="/restart"))[1] == "重新开始"  # not offered
    assert (await turn(resident, bot, "/restart"))[1] == "restart"
    assert (await turn(resident, bot, '/inform{"detail":"水表井"}'))[1] == 'inform{"detail":"水表井"}'

    bot.answer = PLAIN  # the next answer offers nothing: the offer ends with it
    assert (await turn(resident, bot, "1"))[1] == '/inform{"detail":"路面"}'
    assert (await turn(resident, bot, "1"))[1] == "1"
    assert (await turn(resident, bot, "户内"))[1] == "户内"
    assert (await turn(resident, bot, "户内", choice='/inform{"detail":"户内"}'))[1] == "户内"
    assert (await turn(resident, bot, "/restart"))[1] == "restart"
    await resident.close()


async def test_a_click_sent_twice_is_one_message_and_one_turn(choices_hub, bot, http) -> None:
    resident = await Resident(http, choices_hub.url).connect()
    await turn(resident, bot, "漏水了")
    client_id = str(uuid.uuid4())
    message, asked = await turn(resident, bot, "路面", choice='/inform{"detail":"路面"}', client_id=client_id)
    assert asked == '/inform{"detail":"路面"}'
    await resident.send_raw({"type": "message", "client_id": client_id, "text": "路面",
                             "choice": '/inform{"detail":"路面"}'})
    again = await resident.expect(lambda f: f["type"] == "message" and f["message"]["client_id"] == client_id)
    assert again["message"]["id"] == message["id"]
    asked_before = len(bot.received)
    await resident.says("还有吗")
    await bot.wait_asked(asked_before + 1)
    assert len(bot.received) == asked_before + 1  # the repeated click was no second turn
    async with choices_hub.hub.sessions() as session:
        clicks = (await session.scalars(select(Message).where(
            Message.conversation_id == message["conversation_id"], Message.text == "路面"))).all()
    assert len(clicks) == 1
    await resident.close()


@pytest.mark.parametrize("choice", [3, "", "x" * 201, ["/inform"], {"a": 1}])
async def test_a_bad_choice_gets_the_clear_error(running_hub, http, choice: Any) -> None:
    resident = await Resident(http, running_hub.url).connect()
    client_id = str(uuid.uuid4())
    await resident.send_raw({"type": "message", "client_id": client_id, "text": "户内", "choice": choice})
    error = await resident.expect(lambda f: f["type"] == "error")
    assert (error["code"], error["client_id"]) == ("invalid_message", client_id)
    assert "choice" in error["message"]
    await resident.close()


async def test_the_offer_is_read_by_the_messages_conversation_index(running_hub) -> None:
    """One query per turn, on (conversation_id, id) read backwards: however long the conversation, a few rows."""
    engine = running_hub.hub.engine
    query = str(_LATEST_BOT_MESSAGE.params(conversation_id=1).compile(
        dialect=engine.dialect, compile_kwargs={"literal_binds": True}))
    async with engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            await connection.execute(text("SET LOCAL enable_seqscan = off"))  # the test database is tiny
            plan = "\n".join(row[0] for row in await connection.execute(text(f"EXPLAIN {query}")))
        else:
            plan = "\n".join(str(row) for row in await connection.execute(text(f"EXPLAIN QUERY PLAN {query}")))
    assert "ix_message_conversation" in plan, plan
    assert "Sort" not in plan and "TEMP B-TREE" not in plan, plan  # the index gives the order
