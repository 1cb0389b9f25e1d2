"""What the bot is asked: a resident's text normalised for classification (the stored message is not touched).

Residents type on phones and in WeChat, and many in traditional characters (Hong Kong, Taiwan and overseas
relatives, older input methods); the bot learnt from simplified examples. So before a message goes to Rasa:

- traditional characters become simplified (OpenCC's ``t2s``, phrase-aware, and leaving simplified text as
  it is), with the few words OpenCC spells with the older form the bot's examples do not use (帳單 → 帐单 →
  账单);
- full-width letters, digits and ASCII punctuation (U+FF01–FF5E) and the ideographic space become half-width,
  so that ``１３８１２３４５６７８`` is a phone number and ``３号楼`` a house number to the model and to the actions.
  Only that block: NFKC as a whole would also rewrite the Chinese punctuation the examples are written with
  (…, and it turns ①, ㎡ or ² into digits that could pass for part of a number);
- emoji are dropped, and a run of punctuation (！！！, ???, 。。。) becomes its first mark;
- a message that is nothing but emoji or punctuation is passed as it came: the bot has learnt those as
  out-of-scope and answers them, where an empty text would have nothing to classify.

The actions read the same text, so a work order the bot files has its description and address in this form;
the conversation, which the order is linked to, keeps what the resident typed.
"""

from __future__ import annotations

import re
from functools import cache

import opencc

FULL_WIDTH = {code: code - 0xFEE0 for code in range(0xFF01, 0xFF5F)} | {0x3000: 0x20}
# OpenCC keeps 帳 as 帐; in a water utility's messages it is 账 (the account), as the bot's examples write it.
OLD_FORMS = {"帐单": "账单", "帐户": "账户", "帐号": "账号", "帐目": "账目", "帐款": "账款", "转帐": "转账",
             "对帐": "对账", "查帐": "查账", "欠帐": "欠账"}
EMOJI = re.compile("[\U0001F000-\U0001FAFF\u2600-\u27BF\u2B00-\u2BFF\u2300-\u23FF\uFE0E\uFE0F\u200D\u20E3]+")
MARKS = "!?.,;:~。、…"  # after the width is normalised: ！ is !, ？ is ?
PUNCTUATION_RUN = re.compile(f"([{MARKS}])[{MARKS}\\s]*[{MARKS}]")
SPACES = re.compile(r"\s+")


@cache
def _to_simplified() -> opencc.OpenCC:
    return opencc.OpenCC("t2s")


def normalise_for_bot(text: str) -> str:
    """``text`` as the bot should read it (see the module's docstring); stripped of surrounding space."""
    plain = _to_simplified().convert(text).translate(FULL_WIDTH)
    for old, new in OLD_FORMS.items():
        plain = plain.replace(old, new)
    plain = EMOJI.sub(" ", plain)
    plain = PUNCTUATION_RUN.sub(r"\1", plain)
    plain = SPACES.sub(" ", plain).strip()
    if not any(ch.isalnum() for ch in plain):
        return text.strip()
    return plain
