"""Callback requests

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-06 18:40:00

Residents who asked to be called back (from the web chat or WeChat), at most one active request per contact.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import router.models

revision: str = "0023"
down_revision: str | None = "0022"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ACTIVE = sa.text("state IN ('open', 'taken')")


def upgrade() -> None:
    op.create_table(
        "callback_request",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.Column("conversation_id", sa.Integer(), nullable=True),
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("phone", sa.String(length=20), nullable=False),
        sa.Column("preferred_after", router.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("note", sa.String(length=200), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("taken_by_id", sa.Integer(), nullable=True),
        sa.Column("taken_at", router.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("outcome_note", sa.String(length=500), nullable=True),
        sa.Column("created_at", router.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", router.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("closed_at", router.models.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["contact_id"], ["contact.id"], name=op.f("fk_callback_request_contact_id_contact"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["conversation_id"], ["conversation.id"],
                                name=op.f("fk_callback_request_conversation_id_conversation"), ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["taken_by_id"], ["staff_user.id"],
                                name=op.f("fk_callback_request_taken_by_id_staff_user"), ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_callback_request")),
    )
    op.create_index("ix_callback_request_state_created", "callback_request", ["state", "created_at"])
    op.create_index("uq_callback_request_active_contact", "callback_request", ["contact_id"], unique=True,
                    sqlite_where=ACTIVE, postgresql_where=ACTIVE)


def downgrade() -> None:
    op.drop_index("uq_callback_request_active_contact", table_name="callback_request")
    op.drop_index("ix_callback_request_state_created", table_name="callback_request")
    op.drop_table("callback_request")
