"""phone calls and their events

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-06 04:00:00

A row per call answered by the voice channel (caller, number dialled, times, hang-up cause and side, the
recording, the IVR path, the outcome) and one per key press, prompt or menu step within it.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import router.models

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "call",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("channel_id", sa.String(length=64), nullable=False),
        sa.Column("caller", sa.String(length=32), nullable=True),
        sa.Column("did", sa.String(length=32), nullable=True),
        sa.Column("conversation_id", sa.Integer(), nullable=True),
        sa.Column("started_at", router.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("answered_at", router.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("ended_at", router.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("hangup_cause", sa.Integer(), nullable=True),
        sa.Column("hangup_cause_text", sa.String(length=64), nullable=True),
        sa.Column("hangup_side", sa.String(length=16), nullable=True),
        sa.Column("recording_file_id", sa.String(length=36), nullable=True),
        sa.Column("ivr_path", sa.JSON(), nullable=False),
        sa.Column("outcome", sa.String(length=32), nullable=True),
        sa.ForeignKeyConstraint(["conversation_id"], ["conversation.id"], name=op.f("fk_call_conversation_id_conversation"),
                                ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["recording_file_id"], ["stored_file.id"],
                                name=op.f("fk_call_recording_file_id_stored_file"), ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_call")),
        sa.UniqueConstraint("channel_id", name=op.f("uq_call_channel_id")),
    )
    op.create_index("ix_call_caller_started", "call", ["caller", "started_at"])
    op.create_index(op.f("ix_call_conversation_id"), "call", ["conversation_id"])
    op.create_index(op.f("ix_call_ended_at"), "call", ["ended_at"])
    op.create_table(
        "call_event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("call_id", sa.Integer(), nullable=False),
        sa.Column("at", router.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("node", sa.String(length=64), nullable=True),
        sa.Column("key", sa.String(length=1), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(["call_id"], ["call.id"], name=op.f("fk_call_event_call_id_call"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_call_event")),
    )
    op.create_index(op.f("ix_call_event_call_id"), "call_event", ["call_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_call_event_call_id"), table_name="call_event")
    op.drop_table("call_event")
    op.drop_index(op.f("ix_call_ended_at"), table_name="call")
    op.drop_index(op.f("ix_call_conversation_id"), table_name="call")
    op.drop_index("ix_call_caller_started", table_name="call")
    op.drop_table("call")
