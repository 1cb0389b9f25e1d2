"""IVR menu versions

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-06 04:00:00

Every saved menu (YAML text, who saved it, when), one of them current. The default menu is imported by the
hub on its first start, not here: the file may change between releases, a migration must not.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import router.models

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ivr_menu",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("yaml_text", sa.Text(), nullable=False),
        sa.Column("saved_by", sa.String(length=100), nullable=False),
        sa.Column("saved_by_user_id", sa.Integer(), nullable=True),
        sa.Column("saved_at", router.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("current", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ivr_menu")),
    )
    op.create_index(op.f("ix_ivr_menu_current"), "ivr_menu", ["current"])


def downgrade() -> None:
    op.drop_table("ivr_menu")
