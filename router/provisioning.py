"""Accounts a new installation needs: the first admin, and the demo staff of ``make run``."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from sqlalchemy import select

from router.accounts import create_user, has_admin
from router.db import PROVISIONING_LOCK_KEY, take_turns
from router.hub import Hub
from router.models import Role, StaffUser
from workorders.dispatch import DispatchRule
from workorders.models import Department

REPAIR_CENTRE, BUSINESS_OFFICE = "管网抢修中心", "营业所"
DEMO_ACCOUNTS = (  # username, display name, role, department
    ("agent1", "坐席小王", Role.AGENT, None),
    ("agent2", "坐席小李", Role.AGENT, None),
    ("super1", "值班长老张", Role.SUPERVISOR, None),
    ("handler1", "抢修调度老陈", Role.HANDLER, REPAIR_CENTRE),
    ("crew1", "维修班小赵", Role.FIELD_CREW, REPAIR_CENTRE),
    ("crew2", "维修班小孙", Role.FIELD_CREW, REPAIR_CENTRE),
    ("office1", "营业所小周", Role.HANDLER, BUSINESS_OFFICE),
)
# Which department gets which category, in every region.
DEMO_DISPATCH = {
    "leak_repair": REPAIR_CENTRE, "no_water": REPAIR_CENTRE, "low_pressure": REPAIR_CENTRE,
    "water_quality": REPAIR_CENTRE, "meter": REPAIR_CENTRE, "billing_dispute": BUSINESS_OFFICE,
    "service_application": BUSINESS_OFFICE,
}
DEMO_PASSWORD = "shuiwu-demo"  # noqa: S105  (demo accounts only, printed by make run)


@dataclass(frozen=True, slots=True)
class Credential:
    username: str
    password: str
    role: str
    note: str


async def ensure_first_admin(hub: Hub) -> Credential | None:
    """Create the admin on first start: password from ``HUB_FIRST_ADMIN_PASSWORD`` or a one-time one."""
    settings = hub.settings
    async with hub.sessions.begin() as session:
        await take_turns(session, PROVISIONING_LOCK_KEY)  # processes starting together create one admin
        if await has_admin(session):
            return None
        configured = settings.first_admin_password.get_secret_value()
        password = configured or secrets.token_urlsafe(12)
        await create_user(session, username=settings.first_admin_username, password=password, role=Role.ADMIN,
                          display_name="系统管理员", team_names=[settings.default_team],
                          one_time_hours=None if configured else settings.one_time_password_hours)
    note = ("来自 HUB_FIRST_ADMIN_PASSWORD" if configured else
            f"一次性密码,仅显示这一次;首次登录须修改,{settings.one_time_password_hours} 小时后失效")
    return Credential(settings.first_admin_username, "(已配置)" if configured else password, "admin", note)


async def ensure_demo_staff(hub: Hub) -> list[Credential]:
    """Demo staff, departments and dispatch rules, so a chat can be followed to a closed order at once."""
    created = []
    async with hub.sessions.begin() as session:
        await take_turns(session, PROVISIONING_LOCK_KEY)
        departments = {}
        for name in (REPAIR_CENTRE, BUSINESS_OFFICE):
            department = await session.scalar(select(Department).where(Department.name == name))
            if department is None:
                department = Department(name=name)
                session.add(department)
                await session.flush()
            departments[name] = department.id
        for category, department_name in DEMO_DISPATCH.items():
            if await session.scalar(select(DispatchRule.id).where(
                    DispatchRule.category_code == category, DispatchRule.region_code.is_(None))) is None:
                session.add(DispatchRule(category_code=category, region_code=None,
                                         department_id=departments[department_name]))
        for username, display_name, role, department_name in DEMO_ACCOUNTS:
            if await session.scalar(select(StaffUser.id).where(StaffUser.username == username)) is None:
                in_hotline = department_name is None
                await create_user(session, username=username, password=DEMO_PASSWORD, role=role,
                                  display_name=display_name,
                                  team_names=[hub.settings.default_team] if in_hotline else [],
                                  department_id=departments.get(department_name or ""))
            created.append(Credential(username, DEMO_PASSWORD, role, display_name))
    return created
