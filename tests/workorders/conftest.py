"""People and helpers shared by the work-order tests."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import update

from router.models import Role, StaffUser
from tests.support.actors import Staff

LEAK = {"category": "leak_repair", "title": "清源路18号路面冒水", "description": "楼下马路在冒水,水很大",
        "custom_fields": {"leak_location": "路面", "severity": "冒水"}, "address": "昆山市清源路18号",
        "contact_phone": "13812345678"}


@pytest.fixture(scope="module")
async def crew(running_hub) -> dict:
    """An agent, a supervisor, a repair department with its handler and two field crew, a second department."""
    hub = running_hub.hub
    people: dict = {"agent": await running_hub.staff(Role.AGENT, listen=False),
                    "supervisor": await running_hub.staff(Role.SUPERVISOR, listen=False)}
    admin = await running_hub.staff(Role.ADMIN, listen=False)
    suffix = uuid.uuid4().hex[:6]
    repair = await admin.call("POST", "/api/departments", {"name": f"管网抢修中心-{suffix}"}, expect=201)
    billing = await admin.call("POST", "/api/departments", {"name": f"营业所-{suffix}"}, expect=201)
    for name, role, department in [("handler", Role.HANDLER, repair), ("field", Role.FIELD_CREW, repair),
                                   ("field2", Role.FIELD_CREW, repair), ("billing_handler", Role.HANDLER, billing)]:
        staff = await running_hub.staff(role, teams=[], listen=False)
        async with hub.sessions.begin() as session:
            await session.execute(update(StaffUser).where(StaffUser.id == staff.user["id"])
                                  .values(department_id=department["id"]))
        people[name] = await Staff(running_hub.url).login(staff.user["username"], "correct-horse-battery")
        await staff.close()
    people.update(admin=admin, repair=repair, billing=billing)
    yield people
    for value in people.values():
        if isinstance(value, Staff):
            await value.close()

async def act(staff: Staff, order_id: int, expect: int = 200, **body) -> dict:
    return await staff.call("POST", f"/api/workorders/{order_id}/transitions", body, expect=expect)
