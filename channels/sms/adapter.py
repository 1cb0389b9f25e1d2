"""SMS: residents text the service number; the hub answers, hands over to agents and sends notices by SMS.

The carrier's side is SMPP 3.4 (channels/sms/smpp.py) or Tencent Cloud SMS (channels/sms/tencent.py),
``HUB_SMS_PROVIDER``. A resident is known by their number (E.164), which is
also the contact's phone: a caller and a texter with the same number are one contact. Replies are plain text:
offered choices become a numbered list (the resident answers with the number), and a reply longer than
``HUB_SMS_MAX_PARTS`` SMS has its words shortened, the list kept whole. Receipts mark messages delivered, or
failed with the SMSC's reason.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from aiohttp import web

from channels.base import (
    Capability,
    ChannelAdapter,
    DeliveryResult,
    InboundMessage,
    OutboundMessage,
    RouterPort,
    readable_text,
)
from channels.sms import segments
from channels.sms.provider import Receipt, ReceiptHandler, SmsProvider, Texted, TextHandler
from channels.sms.smpp import SmppAccount, SmppLink
from channels.sms.tencent import TencentAccount, TencentSms
from router.logs import get_logger
from router.phones import normalized_phone
from router.spool import SpoolFull

if TYPE_CHECKING:
    from router.settings import Settings

log = get_logger(__name__)


class SmsAdapter(ChannelAdapter):
    name = "sms"
    capabilities = frozenset({Capability.TEXT})

    def __init__(self, router: RouterPort) -> None:
        super().__init__(router)
        self.max_parts = router.settings.sms_max_parts
        self.provider = provider_for(router.settings, self._take_text, self._take_receipt)

    def routes(self) -> list[web.RouteDef]:
        return self.provider.routes()

    def parse(self, raw: Any, external_id: str) -> InboundMessage:
        if not isinstance(raw, Texted):
            raise ValueError("not a text from the SMSC")
        phone = normalized_phone(raw.sender)
        if phone is None:
            raise ValueError(f"a text from {raw.sender!r}, which is no resident's number")
        text = raw.text.strip()[:self.router.settings.message_max_chars]
        if not text:
            raise ValueError("an empty text")
        return InboundMessage(channel=self.name, external_id=phone, channel_message_id=uuid.uuid4().hex, text=text,
                              phone=phone, received_at=raw.received_at)

    async def _take_text(self, texted: Texted) -> None:
        try:
            message = self.parse(texted, texted.sender)
        except ValueError as exc:
            log.warning("sms: a text refused", reason=str(exc))
            return
        try:
            await self.router.ingest_or_journal(message)
        except SpoolFull:
            log.error("sms: a text lost: the database is away and the journal is full")

    async def _take_receipt(self, receipt: Receipt) -> None:
        await self.router.report_provider_status(self.name, receipt.message_id, receipt.status)

    def text_of(self, message: OutboundMessage) -> str:
        return readable_text(message, lambda text: segments.count(text) <= self.max_parts)

    async def send(self, message: OutboundMessage) -> DeliveryResult:
        ids = await self.provider.submit(message.recipient, self.text_of(message), reference=message.message_id)
        return DeliveryResult(provider_message_id=ids[0])

    def healthy(self) -> bool | None:
        return self.provider.healthy()

    async def start(self) -> None:
        self.provider.start()

    async def stop(self) -> None:
        await self.provider.stop()


def provider_for(settings: Settings, on_text: TextHandler, on_receipt: ReceiptHandler) -> SmsProvider:
    if settings.sms_provider == "tencent":
        return TencentSms(TencentAccount(
            secret_id=settings.sms_tencent_secret_id, secret_key=settings.sms_tencent_secret_key.get_secret_value(),
            sdk_app_id=settings.sms_tencent_sdk_app_id, sign_name=settings.sms_tencent_sign_name,
            template_id=settings.sms_tencent_template_id, endpoint=settings.sms_tencent_endpoint,
            region=settings.sms_tencent_region, callback_token=settings.sms_callback_token.get_secret_value(),
            timeout_seconds=settings.sms_submit_timeout_seconds), on_text, on_receipt)
    return SmppLink(SmppAccount(
        host=settings.sms_smpp_host, port=settings.sms_smpp_port, system_id=settings.sms_smpp_system_id,
        password=settings.sms_smpp_password.get_secret_value(), system_type=settings.sms_smpp_system_type,
        source=settings.sms_service_number, window=settings.sms_smpp_window, max_parts=settings.sms_max_parts,
        submit_timeout_seconds=settings.sms_submit_timeout_seconds,
        reconnect_max_seconds=settings.sms_reconnect_max_seconds), on_text, on_receipt)
