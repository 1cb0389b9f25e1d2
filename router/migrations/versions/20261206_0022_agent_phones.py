"""Agents' SIP phones

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-06 18:30:00

A staff account may have a SIP extension (its phone's user name) and the digest Asterisk checks its password
against; the hub pushes both to Asterisk over ARI.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0022"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("staff_user", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sip_extension", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("sip_md5_cred", sa.String(length=32), nullable=True))
        batch_op.create_unique_constraint(batch_op.f("uq_staff_user_sip_extension"), ["sip_extension"])


def downgrade() -> None:
    with op.batch_alter_table("staff_user", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_staff_user_sip_extension"), type_="unique")
        batch_op.drop_column("sip_md5_cred")
        batch_op.drop_column("sip_extension")
