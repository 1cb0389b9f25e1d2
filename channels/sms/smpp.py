"""The hub's SMPP 3.4 bind to a carrier's SMSC or an SMS gateway (smpp34 runs the session: bind, window,
``enquire_link``, responses).

One transceiver session is kept up, bound again with growing waits when it drops. A text goes out as one
``submit_sm`` per part (channels/sms/segments.py) asking for a delivery receipt; the SMSC's answer decides
whether a failure is tried again (a throttle, a full queue, a system error, no answer in time, no bind) or not (a
number or text the SMSC refuses). What the SMSC delivers is either a receipt (``esm_class`` 0x04: the
``receipted_message_id`` and ``message_state`` TLVs, else the receipt text's ``id:`` and ``stat:``) or a
resident's text, put together from its parts first.

smpp34 answers a ``deliver_sm`` as it arrives; the hub stores or journals the text as soon as it takes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import random
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime

import smpp34
from aiohttp import web

from channels.base import ChannelSendError
from channels.sms import segments
from channels.sms.provider import Receipt, ReceiptHandler, Texted, TextHandler
from router.logs import get_logger

log = get_logger(__name__)

RECEIPT = 0x04  # esm_class: an SMSC delivery receipt
TLV_RECEIPTED_MESSAGE_ID, TLV_MESSAGE_STATE = 0x001E, 0x0427
MESSAGE_STATES = {1: "ENROUTE", 2: "DELIVRD", 3: "EXPIRED", 4: "DELETED", 5: "UNDELIV", 6: "ACCEPTD", 7: "UNKNOWN",
                  8: "REJECTD"}
FINAL_FAILURES = {"EXPIRED", "DELETED", "UNDELIV", "REJECTD", "UNKNOWN"}
RECEIPT_FIELDS = re.compile(r"(?:^|\s)(id|stat|err):(\S*)", re.IGNORECASE)
PARTS_KEPT_SECONDS = 300.0  # parts of a resident's long text wait this long for the rest
RECEIPT_PARTS_KEPT = 20_000  # multi-part messages whose receipts are followed, newest first
INBOUND_CAPACITY = 50_000  # deliveries the session holds until pulled: a burst of receipts must not stall it


class Status(enum.IntEnum):
    """The ``command_status`` values an SMSC answers with (SMPP 3.4, 5.1.3)."""

    ROK = 0x00
    RINVMSGLEN = 0x01
    RINVCMDLEN = 0x02
    RINVCMDID = 0x03
    RINVBNDSTS = 0x04
    RALYBND = 0x05
    RSYSERR = 0x08
    RINVSRCADR = 0x0A
    RINVDSTADR = 0x0B
    RBINDFAIL = 0x0D
    RINVPASWD = 0x0E
    RINVSYSID = 0x0F
    RMSGQFUL = 0x14
    RINVESMCLASS = 0x43
    RTHROTTLED = 0x58
    RX_T_APPN = 0x64
    RX_P_APPN = 0x65
    RX_R_APPN = 0x66
    RINVDCS = 0x104


RETRYABLE = {Status.RSYSERR, Status.RMSGQFUL, Status.RTHROTTLED, Status.RX_T_APPN}
STATUS_TEXT = {  # what the agent reads beside a message that did not go out
    Status.RINVDSTADR: "号码无效", Status.RINVSRCADR: "发送号码无效", Status.RINVDCS: "编码不被接受",
    Status.RINVMSGLEN: "短信长度不被接受", Status.RTHROTTLED: "短信网关限流", Status.RMSGQFUL: "短信网关队列已满",
    Status.RSYSERR: "短信网关系统错误", Status.RX_P_APPN: "短信网关拒绝(永久)", Status.RX_R_APPN: "短信网关拒绝",
}


def refusal(status: int) -> ChannelSendError:
    """A ``submit_sm`` the SMSC answered with ``status``: tried again or not, and the reason shown."""
    try:
        known = Status(status)
    except ValueError:
        name, retryable = f"0x{status:08X}", status >= 0x400  # 0x400-0x4FF: the SMSC vendor's own
    else:
        name, retryable = f"ESME_{known.name}", known in RETRYABLE
    text = STATUS_TEXT.get(status, "短信网关拒绝")  # type: ignore[call-overload]
    return ChannelSendError(f"{text} ({name})", retryable=retryable)


@dataclass(frozen=True, slots=True)
class SmppAccount:
    host: str
    port: int
    system_id: str
    password: str
    system_type: str
    source: str  # the number residents see the texts come from (and text to)
    window: int = 10
    max_parts: int = 6
    submit_timeout_seconds: float = 10.0
    reconnect_max_seconds: float = 30.0


@dataclass
class _Incomplete:
    parts: dict[int, bytes] = field(default_factory=dict)
    first_seen: float = 0.0


class SmppLink:
    """One bound session, kept up; ``on_text`` and ``on_receipt`` get what the SMSC delivers."""

    def __init__(self, account: SmppAccount, on_text: TextHandler, on_receipt: ReceiptHandler) -> None:
        self.account = account
        self._on_text, self._on_receipt = on_text, on_receipt
        self._smsc: smpp34.Smsc | None = None
        self._client: smpp34.Client | None = None
        self._task: asyncio.Task[None] | None = None
        self._incomplete: dict[tuple[str, int, int], _Incomplete] = {}
        # part id → (first part's id, ids of the message's parts not yet delivered): a long message is
        # delivered once every part is, and fails with its first part that fails
        self._long: OrderedDict[str, tuple[str, set[str]]] = OrderedDict()
        self.bound = asyncio.Event()
        self._window = asyncio.Semaphore(account.window)  # never more submits out than the session's window

    def healthy(self) -> bool:
        return self.bound.is_set()

    def routes(self) -> list[web.RouteDef]:
        return []  # the SMSC is reached over SMPP; it calls no web hook

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._keep_bound(), name="smpp-link")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._smsc is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._smsc.unbind(), 2)
        if self._client is not None:
            with contextlib.suppress(Exception):
                await self._client.stop()
        self.bound.clear()

    async def _keep_bound(self) -> None:
        attempt = 0
        while True:
            account = self.account
            self._client = smpp34.Client(host=account.host, port=account.port, system_id=account.system_id,
                                         password=account.password, bind_type="TRX",
                                         system_type=account.system_type, window_size=account.window,
                                         connect_timeout_ms=5000, inbound_capacity=INBOUND_CAPACITY)
            try:
                self._smsc = await self._client.connect()
            except Exception as exc:  # refused, timed out, bind refused: all retried
                attempt += 1
                wait = min(account.reconnect_max_seconds, 0.5 * 2 ** min(attempt, 10)) * random.uniform(0.5, 1)
                log.warning("sms: no bind to the SMSC", host=account.host, port=account.port, error=str(exc),
                            retry_in=round(wait, 1))
                await asyncio.sleep(wait)
                continue
            attempt = 0
            self.bound.set()
            log.info("sms: bound to the SMSC", host=account.host, port=account.port)
            try:
                await self._take_deliveries(self._smsc)
            finally:
                self.bound.clear()
                self._smsc = None
                with contextlib.suppress(Exception):
                    await self._client.stop()
            log.warning("sms: the SMSC session dropped; binding again", host=account.host)

    async def _take_deliveries(self, smsc: smpp34.Smsc) -> None:
        """Pull what the SMSC delivers as fast as it comes, and handle it in order beside: a session whose
        deliveries are not taken stops reading, and the answers to the hub's submits wait behind them."""
        deliveries: asyncio.Queue[smpp34.DeliverSmEvent] = asyncio.Queue()  # one per session
        handling = asyncio.get_running_loop().create_task(self._handle_deliveries(deliveries))
        try:
            while True:
                event = await smsc.next()
                if isinstance(event, smpp34.Disconnected):
                    break
                deliveries.put_nowait(event)
            await deliveries.join()  # what came before the drop is still handled
        finally:
            handling.cancel()

    async def _handle_deliveries(self, deliveries: asyncio.Queue[smpp34.DeliverSmEvent]) -> None:
        while True:
            event = await deliveries.get()
            try:
                if event.esm_class & 0x3C == RECEIPT:
                    await self._receipt(event)
                else:
                    await self._text(event)
            except Exception:  # one bad delivery must not end the session
                log.exception("sms: a delivery from the SMSC could not be taken", source=event.source_addr)
            finally:
                deliveries.task_done()

    # ------------------------------------------------------------------------------------------------- sending

    async def submit(self, phone: str, text: str, reference: int) -> list[str]:
        """Send ``text`` to ``phone`` (E.164); the SMSC's id of each part. Raises :class:`ChannelSendError`."""
        smsc = self._smsc
        if smsc is None or not self.bound.is_set():
            raise ChannelSendError("短信网关未连接", retryable=True)
        message = segments.segment(text, reference=reference % 256, max_parts=self.account.max_parts)
        ids = []
        for part in message.parts:
            try:
                async with self._window:
                    response = await asyncio.wait_for(smsc.submit_sm(
                        phone.lstrip("+"), part, source_addr=self.account.source, dest_addr_ton=1,
                        dest_addr_npi=1, esm_class=message.esm_class, data_coding=message.data_coding,
                        registered_delivery=1), self.account.submit_timeout_seconds)
            except TimeoutError as exc:
                raise ChannelSendError("短信网关无应答", retryable=True) from exc
            except smpp34.SmppError as exc:
                raise ChannelSendError(f"短信网关会话错误 ({exc})", retryable=True) from exc
            if not response.is_success or not response.message_id:
                raise refusal(response.command_status)
            ids.append(response.message_id)
        if len(ids) > 1:
            self._follow(ids)
        return ids

    def _follow(self, ids: list[str]) -> None:
        pending = set(ids)
        for part_id in ids:
            self._long[part_id] = (ids[0], pending)
        while len(self._long) > RECEIPT_PARTS_KEPT:
            self._long.popitem(last=False)

    # ----------------------------------------------------------------------------------------------- receiving

    async def _receipt(self, event: smpp34.DeliverSmEvent) -> None:
        tlvs = {tlv.tag: tlv.value for tlv in event.tlvs}
        fields = {name.lower(): value for name, value in
                  RECEIPT_FIELDS.findall(event.short_message.decode("latin-1"))}
        message_id = (tlvs.get(TLV_RECEIPTED_MESSAGE_ID, b"").rstrip(b"\x00").decode("ascii", "replace")
                      or fields.get("id", ""))
        state = tlvs.get(TLV_MESSAGE_STATE)
        stat = MESSAGE_STATES.get(state[0], "UNKNOWN") if state else fields.get("stat", "").upper()
        if not message_id or not stat:
            log.warning("sms: a receipt without a message id or state", source=event.source_addr)
            return
        if stat not in FINAL_FAILURES and stat != "DELIVRD":
            return  # en route, accepted: not the end yet
        status = "success" if stat == "DELIVRD" else f"短信未送达 ({stat} err:{fields.get('err', '?')})"
        message_id = self._whole(message_id, status)
        if message_id is not None:
            await self._on_receipt(Receipt(message_id, status))

    def _whole(self, part_id: str, status: str) -> str | None:
        """The id the receipt of ``part_id`` reports: the message's first part's, once every part is delivered or
        as soon as one fails; None while parts are still out."""
        followed = self._long.get(part_id)
        if followed is None:
            return part_id
        first, pending = followed
        if status != "success":
            for other in pending | {part_id}:
                self._long.pop(other, None)
            return first
        pending.discard(part_id)
        self._long.pop(part_id, None)
        return None if pending else first

    async def _text(self, event: smpp34.DeliverSmEvent) -> None:
        try:
            part = segments.split_header(event.esm_class, event.short_message)
        except ValueError as exc:
            log.warning("sms: a resident's text with a broken header", error=str(exc))
            return
        if part.total == 1:
            payload = part.payload
        else:
            loop = asyncio.get_running_loop()
            self._drop_stale(loop.time())
            key = (event.source_addr, part.reference, part.total)
            incomplete = self._incomplete.setdefault(key, _Incomplete(first_seen=loop.time()))
            incomplete.parts[part.number] = part.payload
            if len(incomplete.parts) < part.total:
                return
            del self._incomplete[key]
            payload = b"".join(incomplete.parts[n] for n in sorted(incomplete.parts))
        try:
            text = segments.decode(event.data_coding, payload)
        except ValueError as exc:
            log.warning("sms: a resident's text the hub cannot read", error=str(exc))
            return
        await self._on_text(Texted(event.source_addr, event.destination_addr, text, datetime.now(UTC)))

    def _drop_stale(self, now: float) -> None:
        for key in [k for k, v in self._incomplete.items() if now - v.first_seen > PARTS_KEPT_SECONDS]:
            log.warning("sms: parts of a resident's text never completed", parts=len(self._incomplete[key].parts))
            del self._incomplete[key]
