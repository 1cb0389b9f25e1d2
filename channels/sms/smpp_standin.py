"""A stand-in SMSC for the tests and the demo: SMPP 3.4 over TCP, as a carrier's SMSC or an SMS gateway speaks it.

It checks binds (``system_id`` and password: ``ESME_RINVSYSID``/``ESME_RINVPASWD``, ``ESME_RALYBND``,
``ESME_RINVBNDSTS`` before a bind), answers ``enquire_link`` and ``unbind``, and takes ``submit_sm`` the way a
gateway does: the destination and data coding checked, concatenated parts (UDH or SAR) put together into what
the handset shows (:attr:`StandInSmsc.handsets`), a message id per part, a throttle (``ESME_RTHROTTLED`` past
``rate_per_second``) and a delivery receipt per part when one is asked for (``deliver_sm`` with ``esm_class``
0x04, the receipt text of the SMPP 3.4 specification's appendix B and the ``receipted_message_id`` and
``message_state`` TLVs). :meth:`StandInSmsc.mo` sends a resident's text to the hub as ``deliver_sm``. Anything
it cannot read gets ``generic_nack``.

Tests make it misbehave: numbers that are refused (``invalid``) or never reached (``undeliverable``, a receipt
with ``stat:UNDELIV``), :meth:`StandInSmsc.fail_next` with a status, :attr:`StandInSmsc.holding` (submits left
unanswered). The ``submit_sm`` and ``deliver_sm`` bodies are coded by smpp34; the other PDUs are a header and
at most one string, packed here from the specification.

``make run`` (demo mode) runs it inside the hub process and prints how to text the hub as a resident:
``python -m channels.sms.smpp_standin say --smsc <its control URL> '我家停水了'``.
``python -m channels.sms.smpp_standin serve`` runs it alone (SMPP on 2775, its control on 2780).
"""

from __future__ import annotations

import argparse
import asyncio
import enum
import itertools
import random
import re
import struct
import time
from collections import defaultdict
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp
import smpp34
from aiohttp import web

from channels.sms import segments
from channels.sms.smpp import RECEIPT, TLV_MESSAGE_STATE, TLV_RECEIPTED_MESSAGE_ID, Status
from router.logs import get_logger

log = get_logger(__name__)

HEADER = struct.Struct(">IIII")  # command_length, command_id, command_status, sequence_number
MAX_PDU = 65_536
RESPONSE = 0x80000000


class Command(enum.IntEnum):
    GENERIC_NACK = 0x80000000
    BIND_RECEIVER = 0x00000001
    BIND_TRANSMITTER = 0x00000002
    SUBMIT_SM = 0x00000004
    DELIVER_SM = 0x00000005
    UNBIND = 0x00000006
    BIND_TRANSCEIVER = 0x00000009
    ENQUIRE_LINK = 0x00000015


BINDS = {Command.BIND_RECEIVER: "rx", Command.BIND_TRANSMITTER: "tx", Command.BIND_TRANSCEIVER: "trx"}
TLV_SAR_MSG_REF_NUM, TLV_SAR_TOTAL_SEGMENTS, TLV_SAR_SEGMENT_SEQNUM = 0x020C, 0x020E, 0x020F
TLV_MESSAGE_PAYLOAD = 0x0424
DELIVERED, UNDELIVERABLE = 2, 5  # message_state
NUMBER = re.compile(r"\+?[0-9]{3,20}")
TEXT_CODINGS = {segments.GSM, segments.ASCII, segments.LATIN1, segments.UCS2}


def pdu(command: int, sequence: int, body: bytes = b"", status: int = 0) -> bytes:
    return HEADER.pack(HEADER.size + len(body), command, status, sequence) + body


def c_strings(body: bytes, count: int) -> tuple[list[str], bytes]:
    """The first ``count`` NUL-terminated strings of ``body`` and what follows them."""
    values = []
    for _ in range(count):
        end = body.find(b"\x00")
        if end < 0:
            raise ValueError("a string without its NUL")
        values.append(body[:end].decode("ascii"))
        body = body[end + 1:]
    return values, body


@dataclass
class SentSms:
    """A message as the handset shows it, all its parts received."""

    destination: str
    source: str
    text: str
    data_coding: int
    message_ids: list[str]
    at: datetime


@dataclass(eq=False)
class Session:
    writer: asyncio.StreamWriter
    bound: str | None = None  # rx, tx or trx once bound
    system_id: str = ""
    sequences: itertools.count = field(default_factory=lambda: itertools.count(1))
    waiting: dict[int, asyncio.Future[int]] = field(default_factory=dict)

    @property
    def receives(self) -> bool:
        return self.bound in ("rx", "trx")

    def send(self, data: bytes) -> None:
        if not self.writer.is_closing():
            self.writer.write(data)


class StandInSmsc:
    def __init__(self, system_id: str, password: str, *, rate_per_second: float | None = None,
                 invalid: str | None = None, undeliverable: str | None = None, receipt_delay: float = 0.05,
                 service_number: str = "962740") -> None:
        self.system_id, self.password = system_id, password
        self.rate_per_second = rate_per_second
        self.invalid = re.compile(invalid) if invalid else None
        self.undeliverable = re.compile(undeliverable) if undeliverable else None
        self.receipt_delay, self.service_number = receipt_delay, service_number
        self.handsets: defaultdict[str, list[SentSms]] = defaultdict(list)
        self.submits = 0  # submit_sm PDUs taken (every part)
        self.refused: list[tuple[str, int]] = []  # (destination, status) of each submit_sm refused
        self.binds: list[tuple[str, str, int]] = []  # (system_id, mode, status) of each bind asked for
        self.holding = False  # leave submit_sm unanswered
        self._failures: list[int] = []
        self._sessions: set[Session] = set()
        self._ids = itertools.count(random.randrange(1 << 24))
        self._parts: dict[tuple[str, str, int], dict[int, tuple[bytes, str]]] = {}
        self._tokens, self._refilled = float(rate_per_second or 0), time.monotonic()
        self._pending_receipts: list[dict] = []  # receipts waiting for a session that receives
        self._tasks: set[asyncio.Task[None]] = set()
        self._handlers: set[asyncio.Task[None]] = set()  # one per connection
        self._server: asyncio.Server | None = None
        self.port = 0

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> StandInSmsc:
        self._server = await asyncio.start_server(self._serve, host, port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        """Close the port and every session (an SMSC going down)."""
        if self._server is not None:
            self._server.close()
        for session in list(self._sessions):
            session.writer.close()
        if self._handlers:  # each ends as its connection closes
            await asyncio.wait(list(self._handlers), timeout=5)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
        for task in list(self._tasks):
            task.cancel()

    async def __aenter__(self) -> StandInSmsc:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def fail_next(self, status: int, count: int = 1) -> None:
        """Refuse the next ``count`` submit_sm with ``status`` (``Status.RTHROTTLED``, ``Status.RSYSERR`` …)."""
        self._failures += [status] * count

    @property
    def bound(self) -> int:
        return sum(1 for s in self._sessions if s.bound)

    # ---------------------------------------------------------------------------------------------- sessions

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = Session(writer)
        self._sessions.add(session)
        self._handlers.add(asyncio.current_task())  # type: ignore[arg-type]
        try:
            while True:
                header = await reader.readexactly(HEADER.size)
                length, command, status, sequence = HEADER.unpack(header)
                if not HEADER.size <= length <= MAX_PDU:
                    log.warning("smsc stand-in: a PDU length out of bounds", length=length)
                    session.send(pdu(Command.GENERIC_NACK, sequence, status=Status.RINVCMDLEN))
                    break
                body = await reader.readexactly(length - HEADER.size)
                if not await self._handle(session, command, status, sequence, header + body):
                    break
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._handlers.discard(asyncio.current_task())  # type: ignore[arg-type]
            self._sessions.discard(session)
            for waiter in session.waiting.values():
                waiter.cancel()
            writer.close()

    async def _handle(self, session: Session, command: int, status: int, sequence: int, data: bytes) -> bool:
        """Answer one PDU; False when the session is over."""
        body = data[HEADER.size:]
        if command & RESPONSE:
            waiter = session.waiting.pop(sequence, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(status)
            return True
        if command in BINDS:
            self._bind(session, command, sequence, body)
            return True
        if command == Command.ENQUIRE_LINK:
            session.send(pdu(Command.ENQUIRE_LINK | RESPONSE, sequence))
            return True
        if command == Command.UNBIND:
            session.send(pdu(Command.UNBIND | RESPONSE, sequence))
            return False
        if command == Command.SUBMIT_SM:
            if session.bound not in ("tx", "trx"):
                session.send(pdu(Command.SUBMIT_SM | RESPONSE, sequence, status=Status.RINVBNDSTS))
            elif not self.holding:
                session.send(self._submit(session, sequence, data))
            return True
        log.info("smsc stand-in: a command it does not take", command=hex(command))
        session.send(pdu(Command.GENERIC_NACK, sequence, status=Status.RINVCMDID))
        return True

    def _bind(self, session: Session, command: int, sequence: int, body: bytes) -> None:
        mode = BINDS[Command(command)]
        try:
            (system_id, password, _system_type), _rest = c_strings(body, 3)
        except (ValueError, UnicodeDecodeError):
            status = Status.RBINDFAIL
            system_id = ""
        else:
            status = (Status.RALYBND if session.bound else Status.RINVSYSID if system_id != self.system_id
                      else Status.RINVPASWD if password != self.password else Status.ROK)
        self.binds.append((system_id, mode, status))
        if status == Status.ROK:
            session.bound, session.system_id = mode, system_id
            self._flush_receipts()
        else:
            log.info("smsc stand-in: bind refused", system_id=system_id, status=hex(status))
        session.send(pdu(command | RESPONSE, sequence, b"STANDIN\x00" if status == Status.ROK else b"", status))

    # ---------------------------------------------------------------------------------------------- submits

    def _throttled(self) -> bool:
        if self.rate_per_second is None:
            return False
        now = time.monotonic()
        self._tokens = min(self.rate_per_second, self._tokens + (now - self._refilled) * self.rate_per_second)
        self._refilled = now
        if self._tokens < 1:
            return True
        self._tokens -= 1
        return False

    def _submit(self, session: Session, sequence: int, data: bytes) -> bytes:
        try:
            message = smpp34.decode(data)
        except smpp34.SmppError as exc:
            log.info("smsc stand-in: a submit_sm it cannot read", error=str(exc))
            return pdu(Command.SUBMIT_SM | RESPONSE, sequence, status=Status.RINVMSGLEN)
        status = self._refusal(message)
        if status != Status.ROK:
            self.refused.append((message.destination_addr, status))
            return pdu(Command.SUBMIT_SM | RESPONSE, sequence, status=status)
        self.submits += 1
        message_id = f"{next(self._ids):08X}"
        self._collect(message, message_id)
        if message.registered_delivery & 0x03:
            self._spawn(self._receipt_later(message, message_id))
        return pdu(Command.SUBMIT_SM | RESPONSE, sequence, message_id.encode() + b"\x00")

    def _refusal(self, message: smpp34.SubmitSm) -> int:
        if self._failures:
            return self._failures.pop(0)
        if self._throttled():
            return Status.RTHROTTLED
        if not NUMBER.fullmatch(message.destination_addr) or (
                self.invalid is not None and self.invalid.fullmatch(message.destination_addr.lstrip("+"))):
            return Status.RINVDSTADR
        if message.data_coding not in TEXT_CODINGS:
            return Status.RINVDCS
        try:
            segments.split_header(message.esm_class, message.short_message)
        except ValueError:
            return Status.RINVMSGLEN
        return Status.ROK

    def _collect(self, message: smpp34.SubmitSm, message_id: str) -> None:
        """Keep the part; once every part of the message is in, the handset shows it."""
        tlvs = {tlv.tag: tlv.value for tlv in message.tlvs}
        payload = tlvs.get(TLV_MESSAGE_PAYLOAD) or message.short_message
        part = segments.split_header(message.esm_class, payload)
        if TLV_SAR_TOTAL_SEGMENTS in tlvs:
            part = segments.Part(int.from_bytes(tlvs.get(TLV_SAR_MSG_REF_NUM, b"\x00"), "big"),
                                 tlvs[TLV_SAR_TOTAL_SEGMENTS][0], tlvs.get(TLV_SAR_SEGMENT_SEQNUM, b"\x01")[0],
                                 part.payload)
        key = (message.source_addr, message.destination_addr, part.reference)
        received = self._parts.setdefault(key, {}) if part.total > 1 else {}
        received[part.number] = (part.payload, message_id)
        if len(received) < part.total:
            return
        self._parts.pop(key, None)
        ordered = [received[n] for n in sorted(received)]
        try:
            text = segments.decode(message.data_coding, b"".join(payload for payload, _ in ordered))
        except ValueError:
            text = ""
        if self.undeliverable is None or not self.undeliverable.fullmatch(message.destination_addr.lstrip("+")):
            self.handsets[message.destination_addr.lstrip("+")].append(SentSms(
                message.destination_addr, message.source_addr, text, message.data_coding,
                [message_id for _, message_id in ordered], datetime.now(UTC)))

    # --------------------------------------------------------------------------------------------- receipts

    def _spawn(self, coroutine: Coroutine[Any, Any, object]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _receipt_later(self, message: smpp34.SubmitSm, message_id: str) -> None:
        await asyncio.sleep(self.receipt_delay)
        failed = self.undeliverable is not None and bool(
            self.undeliverable.fullmatch(message.destination_addr.lstrip("+")))
        if not failed and message.registered_delivery & 0x03 == 2:  # receipts of failures only
            return
        submitted = datetime.now(UTC).strftime("%y%m%d%H%M")
        text = (f"id:{message_id} sub:001 dlvrd:{'000' if failed else '001'} submit date:{submitted} "
                f"done date:{submitted} stat:{'UNDELIV' if failed else 'DELIVRD'} err:{'001' if failed else '000'} "
                "text:")
        receipt = dict(source_addr=message.destination_addr, destination_addr=message.source_addr,
                       short_message=text.encode("ascii"), esm_class=RECEIPT,
                       tlvs=[smpp34.Tlv(TLV_RECEIPTED_MESSAGE_ID, message_id.encode() + b"\x00"),
                             smpp34.Tlv(TLV_MESSAGE_STATE, bytes([UNDELIVERABLE if failed else DELIVERED]))])
        self._pending_receipts.append(receipt)
        self._flush_receipts()

    def _flush_receipts(self) -> None:
        """Send the receipts waiting for a receiving session (an SMSC keeps them until the ESME binds)."""
        receivers = [s for s in self._sessions if s.receives and s.system_id == self.system_id]
        while self._pending_receipts and receivers:
            receipt = self._pending_receipts.pop(0)
            self._spawn(self._deliver(random.choice(receivers), receipt))

    async def _deliver(self, session: Session, fields: dict) -> int:
        sequence = next(session.sequences)
        waiter: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        session.waiting[sequence] = waiter
        session.send(smpp34.DeliverSm(sequence_number=sequence, **fields).encode())
        try:
            return await asyncio.wait_for(waiter, 10)
        finally:
            session.waiting.pop(sequence, None)

    # -------------------------------------------------------------------------------------- residents' texts

    async def mo(self, sender: str, text: str, *, to: str | None = None) -> list[int]:
        """A resident texts the service number: ``deliver_sm`` to a bound receiver, a part at a time; the status
        the hub answered each part with. Raises ``LookupError`` while no session can receive."""
        receivers = [s for s in self._sessions if s.receives]
        if not receivers:
            raise LookupError("no ESME is bound to receive")
        session = random.choice(receivers)
        message = segments.segment(text, reference=random.randrange(256))
        statuses = []
        for part in message.parts:
            statuses.append(await self._deliver(session, dict(
                source_addr=sender, destination_addr=to or self.service_number, short_message=part,
                esm_class=message.esm_class, data_coding=message.data_coding)))
        return statuses



# ------------------------------------------------------------------------------------------- control and demo

DEMO_SYSTEM_ID, DEMO_PASSWORD = "demo", "demo1234"  # the demo's SMPP account (published: loopback only)


def control_app(smsc: StandInSmsc) -> web.Application:
    """A web handle on the stand-in for the demo and for people trying it: ``POST /mo`` (``{"from", "text"}``) texts
    the hub as a resident; ``GET /handsets/{number}`` lists what reached that handset."""

    async def mo(request: web.Request) -> web.Response:
        try:
            body = await request.json()
            sender, text = str(body["from"]), str(body["text"])
        except (ValueError, KeyError, TypeError):
            return web.json_response({"error": 'a JSON body with "from" and "text"'}, status=400)
        if not NUMBER.fullmatch(sender) or not text.strip():
            return web.json_response({"error": "from: a phone number; text: not empty"}, status=400)
        try:
            statuses = await smsc.mo(sender.lstrip("+"), text)
        except LookupError as exc:
            return web.json_response({"error": str(exc)}, status=503)
        return web.json_response({"statuses": statuses})

    async def handset(request: web.Request) -> web.Response:
        shown = smsc.handsets.get(request.match_info["number"].lstrip("+"), [])
        return web.json_response({"items": [{"text": m.text, "from": m.source, "parts": len(m.message_ids),
                                             "at": m.at.isoformat()} for m in shown]})

    app = web.Application()
    app.router.add_post("/mo", mo)
    app.router.add_get("/handsets/{number}", handset)
    return app


async def say(control_url: str, sender: str, text: str, wait: float) -> None:
    """Text the hub as ``sender`` through a running stand-in, then print what reaches the handset."""
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{control_url}/handsets/{sender.lstrip('+')}") as response:
            before = len((await response.json())["items"])
        async with http.post(f"{control_url}/mo", json={"from": sender, "text": text}) as response:
            print(f"> {text}  ({response.status} {await response.text()})")
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            async with http.get(f"{control_url}/handsets/{sender.lstrip('+')}") as response:
                items = (await response.json())["items"]
            for item in items[before:]:
                print(f"< {item['text']}  ({item['parts']} 条)")
            before = len(items)


async def serve(host: str, port: int, control_port: int, system_id: str, password: str) -> None:
    smsc = await StandInSmsc(system_id, password).start(host, port)
    runner = web.AppRunner(control_app(smsc), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, control_port).start()
    print(f"stand-in SMSC: smpp://{host}:{smsc.port} ({system_id}), control http://{host}:{control_port}",
          flush=True)
    await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m channels.sms.smpp_standin")
    commands = parser.add_subparsers(dest="command", required=True)
    serving = commands.add_parser("serve", help="run a stand-in SMSC")
    serving.add_argument("--host", default="127.0.0.1")
    serving.add_argument("--port", type=int, default=2775)
    serving.add_argument("--control-port", type=int, default=2780)
    serving.add_argument("--system-id", default=DEMO_SYSTEM_ID)
    serving.add_argument("--password", default=DEMO_PASSWORD)
    saying = commands.add_parser("say", help="text the hub as a resident and print the answers")
    saying.add_argument("--smsc", default="http://127.0.0.1:2780", help="the stand-in's control URL")
    saying.add_argument("--from", dest="sender", default="8613800138000")
    saying.add_argument("--wait", type=float, default=8.0)
    saying.add_argument("text")
    args = parser.parse_args()
    if args.command == "serve":
        asyncio.run(serve(args.host, args.port, args.control_port, args.system_id, args.password))
    else:
        asyncio.run(say(args.smsc.rstrip("/"), args.sender, args.text, args.wait))


if __name__ == "__main__":
    main()
