"""The hub's SMPP link on its own: a burst of sends, each answered with a receipt, goes through one bind."""

from __future__ import annotations

import asyncio

from channels.sms.provider import Receipt, Texted
from channels.sms.smpp import SmppAccount, SmppLink
from channels.sms.smpp_standin import StandInSmsc
from tests.support.sms import PASSWORD, SYSTEM_ID
from tests.support.waiting import until


async def test_a_burst_of_sends_is_sent_once_each_and_every_receipt_is_taken() -> None:
    """Twenty senders share one bind (ten submits out at most) while receipts pour in for what went out."""
    receipts: list[Receipt] = []

    async def on_text(_texted: Texted) -> None:
        return None

    async def on_receipt(receipt: Receipt) -> None:
        receipts.append(receipt)
        await asyncio.sleep(0)

    async with StandInSmsc(SYSTEM_ID, PASSWORD, receipt_delay=0) as smsc:
        link = SmppLink(SmppAccount("127.0.0.1", smsc.port, SYSTEM_ID, PASSWORD, "", "962740"), on_text, on_receipt)
        link.start()
        try:
            await asyncio.wait_for(link.bound.wait(), 10)
            count = 1000
            queue = list(range(count))

            async def sender() -> None:
                while queue:
                    n = queue.pop()
                    await link.submit(f"+86139{n:08d}", f"您的工单{n}已受理。", reference=n)

            await asyncio.wait_for(asyncio.gather(*(sender() for _ in range(20))), 60)
            await until(lambda: len(receipts) == count, "every receipt", within=30)
            assert smsc.submits == count and {r.status for r in receipts} == {"success"}
        finally:
            await link.stop()
