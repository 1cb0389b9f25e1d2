"""Bills and arrears, read from the utility's billing system through one small interface.

The hub does not keep bills; it asks the billing system. :class:`DemoBilling` makes up accounts from
their numbers (the same number always gives the same account), so the bot and the agent page can be
tried without one; a utility plugs in its own system by naming a class with the same methods in
``HUB_BILLING_BACKEND`` (``package.module:Class``, constructed with the hub's settings).

Residents prove an account is theirs with the last four digits of the phone registered on it
(:meth:`BillingBackend.verify`): the bot shows nothing else of an account before that.
"""

from __future__ import annotations

import hashlib
import importlib
import re
from datetime import date
from decimal import Decimal
from typing import Protocol

from pydantic import BaseModel, Field

from router.settings import Settings

ACCOUNT_NUMBER = re.compile(r"^3\d{7}$")  # 户号: eight digits starting with 3
PHONE_LAST4 = re.compile(r"^[0-9]{4}$")


class Bill(BaseModel):
    period: str = Field(description="billing month, YYYY-MM")
    volume_m3: int
    amount: Decimal
    paid: bool


class Account(BaseModel):
    number: str
    holder: str = Field(description="the holder's name, masked")
    address: str = Field(description="the supply address, house number masked")
    arrears: Decimal = Field(description="unpaid amount, yuan")
    bills: list[Bill] = Field(description="the last bills, newest first")


class BillingBackend(Protocol):
    async def account(self, number: str) -> Account | None:
        """The account with this number, or None if there is none."""
        ...

    async def verify(self, number: str, phone_last4: str) -> bool:
        """Whether the phone registered on this account ends in these four digits (False for no account)."""
        ...


class DemoBilling:
    """Made-up accounts, stable per number; one number in ten does not exist."""

    SURNAMES = "王李张刘陈杨赵黄周吴徐孙朱马胡郭林何高罗"
    ROADS = ("前进东路", "人民路", "朝阳路", "长江路", "黄河路", "绿地大道", "亲和路", "北苑路")
    TIERS = ((18, Decimal("3.00")), (25, Decimal("4.50")), (None, Decimal("9.00")))  # m³ a month: 216/300 a year

    def __init__(self, _settings: Settings | None = None, today: date | None = None) -> None:
        self._today = today

    async def account(self, number: str) -> Account | None:
        seed = self._seed(number)
        if seed is None:
            return None
        today = self._today or date.today()
        bills = []
        for months_back in range(1, 7):
            year, month = divmod(today.year * 12 + today.month - 1 - months_back, 12)
            volume = 8 + seed[months_back] % 22
            unpaid = months_back <= seed[7] % 3  # up to the two newest bills still open
            bills.append(Bill(period=f"{year}-{month + 1:02d}", volume_m3=volume, amount=self._price(volume),
                              paid=not unpaid))
        arrears = sum((b.amount for b in bills if not b.paid), Decimal("0.00"))
        holder = self.SURNAMES[seed[8] % len(self.SURNAMES)] + "**"
        address = f"{self.ROADS[seed[9] % len(self.ROADS)]}**号"
        return Account(number=number, holder=holder, address=address, arrears=arrears, bills=bills)

    async def verify(self, number: str, phone_last4: str) -> bool:
        phone = self.phone(number)
        return phone is not None and PHONE_LAST4.match(phone_last4) is not None and phone.endswith(phone_last4)

    def phone(self, number: str) -> str | None:
        """The mobile number registered on a demo account (made up like the rest), or None if there is none."""
        seed = self._seed(number)
        if seed is None:
            return None
        return "1" + "3456789"[seed[10] % 7] + "".join(str(byte % 10) for byte in seed[11:20])

    @staticmethod
    def _seed(number: str) -> bytes | None:
        """The bytes every made-up detail of an account comes from; None for a number with no account."""
        if not ACCOUNT_NUMBER.match(number):
            return None
        seed = hashlib.sha256(number.encode()).digest()
        return None if seed[0] % 10 == 0 else seed

    def _price(self, volume: int) -> Decimal:
        """Monthly share of the yearly tiers (demo prices; the real ones come from the billing system)."""
        amount, remaining, lower = Decimal("0.00"), Decimal(volume), Decimal(0)
        for ceiling, price in self.TIERS:
            upper = None if ceiling is None else Decimal(str(ceiling))
            used = remaining if upper is None else min(remaining, max(Decimal(0), upper - lower))
            amount += used * price
            remaining -= used
            lower = upper if upper is not None else lower
        return amount.quantize(Decimal("0.01"))


def load_billing(settings: Settings) -> BillingBackend:
    """The backend named by ``HUB_BILLING_BACKEND`` (``demo`` or ``package.module:Class``)."""
    if settings.billing_backend == "demo":
        return DemoBilling(settings)
    module_name, _, class_name = settings.billing_backend.partition(":")
    backend = getattr(importlib.import_module(module_name), class_name)
    return backend(settings)
