"""dispositions and canned replies

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04 14:07:45
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import router.models

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The consultation types of a water hotline's contact report; admins add, rename or retire them later.
DEFAULT_DISPOSITIONS = [
    ("consultation", "业务咨询"),
    ("billing", "水费账单"),
    ("outage", "停水咨询"),
    ("repair", "故障报修"),
    ("water_quality", "水质问题"),
    ("meter", "水表问题"),
    ("application", "业务办理"),
    ("complaint", "投诉"),
    ("suggestion", "建议表扬"),
    ("invalid", "无效会话"),
]

DEFAULT_CANNED_REPLIES = [
    ("nh", "您好，这里是水务客服中心，很高兴为您服务，请问有什么可以帮您？"),
    ("dz", "请您提供详细地址（区、街道、小区、楼栋、单元、门牌号），以便我们尽快安排人员处理。"),
    ("dh", "请留下您的联系电话，维修人员到达前会与您联系。"),
    ("hh", "请您提供水费户号（缴费通知单或发票上的 10 位数字），我帮您查询。"),
    ("dd", "请您稍等，我正在为您查询。"),
    ("gd", "已为您登记工单，处理进度会通过微信或短信通知您，您也可以随时凭工单号查询。"),
    ("tt", "给您带来不便，非常抱歉，我们会尽快处理。"),
    ("zj", "请问还有其他可以帮您的吗？感谢您的来信，祝您生活愉快！"),
]


def upgrade() -> None:
    dispositions = op.create_table(
        "disposition",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("label", sa.String(length=100), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_disposition")),
        sa.UniqueConstraint("code", name=op.f("uq_disposition_code")),
    )
    canned = op.create_table(
        "canned_reply",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("shortcut", sa.String(length=32), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("team_id", sa.Integer(), nullable=True),
        sa.Column("owner_id", sa.Integer(), nullable=True),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("updated_at", router.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["staff_user.id"], name=op.f("fk_canned_reply_owner_id_staff_user"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["team_id"], ["team.id"], name=op.f("fk_canned_reply_team_id_team"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_canned_reply")),
    )
    with op.batch_alter_table("canned_reply", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_canned_reply_owner_id"), ["owner_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_canned_reply_team_id"), ["team_id"], unique=False)

    op.bulk_insert(dispositions, [
        {"code": code, "label": label, "position": position, "active": True}
        for position, (code, label) in enumerate(DEFAULT_DISPOSITIONS)
    ])
    now = router.models.utcnow()
    op.bulk_insert(canned, [
        {"shortcut": shortcut, "text": text, "team_id": None, "owner_id": None, "created_by": "system",
         "updated_at": now}
        for shortcut, text in DEFAULT_CANNED_REPLIES
    ])


def downgrade() -> None:
    with op.batch_alter_table("canned_reply", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_canned_reply_team_id"))
        batch_op.drop_index(batch_op.f("ix_canned_reply_owner_id"))
    op.drop_table("canned_reply")
    op.drop_table("disposition")
