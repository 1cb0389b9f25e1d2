"""Calls put through to agents

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-06 21:10:00

A call keeps the agent who answered it, when the caller joined the queue and was put through, and the score
the caller gave in the survey after the agent hung up. An agent's extension is a desk phone or the inbox's
softphone (WebRTC).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import router.models

revision: str = "0024"
down_revision: str | None = "0023"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("staff_user", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sip_kind", sa.String(length=8), nullable=True))
    with op.batch_alter_table("call", schema=None) as batch_op:
        batch_op.add_column(sa.Column("agent_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("queued_at", router.models.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("connected_at", router.models.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("survey_score", sa.SmallInteger(), nullable=True))
        batch_op.create_foreign_key(batch_op.f("fk_call_agent_id_staff_user"), "staff_user", ["agent_id"], ["id"],
                                    ondelete="SET NULL")
        batch_op.create_index(batch_op.f("ix_call_agent_id"), ["agent_id"])


def downgrade() -> None:
    with op.batch_alter_table("call", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_call_agent_id"))
        batch_op.drop_constraint(batch_op.f("fk_call_agent_id_staff_user"), type_="foreignkey")
        batch_op.drop_column("survey_score")
        batch_op.drop_column("connected_at")
        batch_op.drop_column("queued_at")
        batch_op.drop_column("agent_id")
    with op.batch_alter_table("staff_user", schema=None) as batch_op:
        batch_op.drop_column("sip_kind")
