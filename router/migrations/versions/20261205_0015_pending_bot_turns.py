"""bot turns kept until answered

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-05 21:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import router.models

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "pending_bot_turn",
        sa.Column("message_id", sa.Integer(), nullable=False),
        sa.Column("conversation_id", sa.Integer(), nullable=False),
        sa.Column("claim_token", sa.String(length=32), nullable=False),
        sa.Column("lease_until", router.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("context", sa.JSON(none_as_null=True), nullable=False),
        sa.Column("created_at", router.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["conversation_id"], ["conversation.id"],
                                name=op.f("fk_pending_bot_turn_conversation_id_conversation"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["message_id"], ["message.id"],
                                name=op.f("fk_pending_bot_turn_message_id_message"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("message_id", name=op.f("pk_pending_bot_turn")),
    )
    op.create_index(op.f("ix_pending_bot_turn_conversation_id"), "pending_bot_turn", ["conversation_id"])
    op.create_index(op.f("ix_pending_bot_turn_lease_until"), "pending_bot_turn", ["lease_until"])


def downgrade() -> None:
    op.drop_table("pending_bot_turn")
