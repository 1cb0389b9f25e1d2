"""What the SMS channel asks of a provider (the carrier's SMSC over SMPP, a cloud SMS API), and what a provider
hands back: residents' texts and receipts of what was sent."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from aiohttp import web


@dataclass(frozen=True, slots=True)
class Texted:
    """A resident's text as the provider delivered it, all parts put together."""

    sender: str
    recipient: str
    text: str
    received_at: datetime


@dataclass(frozen=True, slots=True)
class Receipt:
    """The provider's word on a message it took: delivered (``status`` ``success``) or why not."""

    message_id: str
    status: str


TextHandler = Callable[[Texted], Awaitable[None]]
ReceiptHandler = Callable[[Receipt], Awaitable[None]]


class SmsProvider(Protocol):
    def healthy(self) -> bool | None:
        """Whether the provider is reachable now (None: nothing is held open to tell)."""

    def routes(self) -> list[web.RouteDef]:
        """The web hooks through which the provider pushes texts and receipts (none for SMPP)."""

    def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def submit(self, phone: str, text: str, reference: int) -> list[str]:
        """Send ``text`` to ``phone`` (E.164); the provider's id of each part (or of the whole message). Raises
        :class:`channels.base.ChannelSendError`, retryable or not."""
