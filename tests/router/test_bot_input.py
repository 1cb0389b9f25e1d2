"""What the bot is asked for what residents type: traditional characters, full-width forms, emoji, '！！！'."""

from __future__ import annotations

import pytest

from channels.base import InboundMessage
from router.bot import question_for_bot
from router.botinput import normalise_for_bot


@pytest.mark.parametrize(("said", "asked"), [
    ("我家停水了嗎", "我家停水了吗"),
    ("水錶井漏水", "水表井漏水"),
    ("帳單查詢", "账单查询"),  # OpenCC's 帐 as the bot's examples write it
    ("請問自來水費怎麼繳", "请问自来水费怎么缴"),
    ("臺北路的水管爆了", "台北路的水管爆了"),
])
def test_traditional_characters_become_simplified(said: str, asked: str) -> None:
    assert normalise_for_bot(said) == asked


@pytest.mark.parametrize("said", ["我家停水了吗", "乾元路88号门口漏水", "水表坏了,后面的阀门也在滴水", "皇后路理发店"])
def test_simplified_text_is_left_as_it_is(said: str) -> None:
    assert normalise_for_bot(said) == said


@pytest.mark.parametrize(("said", "asked"), [
    ("我的电话是１３８１２３４５６７８", "我的电话是13812345678"),
    ("电话：０５７１－８７６５ ４３２１", "电话:0571-8765 4321"),
    ("幸福小区３号楼２单元５０２室", "幸福小区3号楼2单元502室"),
    ("户号３０００５６７８欠费多少？", "户号30005678欠费多少?"),
    ("ＧＤ２０２６１２０５－０００１进度", "GD20261205-0001进度"),
    ("ｈｅｌｌｏ　水费", "hello 水费"),  # the ideographic space too
])
def test_full_width_letters_digits_and_punctuation_become_half_width(said: str, asked: str) -> None:
    assert normalise_for_bot(said) == asked


@pytest.mark.parametrize("said", ["我想了解一下……", "我要办理过户、销户", "“阶梯水价”是什么", "《供水条例》在哪看"])
def test_chinese_punctuation_is_kept(said: str) -> None:
    assert normalise_for_bot(said) == said.replace("……", "…")


@pytest.mark.parametrize(("said", "asked"), [
    ("家里没水了😭😭怎么办", "家里没水了 怎么办"),
    ("你好👋", "你好"),
    ("谢谢❤️", "谢谢"),
    ("我家停水了！！！", "我家停水了!"),
    ("怎么还不来修???", "怎么还不来修?"),
    ("水很黄。。。", "水很黄。"),
    ("到底什么时候来水？！？！", "到底什么时候来水?"),
    ("  漏水了   马上来  ", "漏水了 马上来"),
])
def test_emoji_and_runs_of_punctuation_are_dropped(said: str, asked: str) -> None:
    assert normalise_for_bot(said) == asked


@pytest.mark.parametrize("said", ["😀😀😀", "？？？", "！！！！", "。。。", "❤️❤️", "……"])
def test_a_message_of_only_emoji_or_punctuation_goes_as_it_came(said: str) -> None:
    """The bot has learnt these as out of scope and answers them; an empty text would have nothing to classify."""
    assert normalise_for_bot(f" {said} ") == said


def test_the_bot_is_asked_the_normalised_text() -> None:
    said = "我家停水了嗎？？？😭"
    inbound = InboundMessage(channel="webchat", external_id="v", channel_message_id="m1", text=said)
    text, _ = question_for_bot(inbound, 3, {"id": 7, "type": "text", "text": said, "attachment": None})
    assert text == "我家停水了吗?"
