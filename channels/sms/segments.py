"""SMS text as the network carries it: GSM 03.38 or UCS-2, split into concatenated parts.

A text that GSM 03.38 (the 7-bit default alphabet) can write goes as ``data_coding`` 0, 160 septets in one SMS
or 153 per part; anything else (Chinese) goes as UCS-2 (``data_coding`` 8), 70 characters in one SMS or 67 per
part. GSM's extension characters (``{`` ``€`` …) take two septets, and a character outside the BMP (an emoji)
two UTF-16 units; a part never ends between the two. Parts carry the 8-bit concatenation header (UDH
``05 00 03 ref total seq``), which is what handsets reassemble.
"""

from __future__ import annotations

from dataclasses import dataclass

import gsm0338  # noqa: F401  (registers the "gsm03.38" codec)

GSM, UCS2 = 0, 8  # data_coding values
LATIN1, ASCII = 3, 1
UDHI = 0x40  # esm_class: the short message starts with a user data header
SINGLE = {GSM: 160, UCS2: 140}  # septets (GSM) or octets (UCS-2) in an SMS of one part
PER_PART = {GSM: 153, UCS2: 134}  # the same, beside a concatenation header
MAX_PARTS = 255
ELLIPSIS = "…"


@dataclass(frozen=True, slots=True)
class Segmented:
    """A text ready for ``submit_sm``: its coding and each part's ``short_message`` (header included)."""

    data_coding: int
    parts: tuple[bytes, ...]
    text: str  # the text sent: shortened (ending in …) when it did not fit in the parts allowed

    @property
    def esm_class(self) -> int:
        return UDHI if len(self.parts) > 1 else 0


def coding_of(text: str) -> int:
    try:
        text.encode("gsm03.38")
    except UnicodeError:
        return UCS2
    return GSM


def _encode(char: str, data_coding: int) -> bytes:
    return char.encode("gsm03.38") if data_coding == GSM else char.encode("utf-16-be")


def _chunks(text: str, data_coding: int, size: int) -> list[bytes]:
    """``text`` encoded, cut into chunks of at most ``size`` octets, never inside a character."""
    chunks, current = [], bytearray()
    for char in text:
        encoded = _encode(char, data_coding)
        if len(current) + len(encoded) > size:
            chunks.append(bytes(current))
            current = bytearray()
        current += encoded
    if current or not chunks:
        chunks.append(bytes(current))
    return chunks


def count(text: str) -> int:
    """How many SMS ``text`` takes (what the carrier bills)."""
    data_coding = coding_of(text)
    if len(text.encode("gsm03.38" if data_coding == GSM else "utf-16-be")) <= SINGLE[data_coding]:
        return 1
    return len(_chunks(text, data_coding, PER_PART[data_coding]))


def _shortened(text: str, data_coding: int, max_parts: int) -> str:
    """The longest start of ``text`` that, with an ellipsis, fits in ``max_parts`` parts."""
    room = SINGLE[data_coding] if max_parts == 1 else PER_PART[data_coding] * max_parts
    budget = room - len(_encode(ELLIPSIS, data_coding))
    used, end = 0, 0
    for char in text:
        size = len(_encode(char, data_coding))
        if used + size > budget:
            break
        used, end = used + size, end + 1
    while max_parts > 1 and _count_in(text[:end] + ELLIPSIS, data_coding) > max_parts:
        end -= 1  # a character too wide for the end of a part left a gap there
    return text[:end] + ELLIPSIS


def _count_in(text: str, data_coding: int) -> int:
    return len(_chunks(text, data_coding, PER_PART[data_coding]))


def segment(text: str, *, reference: int, max_parts: int = MAX_PARTS) -> Segmented:
    """``text`` as one SMS or as concatenated parts (``reference`` 0-255 ties them together), shortened to
    ``max_parts`` when longer."""
    if not 0 <= reference <= 255:
        raise ValueError("the concatenation reference is one octet")
    if not 1 <= max_parts <= MAX_PARTS:
        raise ValueError(f"an SMS has 1 to {MAX_PARTS} parts")
    data_coding = coding_of(text)
    whole = b"".join(_encode(char, data_coding) for char in text)
    if len(whole) <= SINGLE[data_coding]:
        return Segmented(data_coding, (whole,), text)
    if _count_in(text, data_coding) > max_parts:
        text = _shortened(text, data_coding, max_parts)
        if max_parts == 1:
            return Segmented(data_coding, (b"".join(_encode(c, data_coding) for c in text),), text)
    chunks = _chunks(text, data_coding, PER_PART[data_coding])
    total = len(chunks)
    parts = tuple(bytes([5, 0, 3, reference, total, number]) + chunk for number, chunk in enumerate(chunks, 1))
    return Segmented(data_coding, parts, text)


@dataclass(frozen=True, slots=True)
class Part:
    """One received part of a concatenated SMS (or a whole one: ``total`` 1)."""

    reference: int
    total: int
    number: int
    payload: bytes


def split_header(esm_class: int, short_message: bytes) -> Part:
    """The concatenation header of ``short_message``, if any (8- or 16-bit reference), and the text after it.

    Raises ``ValueError`` for a header that does not fit the message or numbers a part outside its total."""
    if not esm_class & UDHI:
        return Part(0, 1, 1, short_message)
    if not short_message:
        raise ValueError("a user data header flag on an empty message")
    length = short_message[0]
    header, payload = short_message[1:1 + length], short_message[1 + length:]
    if len(header) != length:
        raise ValueError("the user data header is longer than the message")
    position = 0
    while position + 2 <= len(header):
        element, size = header[position], header[position + 1]
        value = header[position + 2:position + 2 + size]
        if len(value) != size:
            raise ValueError("a user data header element runs past the header")
        if element == 0x00 and size == 3:
            reference, total, number = value
            return _checked(Part(reference, total, number, payload))
        if element == 0x08 and size == 4:
            return _checked(Part(int.from_bytes(value[:2], "big"), value[2], value[3], payload))
        position += 2 + size
    return Part(0, 1, 1, payload)  # a header without concatenation (a port number, say)


def _checked(part: Part) -> Part:
    if not 1 <= part.number <= part.total:
        raise ValueError(f"part {part.number} of {part.total}")
    return part


def decode(data_coding: int, payload: bytes) -> str:
    """The text of a message's payload in its ``data_coding``. Raises ``ValueError`` for an unknown coding or
    bytes that are not text in it."""
    coding = data_coding
    if data_coding & 0xF0 == 0xF0:  # a message class is set: bit 2 tells 8-bit data from the default alphabet
        coding = -1 if data_coding & 0x04 else GSM
    try:
        if coding == GSM:
            return payload.decode("gsm03.38")
        if coding == UCS2:
            return payload.decode("utf-16-be")
        if coding == LATIN1:
            return payload.decode("latin-1")
        if coding == ASCII:
            return payload.decode("ascii")
    except UnicodeDecodeError as exc:
        raise ValueError(f"the message is not text in data coding {data_coding}") from exc
    raise ValueError(f"data coding {data_coding} is not text this hub reads")
