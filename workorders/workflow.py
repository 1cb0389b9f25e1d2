"""Workflows as data: which action moves an order from which state to which, who may do it, what it needs.

A category carries its workflow as JSON (admins can tighten or extend it without code changes);
:data:`STANDARD_WORKFLOW` is the one every category starts with:

new → dispatched (department) → assigned (person) → in_progress → completed → visited (callback with a
satisfaction score) → closed, with return to the dispatcher, reject, reassign, escalate, cancel,
reopen after an unsatisfied callback, and merge into a master order.

``guard`` narrows a role further: ``department`` (a handler of the order's department),
``assignee`` (the person it is assigned to), ``department_or_assignee``. Supervisors and admins pass
every guard.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from router.models import Role

FIELDS_AN_ACTION_MAY_REQUIRE = frozenset({"department_id", "assignee_id", "reason", "comment", "satisfaction",
                                          "master_id"})
GUARDS = frozenset({"department", "assignee", "department_or_assignee"})

_STAFF = ["agent", "supervisor", "admin"]
_DEPARTMENT = ["handler", "supervisor", "admin"]
_FIELD = ["field_crew", "handler", "supervisor", "admin"]

STANDARD_WORKFLOW: dict[str, Any] = {
    "initial": "new",
    "states": {
        "new": "新建",
        "dispatched": "已派单",
        "assigned": "已派工",
        "in_progress": "处理中",
        "completed": "已完工",
        "visited": "已回访",
        "closed": "已办结",
        "rejected": "已驳回",
        "cancelled": "已撤销",
        "merged": "已合并",
    },
    "final": ["closed", "rejected", "cancelled", "merged"],
    "transitions": [
        {"action": "dispatch", "label": "派单", "from": ["new"], "to": "dispatched", "roles": _STAFF,
         "requires": ["department_id"]},
        {"action": "assign", "label": "派工", "from": ["dispatched"], "to": "assigned", "roles": _DEPARTMENT,
         "guard": "department", "requires": ["assignee_id"]},
        {"action": "reassign", "label": "改派", "from": ["assigned", "in_progress"], "to": "assigned",
         "roles": _DEPARTMENT, "guard": "department", "requires": ["assignee_id", "reason"]},
        {"action": "start", "label": "接单到场", "from": ["assigned"], "to": "in_progress",
         "roles": _FIELD, "guard": "assignee"},
        {"action": "complete", "label": "完工", "from": ["in_progress"], "to": "completed", "roles": _FIELD,
         "guard": "assignee", "requires": ["comment"]},
        {"action": "visit", "label": "回访", "from": ["completed"], "to": "visited", "roles": _STAFF,
         "requires": ["satisfaction"]},
        {"action": "reopen", "label": "重新处理", "from": ["completed", "visited"], "to": "assigned",
         "roles": _STAFF, "requires": ["reason"]},
        {"action": "close", "label": "办结", "from": ["visited"], "to": "closed", "roles": _STAFF},
        {"action": "return", "label": "退回", "from": ["dispatched", "assigned", "in_progress"], "to": "new",
         "roles": _FIELD, "guard": "department_or_assignee", "requires": ["reason"]},
        {"action": "reject", "label": "驳回", "from": ["new", "dispatched"], "to": "rejected",
         "roles": ["handler", "supervisor", "admin"], "guard": "department", "requires": ["reason"]},
        {"action": "escalate", "label": "督办升级",
         "from": ["new", "dispatched", "assigned", "in_progress"], "to": None,
         "roles": ["supervisor", "admin"], "requires": ["reason"]},
        {"action": "cancel", "label": "撤销", "from": ["new", "dispatched", "assigned"], "to": "cancelled",
         "roles": _STAFF, "requires": ["reason"]},
        {"action": "merge", "label": "合并到主工单", "from": ["new", "dispatched", "assigned"], "to": "merged",
         "roles": _STAFF, "requires": ["master_id"]},
    ],
}


class Transition(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    action: str = Field(pattern=r"^[a-z_]{2,20}$")
    label: str = Field(min_length=1, max_length=20)
    from_states: list[str] = Field(alias="from", min_length=1)
    to: str | None  # None: the state does not change (escalate)
    roles: list[Role] = Field(min_length=1)
    guard: str | None = None
    requires: list[str] = Field(default_factory=list)


class Workflow(BaseModel):
    """A validated workflow definition."""

    model_config = ConfigDict(extra="forbid")

    initial: str
    states: dict[str, str] = Field(min_length=2)
    final: list[str]
    transitions: list[Transition] = Field(min_length=1)

    @model_validator(mode="after")
    def consistent(self) -> Workflow:
        known = set(self.states)
        problems = []
        if self.initial not in known:
            problems.append(f"initial state {self.initial!r} is not a state")
        problems += [f"final state {s!r} is not a state" for s in self.final if s not in known]
        seen: set[str] = set()
        for t in self.transitions:
            if t.action in seen:
                problems.append(f"action {t.action!r} is defined twice")
            seen.add(t.action)
            problems += [f"{t.action}: unknown state {s!r}" for s in [*t.from_states, t.to] if s and s not in known]
            problems += [f"{t.action}: leaves final state {s!r}" for s in t.from_states if s in self.final]
            if t.guard is not None and t.guard not in GUARDS:
                problems.append(f"{t.action}: unknown guard {t.guard!r}")
            problems += [f"{t.action}: cannot require {r!r}" for r in t.requires
                         if r not in FIELDS_AN_ACTION_MAY_REQUIRE]
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def transition(self, action: str) -> Transition | None:
        return next((t for t in self.transitions if t.action == action), None)

    def actions_from(self, state: str) -> list[str]:
        return [t.action for t in self.transitions if state in t.from_states]


def parse_workflow(data: dict[str, Any]) -> Workflow:
    """Validate a workflow definition; raises ``ValueError`` with every problem found."""
    try:
        return Workflow.model_validate(data)
    except ValidationError as exc:
        raise ValueError("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())) from exc

