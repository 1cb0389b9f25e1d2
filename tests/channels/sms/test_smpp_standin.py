"""The stand-in SMSC answers PDUs packed here byte by byte from the SMPP 3.4 specification, as an SMSC does."""

from __future__ import annotations

import asyncio
import struct

import pytest

from channels.sms.smpp_standin import StandInSmsc
from tests.support.sms import PASSWORD, SYSTEM_ID


def pdu(command: int, sequence: int, body: bytes = b"", status: int = 0) -> bytes:
    return struct.pack(">IIII", 16 + len(body), command, status, sequence) + body


def bind(system_id: str, password: str, command: int = 0x09) -> bytes:
    # system_id, password, system_type (C-octet strings), interface_version 0x34, addr_ton, addr_npi, address_range
    body = system_id.encode() + b"\0" + password.encode() + b"\0" + b"\0" + b"\x34\x00\x00" + b"\0"
    return pdu(command, 1, body)


class Wire:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def ask(self, data: bytes) -> tuple[int, int, int, bytes]:
        self.writer.write(data)
        return await self.answer()

    async def answer(self) -> tuple[int, int, int, bytes]:
        async with asyncio.timeout(5):
            length, command, status, sequence = struct.unpack(">IIII", await self.reader.readexactly(16))
            return command, status, sequence, await self.reader.readexactly(length - 16)


@pytest.fixture
async def wire(smsc_plain: StandInSmsc):
    reader, writer = await asyncio.open_connection("127.0.0.1", smsc_plain.port)
    yield Wire(reader, writer)
    writer.close()


@pytest.fixture
async def smsc_plain():
    async with StandInSmsc(SYSTEM_ID, PASSWORD, rate_per_second=None) as running:
        yield running


async def test_binds_are_checked(wire: Wire, smsc_plain: StandInSmsc) -> None:
    assert await wire.ask(pdu(0x04, 9, b"\0" * 20)) == (0x80000004, 0x04, 9, b"")  # submit_sm before a bind
    assert await wire.ask(bind("nobody", PASSWORD)) == (0x80000009, 0x0F, 1, b"")  # ESME_RINVSYSID
    assert await wire.ask(bind(SYSTEM_ID, "wrong")) == (0x80000009, 0x0E, 1, b"")  # ESME_RINVPASWD
    assert await wire.ask(bind(SYSTEM_ID, PASSWORD)) == (0x80000009, 0, 1, b"STANDIN\0")
    assert await wire.ask(bind(SYSTEM_ID, PASSWORD, 0x02)) == (0x80000002, 0x05, 1, b"")  # ESME_RALYBND
    assert await wire.ask(pdu(0x15, 2)) == (0x80000015, 0, 2, b"")  # enquire_link
    assert smsc_plain.binds[-2:] == [(SYSTEM_ID, "trx", 0), (SYSTEM_ID, "tx", 0x05)]
    assert await wire.ask(pdu(0x06, 3)) == (0x80000006, 0, 3, b"")  # unbind, then the SMSC hangs up
    assert await wire.reader.read() == b""


async def test_a_submit_is_answered_with_a_message_id_and_reaches_the_handset(wire: Wire,
                                                                              smsc_plain: StandInSmsc) -> None:
    await wire.ask(bind(SYSTEM_ID, PASSWORD))
    text = "您的工单已受理".encode("utf-16-be")
    # service_type, source ton/npi/addr, dest ton/npi/addr, esm_class, protocol_id, priority_flag,
    # schedule_delivery_time, validity_period, registered_delivery, replace_if_present, data_coding,
    # sm_default_msg_id, sm_length, short_message
    body = (b"\0" + b"\x00\x00" + b"962740\0" + b"\x01\x01" + b"8613900001234\0" + b"\x00\x00\x00" + b"\0\0"
            + b"\x01\x00\x08\x00" + bytes([len(text)]) + text)
    command, status, sequence, message_id = await wire.ask(pdu(0x04, 7, body))
    assert (command, status, sequence) == (0x80000004, 0, 7) and message_id.endswith(b"\0")
    # The receipt follows as deliver_sm: appendix B's text and the receipted_message_id / message_state TLVs.
    command, status, sequence, receipt = await wire.answer()
    assert command == 0x00000005
    assert b"id:" + message_id.rstrip(b"\0") + b" sub:001 dlvrd:001 " in receipt and b"stat:DELIVRD err:000" in receipt
    assert b"\x00\x1e" + struct.pack(">H", len(message_id)) + message_id in receipt
    assert receipt.endswith(b"\x04\x27\x00\x01\x02")
    wire.writer.write(pdu(0x80000005, sequence, b"\0"))
    [shown] = smsc_plain.handsets["8613900001234"]
    assert (shown.text, shown.source, shown.data_coding) == ("您的工单已受理", "962740", 8)


async def test_what_it_cannot_take_is_refused(wire: Wire, smsc_plain: StandInSmsc) -> None:
    await wire.ask(bind(SYSTEM_ID, PASSWORD))
    assert await wire.ask(pdu(0x103, 4, b"\0" * 12)) == (0x80000000, 0x03, 4, b"")  # data_sm: ESME_RINVCMDID
    truncated = b"\0\0\0" + b"\x01\x01" + b"8613900001234\0"
    assert (await wire.ask(pdu(0x04, 5, truncated)))[:3] == (0x80000004, 0x01, 5)  # a body cut short
    bad_number = (b"\0" + b"\x00\x00" + b"962740\0" + b"\x01\x01" + b"not-a-number\0" + b"\x00\x00\x00" + b"\0\0"
                  + b"\x00\x00\x00\x00" + b"\x02hi")
    assert (await wire.ask(pdu(0x04, 6, bad_number)))[:3] == (0x80000004, 0x0B, 6)  # ESME_RINVDSTADR
    smsc_plain.fail_next(0x58)
    ok_number = bad_number.replace(b"not-a-number", b"8613900001234")
    assert (await wire.ask(pdu(0x04, 7, ok_number)))[:3] == (0x80000004, 0x58, 7)  # ESME_RTHROTTLED
    assert (await wire.ask(pdu(0x04, 8, ok_number)))[:2] == (0x80000004, 0)
    wire.writer.write(struct.pack(">IIII", 8, 0x04, 0, 9))  # a length shorter than the header
    assert await wire.answer() == (0x80000000, 0x02, 9, b"")
    assert await wire.reader.read() == b""
    assert smsc_plain.handsets["8613900001234"][0].text == "hi" and smsc_plain.submits == 1


async def test_a_throttle_refuses_what_comes_faster_than_its_rate() -> None:
    async with StandInSmsc(SYSTEM_ID, PASSWORD, rate_per_second=5) as limited:
        reader, writer = await asyncio.open_connection("127.0.0.1", limited.port)
        fast = Wire(reader, writer)
        await fast.ask(bind(SYSTEM_ID, PASSWORD, 0x02))
        body = (b"\0" + b"\x00\x00" + b"962740\0" + b"\x01\x01" + b"8613900001234\0" + b"\x00\x00\x00" + b"\0\0"
                + b"\x00\x00\x00\x00" + b"\x02hi")
        statuses = [(await fast.ask(pdu(0x04, n, body)))[1] for n in range(1, 21)]
        writer.close()
    assert 0x58 in statuses and statuses.count(0) <= 7, statuses
