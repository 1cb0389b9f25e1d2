"""Automatic outbound campaigns

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-07 00:30:00

A campaign speaks one message to the residents of a district (or a chosen list), within a daily call window, on
at most a given number of channels, with retries after no answer or busy; each target keeps its result. Numbers
whose owners pressed "do not call" are kept apart and never called again.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import router.models

revision: str = "0025"
down_revision: str | None = "0024"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "campaign",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("message", sa.String(length=500), nullable=False),
        sa.Column("region_id", sa.Integer(), nullable=True),
        sa.Column("channels", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("retry_seconds", sa.Integer(), nullable=False),
        sa.Column("ring_seconds", sa.Integer(), nullable=False),
        sa.Column("call_from", sa.String(length=5), nullable=False),
        sa.Column("call_until", sa.String(length=5), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("created_at", router.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("started_at", router.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("finished_at", router.models.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["region_id"], ["region.id"], name=op.f("fk_campaign_region_id_region"),
                                ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["created_by_id"], ["staff_user.id"], name=op.f("fk_campaign_created_by_id_staff_user"),
                                ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaign")),
    )
    op.create_table(
        "campaign_target",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=True),
        sa.Column("phone", sa.String(length=20), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", router.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("call_id", sa.Integer(), nullable=True),
        sa.Column("updated_at", router.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["campaign_id"], ["campaign.id"], name=op.f("fk_campaign_target_campaign_id_campaign"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["contact_id"], ["contact.id"], name=op.f("fk_campaign_target_contact_id_contact"),
                                ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["call_id"], ["call.id"], name=op.f("fk_campaign_target_call_id_call"),
                                ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaign_target")),
        sa.UniqueConstraint("campaign_id", "phone", name=op.f("uq_campaign_target_campaign_id_phone")),
    )
    op.create_index("ix_campaign_target_due", "campaign_target", ["campaign_id", "state", "next_attempt_at"])
    op.create_index("ix_campaign_target_phone", "campaign_target", ["phone", "state"])
    op.create_table(
        "do_not_call",
        sa.Column("phone", sa.String(length=20), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=True),
        sa.Column("created_at", router.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["campaign_id"], ["campaign.id"], name=op.f("fk_do_not_call_campaign_id_campaign"),
                                ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("phone", name=op.f("pk_do_not_call")),
    )


def downgrade() -> None:
    op.drop_table("do_not_call")
    op.drop_index("ix_campaign_target_phone", table_name="campaign_target")
    op.drop_index("ix_campaign_target_due", table_name="campaign_target")
    op.drop_table("campaign_target")
    op.drop_table("campaign")
