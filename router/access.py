"""Who may see and act on which conversation: one policy for REST, the staff WebSocket and events."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from router.models import ConversationState, Role

STAFF_ROLES = frozenset({Role.ADMIN, Role.SUPERVISOR, Role.AGENT})
OVERSEER_ROLES = frozenset({Role.ADMIN, Role.SUPERVISOR})
ADMIN_ROLES = frozenset({Role.ADMIN})
ALL_ROLES = frozenset(Role)


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller: a signed-in staff member or a service holding a bearer token."""

    role: Role
    user_id: int | None = None
    username: str = ""
    display_name: str = ""
    team_ids: frozenset[int] = field(default_factory=frozenset)
    department_id: int | None = None  # handlers and field crews belong to a department
    csrf_token: str | None = None  # set for cookie sessions only

    @property
    def is_overseer(self) -> bool:
        return self.role in OVERSEER_ROLES


def can_view(principal: Principal, key: dict[str, Any]) -> bool:
    """``key`` is a :func:`router.schemas.visibility_key` of the conversation."""
    if principal.is_overseer:
        return True
    if principal.role != Role.AGENT:
        return False
    if key["assignee_id"] == principal.user_id:
        return True
    member = in_team(principal, key["team_id"])
    if key["state"] == ConversationState.CLOSED:
        return key["last_agent_id"] == principal.user_id or member
    return member and key["state"] in {ConversationState.BOT, ConversationState.QUEUED}


def in_team(principal: Principal, team_id: int | None) -> bool:
    """Conversations without a team are everyone's; otherwise only the team's members'."""
    return team_id is None or team_id in principal.team_ids


def can_handle(principal: Principal, key: dict[str, Any]) -> bool:
    """Reply to, close or transfer: the assignee, or a supervisor/admin."""
    return principal.is_overseer or (
        principal.role == Role.AGENT and key["assignee_id"] == principal.user_id and principal.user_id is not None
    )
