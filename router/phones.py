"""Phone numbers in one form (E.164, ``+86…`` for mainland China), so that a resident who texts and calls from
one number is one contact whatever form each channel reports the number in."""

from __future__ import annotations

import re

from router.errors import Invalid

_NOT_DIGITS = re.compile(r"[\s\-()]")


def normalized_phone(number: str) -> str | None:
    """``number`` as E.164, reading it as a mainland Chinese number where it has no country code; None for what
    is no phone number of a person (a short service number, letters, withheld)."""
    number = _NOT_DIGITS.sub("", number.strip())
    plus = number.startswith("+")
    digits = number[1:] if plus else number
    if not digits.isdigit() or not digits.isascii():
        return None
    if plus or digits.startswith("00"):
        digits = digits if plus else digits[2:]
        return f"+{digits}" if 8 <= len(digits) <= 15 else None
    if len(digits) == 13 and digits.startswith("861"):  # country code without "+" before a mobile number
        return f"+{digits}"
    if len(digits) == 11 and digits.startswith("1"):  # a mobile number
        return f"+86{digits}"
    if len(digits) == 12 and digits.startswith("01"):  # a mobile number with the trunk prefix of another area
        return f"+86{digits[1:]}"
    if 10 <= len(digits) <= 12 and digits.startswith("0"):  # a fixed line with its area code
        return f"+86{digits[1:]}"
    return None


def required_phone(number: str, field: str = "phone") -> str:
    """:func:`normalized_phone`, or a 422 naming ``field`` when ``number`` is not a person's phone."""
    normalized = normalized_phone(number)
    if normalized is None:
        raise Invalid("请填写正确的手机号或带区号的固定电话", code="bad_phone", details={"fields": {field: "invalid"}})
    return normalized

