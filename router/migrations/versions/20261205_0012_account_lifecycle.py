"""sign-in throttle and one-time passwords

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import router.models

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "login_throttle",
        sa.Column("scope", sa.String(length=8), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_failure_at", router.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("locked_until", router.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_ip", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("scope", "key", name=op.f("pk_login_throttle")),
    )
    op.create_index(op.f("ix_login_throttle_last_failure_at"), "login_throttle", ["last_failure_at"])
    with op.batch_alter_table("staff_user") as batch:
        batch.add_column(sa.Column("must_change_password", sa.Boolean(), server_default=sa.text("false"),
                                   nullable=False))
        batch.add_column(sa.Column("password_expires_at", router.models.UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("staff_user") as batch:
        batch.drop_column("password_expires_at")
        batch.drop_column("must_change_password")
    op.drop_table("login_throttle")
