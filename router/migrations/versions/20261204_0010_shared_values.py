"""shared values (an API's access token, produced by one hub process for all)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04 18:40:40
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import router.models

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "shared_value",
        sa.Column("key", sa.String(length=120), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("expires_at", router.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", router.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_shared_value")),
    )


def downgrade() -> None:
    op.drop_table("shared_value")
