"""agent presence and ACD routing

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 17:42:45
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import router.models

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "agent_presence",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("reason", sa.String(length=100), nullable=True),
        sa.Column("since", router.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("acw_until", router.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("seen_at", router.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_assigned_at", router.models.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["staff_user.id"], name=op.f("fk_agent_presence_user_id_staff_user"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_agent_presence")),
    )
    with op.batch_alter_table("conversation", schema=None) as batch_op:
        batch_op.add_column(sa.Column("queue_entered_at", router.models.UTCDateTime(timezone=True), nullable=True))

    with op.batch_alter_table("presence_log", schema=None) as batch_op:
        batch_op.add_column(sa.Column("actor", sa.String(length=100), nullable=True))

    with op.batch_alter_table("team", schema=None) as batch_op:
        batch_op.add_column(sa.Column("strategy", sa.String(length=20), server_default="least_busy", nullable=False))
        batch_op.add_column(
            sa.Column("prefer_last_agent", sa.Boolean(), server_default=sa.text("false"), nullable=False)
        )
        batch_op.add_column(sa.Column("bind_region", sa.Boolean(), server_default=sa.text("false"), nullable=False))
        batch_op.add_column(sa.Column("overflow_team_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("overflow_after_seconds", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("service_level_seconds", sa.Integer(), server_default=sa.text("20"), nullable=False)
        )
        batch_op.add_column(sa.Column("rr_cursor", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_team_overflow_team_id_team"), "team", ["overflow_team_id"], ["id"], ondelete="SET NULL"
        )


def downgrade() -> None:
    with op.batch_alter_table("team", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_team_overflow_team_id_team"), type_="foreignkey")
        batch_op.drop_column("rr_cursor")
        batch_op.drop_column("service_level_seconds")
        batch_op.drop_column("overflow_after_seconds")
        batch_op.drop_column("overflow_team_id")
        batch_op.drop_column("bind_region")
        batch_op.drop_column("prefer_last_agent")
        batch_op.drop_column("strategy")

    with op.batch_alter_table("presence_log", schema=None) as batch_op:
        batch_op.drop_column("actor")

    with op.batch_alter_table("conversation", schema=None) as batch_op:
        batch_op.drop_column("queue_entered_at")

    op.drop_table("agent_presence")
