"""Money, dates, counts and numbers read out as a hotline says them, in Mandarin and English."""

from __future__ import annotations

from datetime import date, time
from decimal import Decimal

import pytest

from channels.voice.speech import clock, count, day, digits, money, zh_number


@pytest.mark.parametrize(("amount", "zh", "en"), [
    ("123.45", "一百二十三元四角五分", "one hundred twenty-three yuan forty-five fen"),
    ("123.45 元", "一百二十三元四角五分", "one hundred twenty-three yuan forty-five fen"),
    (Decimal("100.05"), "一百元零五分", "one hundred yuan five fen"),
    (0, "零元", "zero yuan"),
    ("0.50", "五角", "fifty fen"),
    ("1002.30", "一千零二元三角", "one thousand two yuan thirty fen"),
    ("15", "十五元", "fifteen yuan"),
    ("-3.2", "负三元二角", "minus three yuan twenty fen"),
    ("12.345", "十二元三角五分", "twelve yuan thirty-five fen"),  # rounded to the fen
])
def test_money_is_read_in_yuan_jiao_and_fen(amount: object, zh: str, en: str) -> None:
    assert money(amount, "zh") == zh  # type: ignore[arg-type]
    assert money(amount, "en") == en  # type: ignore[arg-type]


def test_money_refuses_what_is_not_an_amount() -> None:
    with pytest.raises(ValueError, match="not an amount"):
        money("twelve", "zh")


@pytest.mark.parametrize(("n", "words"), [
    (0, "零"), (10, "十"), (110, "一百一十"), (1002, "一千零二"), (10000, "一万"), (100005, "十万零五"),
    (100001000, "一亿零一千"), (123456789, "一亿二千三百四十五万六千七百八十九"),
])
def test_chinese_numbers_read_zeros_once_and_ten_without_one(n: int, words: str) -> None:
    assert zh_number(n) == words


def test_account_and_order_numbers_are_read_digit_by_digit_with_yao_for_one() -> None:
    assert digits("31002346", "zh") == "三幺零零二三四六"
    assert digits("31002346", "en") == "three one zero zero two three four six"
    assert digits("GD20261206-0001", "zh") == "G D 二零二六幺二零六零零零幺"
    assert digits("GD1", "en") == "G D one"


def test_dates_times_and_counts() -> None:
    assert day(date(2026, 12, 6), "zh") == "二零二六年十二月六日"
    assert day(date(2026, 12, 6), "en") == "December 6, 2026"
    assert clock(time(15, 30), "zh") == "十五点三十分"
    assert clock(time(8, 5), "zh") == "八点零五分"
    assert clock(time(2, 0), "zh") == "两点"
    assert clock(time(15, 30), "en") == "3:30 PM" and clock(time(0, 0), "en") == "12 AM"
    assert count(2, "张", "zh") == "两张" and count(12, "张", "zh") == "十二张"
    assert count(1, "bill", "en") == "one bill" and count(3, "bill", "en") == "three bills"
