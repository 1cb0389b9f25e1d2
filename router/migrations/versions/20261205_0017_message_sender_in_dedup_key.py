"""inbound de-duplication per sender: the resident's address joins the message's unique key

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-05 21:00:00

A web chat ``client_id`` is chosen by the visitor's browser and a WeChat MsgId by WeChat per account:
only together with the sender do they name one message. Existing resident messages get the address of
their conversation, which is the address they came from.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("message") as batch:
        batch.add_column(sa.Column("sender", sa.String(length=128), nullable=True))
    op.execute(
        "UPDATE message SET sender = (SELECT conversation.external_id FROM conversation"
        " WHERE conversation.id = message.conversation_id)"
        " WHERE direction = 'in' AND channel_message_id IS NOT NULL"
    )
    with op.batch_alter_table("message") as batch:
        batch.drop_constraint("uq_message_channel_channel_message_id", type_="unique")
        batch.create_unique_constraint(op.f("uq_message_channel_channel_message_id_sender"),
                                       ["channel", "channel_message_id", "sender"])


def downgrade() -> None:
    # Two senders' messages that share an id cannot both stay under the old key: the later ones lose their id.
    op.execute(
        "UPDATE message SET channel_message_id = NULL WHERE id NOT IN (SELECT min(id) FROM message"
        " WHERE channel_message_id IS NOT NULL GROUP BY channel, channel_message_id)"
        " AND channel_message_id IS NOT NULL"
    )
    with op.batch_alter_table("message") as batch:
        batch.drop_constraint("uq_message_channel_channel_message_id_sender", type_="unique")
        batch.create_unique_constraint(op.f("uq_message_channel_channel_message_id"),
                                       ["channel", "channel_message_id"])
        batch.drop_column("sender")
