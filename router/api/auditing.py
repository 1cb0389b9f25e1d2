"""Audit entries for changes made through the API: who (the caller), from where (their address), what, to which.

``audit(call, action, target_type, target_id, **details)`` gives a function of the session that adds the entry;
call it inside the transaction that makes the change (directly, or by handing it to the hub method that owns
the transaction), so that the entry exists exactly when the change does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from router.api.spec import HUB, Call
from router.audit import AuditEntry, record
from router.net import client_ip


class Audit(Protocol):
    def __call__(self, session: AsyncSession, **details: Any) -> AuditEntry: ...


def audit(call: Call, action: str, target_type: str, target_id: object, **details: Any) -> Audit:
    """The entry for ``call``'s change; details known only inside the transaction are given when it is added."""
    ip = client_ip(call.request, call.request.app[HUB].settings.trusted_proxies)

    def add(session: AsyncSession, **more: Any) -> AuditEntry:
        return record(session, call.user, action, target_type=target_type, target_id=target_id, ip=ip,
                      details={**details, **more})

    return add


def changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, list[Any]]:
    """``{field: [before, after]}`` for the fields whose value differs."""
    return {name: [before.get(name), value] for name, value in after.items() if before.get(name) != value}
