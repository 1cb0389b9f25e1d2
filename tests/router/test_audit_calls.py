"""Changes to routing, work-order settings, agents' presence, conversations' handlers, residents' flags and
imports leave one audit entry each: who (the signed-in person), what, to which thing, from which address."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import select

from router.accounts import ensure_team
from router.audit import AuditEntry
from router.models import Role
from tests.conftest import RunningHub
from tests.support.actors import Resident, Staff


@pytest.fixture
async def admin(running_hub: RunningHub) -> AsyncIterator[Staff]:
    staff = await running_hub.staff(Role.ADMIN, listen=False)
    yield staff
    await staff.close()


@pytest.fixture
async def supervisor(running_hub: RunningHub) -> AsyncIterator[Staff]:
    staff = await running_hub.staff(Role.SUPERVISOR, listen=False)
    yield staff
    await staff.close()


async def audited(hub: RunningHub, actor: Staff, action: str, target_id: object = None) -> dict[str, Any]:
    """The one entry ``actor`` left for ``action`` on ``target_id``, checked for who and where; its details."""
    async with hub.hub.sessions() as session:
        query = select(AuditEntry).where(AuditEntry.action == action, AuditEntry.actor == actor.user["username"])
        if target_id is not None:
            query = query.where(AuditEntry.target_id == str(target_id))
        entries = list(await session.scalars(query))
    assert len(entries) == 1, [(e.action, e.target_id) for e in entries]
    entry = entries[0]
    assert (entry.actor_user_id, entry.ip) == (actor.user["id"], "127.0.0.1")
    return entry.details or {}


async def test_a_change_of_a_teams_routing(running_hub, supervisor) -> None:
    async with running_hub.hub.sessions.begin() as session:
        team = await ensure_team(session, f"审计组-{uuid.uuid4().hex[:6]}")
        await session.flush()
        team_id = team.id
    await supervisor.call("PUT", f"/api/queues/{team_id}", {"strategy": "round_robin", "service_level_seconds": 30})
    details = await audited(running_hub, supervisor, "routing.change", team_id)
    assert details["changes"]["strategy"][1] == "round_robin" and details["changes"]["service_level_seconds"][1] == 30


async def test_a_supervisor_forcing_an_agents_presence(running_hub, supervisor) -> None:
    agent = await running_hub.staff(Role.AGENT, listen=False)
    try:
        await supervisor.call("PUT", f"/api/agents/{agent.user['id']}/presence", {"state": "away", "reason": "培训"})
    finally:
        await agent.close()
    details = await audited(running_hub, supervisor, "presence.force", agent.user["id"])
    assert details == {"state": "away", "reason": "培训"}


async def test_a_supervisor_taking_over_a_conversation_and_a_residents_flags(running_hub, http, supervisor) -> None:
    resident = await Resident(http, running_hub.url).connect()
    try:
        conversation_id = (await resident.says("我要投诉抄表员"))["conversation_id"]
        taken = await supervisor.call("POST", f"/api/conversations/{conversation_id}/assign",
                                      {"agent_id": supervisor.user["id"]})
        assert await audited(running_hub, supervisor, "conversation.takeover", conversation_id) == {
            "agent_id": supervisor.user["id"]}
        contact_id = taken["contact"]["id"]
        await supervisor.call("PUT", f"/api/contacts/{contact_id}/flags", {"vip": True, "blacklisted": False})
        details = await audited(running_hub, supervisor, "contact.flags", contact_id)
        assert details == {"changes": {"vip": [False, True]}}
    finally:
        await resident.close()


async def test_work_order_categories_templates_and_dispatch_rules(running_hub, admin) -> None:
    code = f"audit_{uuid.uuid4().hex[:8]}"
    category = await admin.call("POST", "/api/workorder-categories",
                                {"code": code, "name": "审计测试", "sla_hours": 24}, expect=201)
    assert await audited(running_hub, admin, "category.create", category["id"]) == {"code": code}
    workflow = {**category["workflow"], "states": {**category["workflow"]["states"], "closed": "已归档"}}
    await admin.call("PUT", f"/api/workorder-categories/{category['id']}",
                     {"code": code, "name": "审计测试", "sla_hours": 48, "workflow": workflow})
    changed = (await audited(running_hub, admin, "category.change", category["id"]))["changes"]
    assert changed["sla_hours"] == [24, 48]
    assert changed["workflow"][1]["states"]["closed"] == "已归档" != changed["workflow"][0]["states"]["closed"]

    template = (await admin.call("GET", "/api/message-templates"))["items"][0]
    await admin.call("PUT", "/api/message-templates", {"key": template["key"], "text": template["default"] + "。"})
    assert (await audited(running_hub, admin, "template.change", template["key"]))["changes"] == {
        "text": [None, template["default"] + "。"]}
    await admin.call("PUT", "/api/message-templates", {"key": template["key"], "text": None})  # the hub is shared

    department = await admin.call("POST", "/api/departments", {"name": f"审计所-{code}"}, expect=201)
    assert await audited(running_hub, admin, "department.create", department["id"]) == {"name": department["name"]}
    rule = await admin.call("POST", "/api/dispatch-rules", {"category_code": code, "region_code": None,
                                                            "department_id": department["id"]}, expect=201)
    assert (await audited(running_hub, admin, "dispatch_rule.add", rule["id"]))["department_id"] == department["id"]
    await admin.call("DELETE", f"/api/dispatch-rules/{rule['id']}", expect=204)
    await audited(running_hub, admin, "dispatch_rule.remove", rule["id"])


async def test_a_work_order_import(running_hub) -> None:
    agent = await running_hub.staff(Role.AGENT, listen=False)
    try:
        batch = {"source": "12345", "orders": [
            {"external_ref": f"audit-{uuid.uuid4().hex}", "category": "consultation", "title": "12345转办咨询",
             "description": "市民咨询水表更换"},
            {"category": "consultation", "title": "没有外部编号", "description": "x"}]}
        await agent.call("POST", "/api/workorders/import", batch)
        assert await audited(running_hub, agent, "workorders.import") == {"created": 1, "existing": 0, "errors": 1}
    finally:
        await agent.close()
