"""Residents' phones on the stand-in SMSC (channels/sms/smpp_standin.py), and the hub's settings for it."""

from __future__ import annotations

from typing import Any

from channels.sms.smpp_standin import SentSms, StandInSmsc
from tests.support.waiting import until

SYSTEM_ID, PASSWORD, SERVICE_NUMBER = "hub", "pw-8chrs", "962740"


def sms_settings(smsc: StandInSmsc, **overrides: Any) -> dict[str, Any]:
    """The hub's SMS channel bound to ``smsc``; sends that fail are tried again within a second."""
    return {"channels": "webchat,sms", "sms_smpp_port": smsc.port, "sms_smpp_system_id": SYSTEM_ID,
            "sms_smpp_password": PASSWORD, "sms_service_number": SERVICE_NUMBER, "sms_reconnect_max_seconds": 0.5,
            "sms_submit_timeout_seconds": 1.0, "outbound_backoff_base_seconds": 0.1,
            "outbound_backoff_max_seconds": 0.5, **overrides}


class Handset:
    """A resident's mobile phone: texts the service number, shows what arrives."""

    def __init__(self, smsc: StandInSmsc, number: str) -> None:
        self.smsc, self.number = smsc, number  # national digits with the country code, no "+"
        self.read = 0

    @property
    def phone(self) -> str:
        return f"+{self.number}"

    async def texts(self, text: str) -> None:
        statuses = await self.smsc.mo(self.number, text)
        assert statuses == [0] * len(statuses), statuses

    def inbox(self) -> list[SentSms]:
        return self.smsc.handsets.get(self.number, [])

    async def receives(self, timeout: float = 10.0) -> SentSms:
        """The next message to arrive (once all its parts are in)."""
        await until(lambda: len(self.inbox()) > self.read, f"a message to {self.number}", timeout)
        self.read += 1
        return self.inbox()[self.read - 1]
