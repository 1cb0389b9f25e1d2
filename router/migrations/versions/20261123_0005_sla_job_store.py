"""SLA job store: the table APScheduler's SQLAlchemy job store keeps its jobs in

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 12:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # The same columns as apscheduler.jobstores.sqlalchemy.SQLAlchemyJobStore, so that the job store
    # finds its table instead of creating one outside the migrations.
    op.create_table(
        "apscheduler_jobs",
        sa.Column("id", sa.Unicode(191), primary_key=True),
        sa.Column("next_run_time", sa.Float(25), index=True),
        sa.Column("job_state", sa.LargeBinary(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("apscheduler_jobs")
