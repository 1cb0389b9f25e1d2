"""Accounts a new installation needs: the first admin, and the demo staff of ``make run``."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from sqlalchemy import select

from router.accounts import create_user, has_admin
from router.hub import Hub
from router.models import Role, StaffUser

DEMO_ACCOUNTS = (
    ("agent1", "坐席小王", Role.AGENT),
    ("agent2", "坐席小李", Role.AGENT),
    ("super1", "值班长老张", Role.SUPERVISOR),
)
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
        if await has_admin(session):
            return None
        configured = settings.first_admin_password.get_secret_value()
        password = configured or secrets.token_urlsafe(12)
        await create_user(session, username=settings.first_admin_username, password=password, role=Role.ADMIN,
                          display_name="系统管理员", team_names=[settings.default_team])
    note = "来自 HUB_FIRST_ADMIN_PASSWORD" if configured else "一次性密码,仅显示这一次"
    return Credential(settings.first_admin_username, "(已配置)" if configured else password, "admin", note)


async def ensure_demo_staff(hub: Hub) -> list[Credential]:
    """Demo agents and a supervisor in the default team, so the web chat can be tried at once."""
    created = []
    async with hub.sessions.begin() as session:
        for username, display_name, role in DEMO_ACCOUNTS:
            if await session.scalar(select(StaffUser.id).where(StaffUser.username == username)) is None:
                await create_user(session, username=username, password=DEMO_PASSWORD, role=role,
                                  display_name=display_name, team_names=[hub.settings.default_team])
            created.append(Credential(username, DEMO_PASSWORD, role, display_name))
    return created
