"""What the network carries: GSM 03.38 or UCS-2, 160/153 and 70/67 to a part, never a character cut in two."""

from __future__ import annotations

import pytest

from channels.base import OutboundMessage
from channels.sms import segments
from channels.sms.adapter import SmsAdapter


def joined(message: segments.Segmented) -> str:
    return "".join(segments.decode(message.data_coding, segments.split_header(message.esm_class, part).payload)
                   for part in message.parts)


@pytest.mark.parametrize(("text", "coding", "count"), [
    ("a" * 160, segments.GSM, 1), ("a" * 161, segments.GSM, 2), ("a" * 306, segments.GSM, 2),
    ("a" * 307, segments.GSM, 3),
    ("{" * 80, segments.GSM, 1), ("{" * 81, segments.GSM, 2),  # an extension character takes two septets
    ("停" * 70, segments.UCS2, 1), ("停" * 71, segments.UCS2, 2), ("停" * 134, segments.UCS2, 2),
    ("停" * 135, segments.UCS2, 3),
    ("a" * 159 + "停", segments.UCS2, 3),  # one Chinese character makes the whole text UCS-2
    ("", segments.GSM, 1),
])
def test_codings_and_counts(text: str, coding: int, count: int) -> None:
    assert segments.coding_of(text) == coding
    assert segments.count(text) == count
    message = segments.segment(text, reference=200)
    assert len(message.parts) == count and message.data_coding == coding
    assert joined(message) == text


def test_parts_carry_the_concatenation_header_and_never_split_a_character() -> None:
    text = "您好😀" * 40 + "{}" * 50
    for content in (text, "x{" * 200):
        message = segments.segment(content, reference=7)
        assert message.esm_class == segments.UDHI
        numbers = []
        for part in message.parts:
            header = segments.split_header(message.esm_class, part)
            assert (header.reference, header.total) == (7, len(message.parts))
            numbers.append(header.number)
            segments.decode(message.data_coding, header.payload)  # each part reads alone: no half character
            # UCS-2: 140 octets; GSM goes as unpacked septets (the SMSC packs 153 of them beside the header)
            assert len(part) <= (140 if message.data_coding == segments.UCS2 else 6 + 153)
        assert numbers == list(range(1, len(message.parts) + 1))
        assert joined(message) == content


def test_a_text_past_the_parts_allowed_is_shortened_with_an_ellipsis() -> None:
    message = segments.segment("水" * 1000, reference=1, max_parts=3)
    assert len(message.parts) == 3 and message.text.endswith("…") and joined(message) == message.text
    assert len(message.text) == 67 * 3
    single = segments.segment("水" * 1000, reference=1, max_parts=1)
    assert single.parts[0] == ("水" * 69 + "…").encode("utf-16-be") and single.esm_class == 0


@pytest.mark.parametrize("broken", [b"", b"\x05\x00\x03\x01", b"\x05\x00\x03\x01\x02\x03", b"\x03\x00\x05\x01"])
def test_broken_headers_are_refused(broken: bytes) -> None:
    with pytest.raises(ValueError):
        segments.split_header(segments.UDHI, broken + b"x")


def test_a_16_bit_reference_and_other_codings_are_read() -> None:
    part = segments.split_header(segments.UDHI, b"\x06\x08\x04\x01\x02\x03\x02abc")
    assert (part.reference, part.total, part.number, part.payload) == (258, 3, 2, b"abc")
    assert segments.decode(3, "Grüß".encode("latin-1")) == "Grüß"
    assert segments.decode(0xF0, b"hi") == "hi"
    with pytest.raises(ValueError):
        segments.decode(4, b"\x00\x01")  # 8-bit data is no text
    with pytest.raises(ValueError):
        segments.decode(segments.UCS2, b"\xd8\x00")  # half a surrogate pair


def test_replies_keep_the_choices_whole_and_shorten_the_words() -> None:
    adapter = SmsAdapter.__new__(SmsAdapter)
    adapter.max_parts = 2
    buttons = [{"title": "路面", "payload": "/a"}, {"title": "小区内", "payload": "/b"}]
    message = OutboundMessage(message_id=1, idempotency_key="k", conversation_id=1, channel="sms",
                              recipient="+8613900000000", type="text", author="bot", text="请问漏水的位置是?" * 20,
                              payload={"buttons": buttons})
    text = adapter.text_of(message)
    assert text.endswith("回复数字即可选择:\n1. 路面\n2. 小区内") and "…\n" in text
    assert segments.count(text) == 2
