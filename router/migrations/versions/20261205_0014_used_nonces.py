"""nonces of signed callbacks, each accepted once

Revision ID: 0014
Revises: 0012
Create Date: 2026-12-05 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import router.models

revision: str = "0014"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "used_nonce",
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("expires_at", router.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_used_nonce")),
    )
    op.create_index(op.f("ix_used_nonce_expires_at"), "used_nonce", ["expires_at"])


def downgrade() -> None:
    op.drop_table("used_nonce")
