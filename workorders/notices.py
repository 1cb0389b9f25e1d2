"""What a resident is told when their work order moves: message templates admins can edit.

Each action has a default text; an admin's version (table ``message_template``) replaces it. Texts
use ``{placeholders}`` from :data:`PLACEHOLDERS`; anything else is refused when the template is saved.
"""

from __future__ import annotations

import string
from datetime import datetime
from typing import Any

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from router.models import Base, utcnow

PLACEHOLDERS = {
    "number": "工单编号",
    "category": "类别",
    "state": "当前状态",
    "department": "处理部门",
    "assignee": "处理人员",
    "comment": "处理说明",
    "reason": "原因",
    "master": "主工单编号",
    "survey_url": "满意度评价链接(仅用于评价通知)",
}
SURVEY_TEMPLATE = "workorder.survey"

DEFAULT_TEMPLATES: dict[str, str] = {
    "workorder.create": "您反映的问题已受理,工单号 {number}({category}),我们会尽快处理。",
    "workorder.dispatch": "工单 {number} 已派至{department}处理。",
    "workorder.assign": "工单 {number} 已安排{assignee}负责处理,请保持电话畅通。",
    "workorder.reassign": "工单 {number} 已改由{assignee}负责处理。",
    "workorder.start": "工单 {number}:维修人员已到场处理。",
    "workorder.complete": "工单 {number} 已处理完毕:{comment}。如仍有问题请直接回复。",
    "workorder.survey": "工单 {number} 已处理完毕:{comment}。请您为本次服务评价:{survey_url}",
    "workorder.close": "工单 {number} 已办结,感谢您对供水服务的支持。",
    "workorder.reopen": "工单 {number} 已重新安排处理:{reason}。",
    "workorder.reject": "工单 {number} 未能受理:{reason}。",
    "workorder.cancel": "工单 {number} 已撤销:{reason}。",
    "workorder.merge": "您反映的问题与工单 {master} 为同一事件,已合并处理,后续进展将同步通知您。",
}


class MessageTemplate(Base):
    """An admin's text for one notice, replacing the default."""

    __tablename__ = "message_template"
    key: Mapped[str] = mapped_column(String(60), primary_key=True)
    text: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


def check_template(text: str) -> None:
    """Raise ``ValueError`` for a template with unknown or malformed placeholders."""
    try:
        fields = [field for _, field, _, _ in string.Formatter().parse(text) if field is not None]
    except ValueError as exc:
        raise ValueError(f"malformed template: {exc}") from exc
    unknown = sorted({f for f in fields if f not in PLACEHOLDERS})
    if unknown:
        raise ValueError(f"unknown placeholders: {', '.join(unknown)}; known: {', '.join(PLACEHOLDERS)}")


def render(text: str, values: dict[str, Any]) -> str:
    return text.format(**{name: values.get(name) or "" for name in PLACEHOLDERS})
