"""Phone numbers in E.164, whatever form a channel reports them in."""

from __future__ import annotations

import pytest

from router.phones import normalized_phone


@pytest.mark.parametrize(("given", "expected"), [
    ("13912345678", "+8613912345678"),
    ("+8613912345678", "+8613912345678"),
    ("8613912345678", "+8613912345678"),
    ("008613912345678", "+8613912345678"),
    ("013912345678", "+8613912345678"),
    ("021-87654321", "+862187654321"),
    ("0512 5766 1234", "+8651257661234"),
    ("+1 (415) 555-0100", "+14155550100"),
    ("12345", None), ("962740", None), ("anonymous", None), ("", None), ("+12", None), ("１３９１２３４５６７８", None),
])
def test_numbers_are_read_as_e164(given: str, expected: str | None) -> None:
    assert normalized_phone(given) == expected
