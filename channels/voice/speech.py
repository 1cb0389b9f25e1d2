"""Numbers, money, dates, counts and account or order numbers as a hotline says them, ready for TTS.

A TTS engine reads "123.45" as a number and "31002346" as thirty-one million; a caller needs "一百二十三元四角五分"
and "三幺零零二三四六". Every helper takes the language of the call: ``zh`` (Mandarin) or ``en``.
"""

from __future__ import annotations

from datetime import date, time
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Literal

Language = Literal["zh", "en"]
LANGUAGES: tuple[Language, ...] = ("zh", "en")

_ZH_DIGITS = "零一二三四五六七八九"
# Read digit by digit, hotlines say 幺 for 1 (一 and 七 are easily confused on a phone line).
_ZH_SPOKEN_DIGITS = "零幺二三四五六七八九"
_ZH_UNITS = ("", "十", "百", "千")
_ZH_GROUPS = ("", "万", "亿", "万亿")
_EN_ONES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
            "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen")
_EN_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
_EN_GROUPS = ("", " thousand", " million", " billion", " trillion")
_EN_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
              "November", "December")
MAX_NUMBER = 10**16 - 1  # 万亿 is the largest group named here; nothing a hotline reads is larger


def _zh_group(n: int) -> str:
    """0 < n < 10000, with zeros inside read once: 1002 → 一千零二, 1020 → 一千零二十."""
    out, zero = [], False
    for position in range(3, -1, -1):
        digit = n // 10**position % 10
        if digit == 0:
            zero = bool(out)
            continue
        if zero:
            out.append("零")
            zero = False
        out.append(_ZH_DIGITS[digit] + _ZH_UNITS[position])
    return "".join(out)


def zh_number(n: int) -> str:
    """An integer in Chinese words: 10 → 十, 110 → 一百一十, 100005 → 十万零五, -3 → 负三."""
    if n < 0:
        return "负" + zh_number(-n)
    if n > MAX_NUMBER:
        raise ValueError(f"{n} is too large to read out")
    if n == 0:
        return "零"
    groups = []
    while n:
        groups.append(n % 10000)
        n //= 10000
    out: list[str] = []
    skipped = False  # a zero group since the last one read: 一亿零一千
    for index in range(len(groups) - 1, -1, -1):
        group = groups[index]
        if group == 0:
            skipped = bool(out)
            continue
        if out and (group < 1000 or skipped):
            out.append("零")
        out.append(_zh_group(group) + _ZH_GROUPS[index])
        skipped = False
    text = "".join(out)
    return text[1:] if text.startswith("一十") else text  # 十五, not 一十五, at the start only


def en_number(n: int) -> str:
    """An integer in English words: 123 → one hundred twenty-three, -3 → minus three."""
    if n < 0:
        return "minus " + en_number(-n)
    if n > MAX_NUMBER:
        raise ValueError(f"{n} is too large to read out")
    if n < 20:
        return _EN_ONES[n]
    parts = []
    group = 0
    while n:
        n, chunk = divmod(n, 1000)
        if chunk:
            parts.append(_en_hundreds(chunk) + _EN_GROUPS[group])
        group += 1
    return " ".join(reversed(parts))


def _en_hundreds(n: int) -> str:
    hundreds, rest = divmod(n, 100)
    words = [f"{_EN_ONES[hundreds]} hundred"] if hundreds else []
    if rest >= 20:
        tens, ones = divmod(rest, 10)
        words.append(_EN_TENS[tens] + (f"-{_EN_ONES[ones]}" if ones else ""))
    elif rest:
        words.append(_EN_ONES[rest])
    return " ".join(words)


def number(n: int, language: Language) -> str:
    return zh_number(n) if language == "zh" else en_number(n)


def money(amount: Decimal | int | str, language: Language) -> str:
    """An amount of yuan, to the fen: 123.45 → 一百二十三元四角五分 / one hundred twenty-three yuan forty-five fen;
    100.05 → 一百元零五分; 0 → 零元."""
    try:
        value = Decimal(str(amount).replace("元", "").strip()).quantize(Decimal("0.01"), ROUND_HALF_UP)
    except InvalidOperation as exc:
        raise ValueError(f"not an amount: {amount!r}") from exc
    sign = "负" if language == "zh" else "minus "
    prefix, value = (sign, -value) if value < 0 else ("", value)
    yuan = int(value)
    fen_total = int((value - yuan) * 100)
    jiao, fen = divmod(fen_total, 10)
    if language == "en":
        words = [f"{en_number(yuan)} yuan"] if yuan or not fen_total else []
        if fen_total:
            words.append(f"{en_number(fen_total)} fen")
        return prefix + " ".join(words)
    text = f"{zh_number(yuan)}元" if yuan or not fen_total else ""
    if jiao:
        text += f"{_ZH_DIGITS[jiao]}角"
    if fen:
        text += ("零" if yuan and not jiao else "") + f"{_ZH_DIGITS[fen]}分"
    return prefix + text


def digits(value: str, language: Language) -> str:
    """An account, order or phone number read one character at a time: 31002346 → 三幺零零二三四六;
    GD20261206-0001 → G D 二零二六…; separators are left out."""
    spoken = []
    for char in value:
        if char.isdigit() and char.isascii():
            spoken.append(_ZH_SPOKEN_DIGITS[int(char)] if language == "zh" else _EN_ONES[int(char)])
        elif char.isalnum():
            spoken.append(char.upper())
    return " ".join(spoken) if language == "en" else _join_zh(spoken)


def _join_zh(spoken: list[str]) -> str:
    """Chinese digits run together; Latin letters keep a space around them so TTS spells them."""
    out = ""
    for item in spoken:
        if out and (item.isascii() or out[-1].isascii()):
            out += " "
        out += item
    return out


def day(value: date, language: Language) -> str:
    """A date: 2026-12-06 → 二零二六年十二月六日 / December 6, 2026."""
    if language == "en":
        return f"{_EN_MONTHS[value.month - 1]} {value.day}, {value.year}"
    year = "".join(_ZH_DIGITS[int(c)] for c in str(value.year))
    return f"{year}年{zh_number(value.month)}月{zh_number(value.day)}日"


def clock(value: time, language: Language) -> str:
    """A time of day: 15:30 → 十五点三十分, 08:00 → 八点 / 3:30 PM, 8 AM."""
    if language == "en":
        hour = value.hour % 12 or 12
        half = "AM" if value.hour < 12 else "PM"
        return f"{hour}:{value.minute:02d} {half}" if value.minute else f"{hour} {half}"
    hour_text = "两" if value.hour == 2 else zh_number(value.hour)
    if not value.minute:
        return f"{hour_text}点"
    return f"{hour_text}点{'零' if value.minute < 10 else ''}{zh_number(value.minute)}分"


def count(n: int, unit: str, language: Language) -> str:
    """How many of something: (2, 张) → 两张, (12, 张) → 十二张; (1, bill) → one bill, (3, bill) → three bills."""
    if language == "en":
        return f"{en_number(n)} {unit}{'' if n == 1 else 's'}"
    return ("两" if n == 2 else zh_number(n)) + unit
