"""Recorded IVR prompts

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-06 08:00:00

A studio recording that replaces the synthesised voice of one prompt text in one language (keyed as the
prompt directory keys that text), with the converted file in the file store.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import router.models

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ivr_recording",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("prompt_key", sa.String(length=64), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("file_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.Column("uploaded_by", sa.String(length=100), nullable=False),
        sa.Column("uploaded_at", router.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["file_id"], ["stored_file.id"], name=op.f("fk_ivr_recording_file_id_stored_file")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ivr_recording")),
        sa.UniqueConstraint("prompt_key", name=op.f("uq_ivr_recording_prompt_key")),
    )


def downgrade() -> None:
    op.drop_table("ivr_recording")
