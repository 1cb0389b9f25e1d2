"""Bills and arrears through the hub's billing interface (the demo backend stands in for the utility's system)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from router.billing import DemoBilling
from router.models import Role


async def test_demo_accounts_are_stable_and_priced_by_the_tiers() -> None:
    billing = DemoBilling(today=date(2026, 11, 23))
    first, again = await billing.account("31002346"), await billing.account("31002346")
    assert first == again and first is not None
    assert [b.period for b in first.bills] == ["2026-10", "2026-09", "2026-08", "2026-07", "2026-06", "2026-05"]
    assert first.arrears == sum((b.amount for b in first.bills if not b.paid), Decimal(0))
    assert first.holder.endswith("**") and "**号" in first.address  # never the full name or house number
    # 18 m³ a month at 3.00, the next 7 at 4.50, the rest at 9.00 (the demo's share of the yearly tiers)
    assert [billing._price(v) for v in (10, 18, 20, 26, 30)] == [
        Decimal("30.00"), Decimal("54.00"), Decimal("63.00"), Decimal("94.50"), Decimal("130.50")]
    assert await billing.account("12345678") is None  # not an account number


async def test_agents_and_the_bot_read_an_account_and_others_may_not(running_hub) -> None:
    agent = await running_hub.staff(Role.AGENT, listen=False)
    crew = await running_hub.staff(Role.FIELD_CREW, listen=False)
    try:
        account = await agent.call("GET", "/api/billing/account?number=31002346")
        assert account["number"] == "31002346" and len(account["bills"]) == 6
        refused = await agent.call("GET", "/api/billing/account?number=1234", expect=422)
        assert "number" in refused["error"]["details"]["fields"]
        missing = [n for n in (f"3{i:07d}" for i in range(100)) if await DemoBilling().account(n) is None]
        unknown = missing.pop()
        assert (await agent.call("GET", f"/api/billing/account?number={unknown}", expect=404))["error"]["code"] == (
            "account_not_found")
        await crew.call("GET", "/api/billing/account?number=31002346", expect=403)
    finally:
        await agent.close()
        await crew.close()

