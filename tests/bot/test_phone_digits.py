"""How the bot reads a phone, and the last four digits of one, from what a resident writes."""

from __future__ import annotations

import re

import pytest

from actions.common import phone_in
from actions.queries import phone_last4_in


@pytest.mark.parametrize(("said", "digits"), [
    ("1234", "1234"),
    ("尾号是5678", "5678"),
    ("１２３４", "1234"),  # full-width digits from a Chinese keyboard
    ("13812345678", "5678"),  # the whole mobile number
    ("0512-57001234", "1234"),  # a landline
    ("12 34", "1234"),
])
def test_the_digits_are_found(said: str, digits: str) -> None:
    assert phone_last4_in(said) == digits


@pytest.mark.parametrize("said", ["", "不记得了", "123", "12345", "30005678", "1234 或者 5678"])
def test_no_digits_or_several_candidates_are_not_guessed(said: str) -> None:
    assert phone_last4_in(said) is None


@pytest.mark.parametrize(("said", "phone"), [
    ("13812345678", "13812345678"),
    ("138 1234 5678", "13812345678"),
    ("138-1234-5678", "13812345678"),
    ("138.1234.5678", "13812345678"),
    ("1381234 5678", "13812345678"),
    ("１３８１２３４５６７８", "13812345678"),  # full-width, as a Chinese keyboard types them
    ("１３８－１２３４－５６７８", "13812345678"),
    ("+86 138 1234 5678", "13812345678"),
    ("+8613812345678", "13812345678"),
    ("＋８６ １３８１２３４５６７８", "13812345678"),
    ("0086-13812345678", "13812345678"),
    ("(+86)13812345678", "13812345678"),
    ("我的手机 138 1234 5678,白天都在", "13812345678"),
    ("电话是13812345678谢谢", "13812345678"),
    ("0512-57001234", "0512-57001234"),
    ("051257001234", "0512-57001234"),
    ("0571-8765 4321", "0571-87654321"),
    ("0571 8765 4321", "0571-87654321"),
    ("(021)12345678", "021-12345678"),
    ("（０２１）１２３４５６７８", "021-12345678"),
    ("021 1234 5678", "021-12345678"),
    ("021.1234.5678", "021-12345678"),
    ("010-12345678", "010-12345678"),
    ("0755-2345678", "0755-2345678"),  # a seven-digit local number
    ("+86 571 8765 4321", "0571-87654321"),  # from abroad: the area code without its 0
    ("0086 21 1234 5678", "021-12345678"),
    ("0571-87654321转123", "0571-87654321-123"),  # the extension is kept, as a work order's phone allows
    ("0571-87654321 转 123", "0571-87654321-123"),
    ("0571-8765 4321-123", "0571-87654321-123"),
    ("(0571)87654321 分机 88", "0571-87654321-88"),
    ("0571-87654321 ext. 5", "0571-87654321-5"),
    ("家里座机 0571-87654321,手机 13812345678", "13812345678"),  # a mobile first: the repairer can text it
])
def test_a_phone_is_read_as_residents_type_it(said: str, phone: str) -> None:
    assert phone_in(said) == phone
    assert re.fullmatch(r"\+?[0-9\-]{5,20}", phone)  # what a work order accepts as its contact phone


@pytest.mark.parametrize("said", [
    "", "不告诉你", "1234", "12345", "87654321",  # no area code: the repairer could not call it
    "30005678",  # an account number
    "1381234567", "138123456789", "12812345678",  # one digit short, one too many, no such mobile prefix
    "0571-876", "2026-12-05", "GD20261205-0001", "清源路18号3栋502",
])
def test_what_is_not_a_phone_is_refused(said: str) -> None:
    assert phone_in(said) is None


@pytest.mark.parametrize(("said", "digits"), [
    ("138-1234-5678", "5678"),
    ("+86 138 1234 5678", "5678"),
    ("0571-8765 4321转123", "4321"),  # the number's, not the extension's
    ("(021)12345678", "5678"),
])
def test_the_last_four_digits_are_the_numbers_as_typed(said: str, digits: str) -> None:
    assert phone_last4_in(said) == digits
