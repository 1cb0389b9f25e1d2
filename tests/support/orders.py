"""The set-up of the work-order browser tests: a dispatch rule, the people, and a resident's report."""

from __future__ import annotations

import re
import uuid

from playwright.async_api import BrowserContext, Page, expect
from sqlalchemy import update

from router.models import Role, StaffUser
from tests.support.pages import watch_errors, widget

PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}
REPORT = "花桥镇绿地大道88号门口的水管爆了,水一直往外冒"
ADDRESS = "昆山市花桥镇绿地大道88号"


async def department_member(running_hub, role: Role, department_id: int):
    member = await running_hub.staff(role, teams=[], listen=False)
    async with running_hub.hub.sessions.begin() as session:
        await session.execute(update(StaffUser).where(StaffUser.id == member.user["id"])
                              .values(department_id=department_id))
    return member


async def setup(running_hub, callback: str) -> dict:
    """A category of its own, a department and the rule sending that category from 花桥 to it, and the people."""
    admin = await running_hub.staff(Role.ADMIN, listen=False)
    suffix = uuid.uuid4().hex[:6]
    department = await admin.call("POST", "/api/departments", {"name": f"花桥抢修站-{suffix}"}, expect=201)
    category = await admin.call("POST", "/api/workorder-categories", {
        "code": f"burst_{suffix}", "name": f"爆管抢修-{suffix}", "sla_hours": 4, "default_priority": 1,
        "callback": callback}, expect=201)
    await admin.call("POST", "/api/dispatch-rules", {
        "category_code": category["code"], "region_code": "huaqiao", "department_id": department["id"]}, expect=201)
    await admin.close()
    return {
        "department": department, "category": category,
        "agent": await running_hub.staff(Role.AGENT, listen=False),
        "handler": await department_member(running_hub, Role.HANDLER, department["id"]),
        "crew": await department_member(running_hub, Role.FIELD_CREW, department["id"]),
    }


async def resident_reports(context: BrowserContext, base: str, errors: list[str], report: str | None = None,
                           ) -> tuple[Page, str]:
    """A resident reports a problem in the web chat (by default a burst main, told uniquely); returns the
    page and what they wrote once the hub has stored it."""
    report = report or f"{REPORT}(报修人 {uuid.uuid4().hex[:6]})"
    resident = watch_errors(await context.new_page(), "resident", errors)
    await resident.goto(f"{base}/#chat")
    await expect(widget(resident, "webchat-panel")).to_be_visible()
    await widget(resident, "webchat-input").fill(report)
    await widget(resident, "webchat-input").press("Enter")
    await expect(widget(resident, "webchat-message").filter(has_text=report)).to_have_attribute(
        "data-message-id", re.compile(r"^\d+$"))
    return resident, report


