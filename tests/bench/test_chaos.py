"""The chaos benchmark's count: what it calls lost, duplicated and answered, on rows made up for the purpose."""

from __future__ import annotations

from typing import Any

from bench.chaos import Chat, tally
from router.botturns import HANDOFF_NOTICE


def row(address: str, direction: str, author: str, text: str, delivery: str | None = None,
        event: str | None = None) -> dict[str, Any]:
    return {"channel": "webchat", "external_id": address, "direction": direction, "author": author, "text": text,
            "delivery": delivery, "event": event}


def test_lost_duplicated_out_of_order_and_answered_are_told_apart() -> None:
    chat = Chat("w1", address="v1", sent=[1, 2, 3, 4, 5], confirmed={1, 2, 3, 5}, received=4)
    rows = [
        row("v1", "in", "resident", "停水了 #w1.1"),
        row("v1", "out", "bot", "请稍候", "delivered"),
        row("v1", "out", "bot", "请稍候", "delivered"),  # the turn ran twice
        row("v1", "in", "resident", "停水了 #w1.3"),  # stored before 2, and nothing answered it
        row("v1", "in", "resident", "停水了 #w1.2"),
        row("v1", "in", "resident", "停水了 #w1.2"),  # stored twice; the hand-off answers it
        row("v1", "internal", "system", "转人工:机器人不可用:timeout", event="handoff"),
        row("v1", "out", "system", HANDOFF_NOTICE, "sent"),
        row("v1", "in", "resident", "停水了 #w1.5"),  # already with people
        row("v1", "in", "resident", "与本次无关 #w9.1"),  # no resident of the run sent this
    ]
    web = tally([(chat, None)], rows)["webchat"]
    assert (web.sent, web.confirmed, web.once, web.missing, web.missing_confirmed) == (5, 4, 3, 1, 0)
    assert web.duplicated == 1
    assert web.out_of_order == 2  # both copies of 2 came after 3
    assert (web.by_bot, web.by_people, web.unanswered) == (1, 2, 1)
    assert web.duplicated_answers == 1
    assert (web.answers_stored, web.answers_marked_sent, web.answers_received) == (3, 3, 4)
    assert web.handoffs == {"机器人不可用": 1}


def test_a_message_the_bot_never_took_up_is_unanswered() -> None:
    chat = Chat("w1", address="v1", sent=[1, 2], confirmed={1, 2})
    rows = [row("v1", "in", "resident", "你好 #w1.1"), row("v1", "out", "bot", "您好", "sent"),
            row("v1", "in", "resident", "阶梯水价 #w1.2")]
    web = tally([(chat, None)], rows)["webchat"]
    assert (web.by_bot, web.by_people, web.unanswered) == (1, 0, 1)
