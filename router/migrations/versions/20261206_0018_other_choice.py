"""an "其他" choice for the leak location and the no-water scope

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-06 01:00:00

The bot accepts "其他" after two answers it cannot place, instead of asking the same question again; the
two categories whose required field had no such choice get it. A schema an admin has changed so that it no
longer lists the default choices is left alone.
"""

import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FIELDS = {"leak_repair": ("leak_location", ["路面", "小区内", "户内", "水表井", "消防栓"]),
          "no_water": ("scope", ["单户", "整栋", "小区", "片区"])}
OTHER = "其他"
category = sa.table("work_order_category", sa.column("code", sa.String), sa.column("fields_schema", sa.JSON))


def _change(add: bool) -> None:
    connection = op.get_bind()
    for code, (field, defaults) in FIELDS.items():
        schema: Any = connection.scalar(sa.select(category.c.fields_schema).where(category.c.code == code))
        if isinstance(schema, str):
            schema = json.loads(schema)
        choices = (((schema or {}).get("properties") or {}).get(field) or {}).get("enum")
        if not isinstance(choices, list):
            continue
        if add and choices == defaults:
            choices.append(OTHER)
        elif not add and choices == [*defaults, OTHER]:
            choices.remove(OTHER)
        else:
            continue
        connection.execute(sa.update(category).where(category.c.code == code).values(fields_schema=schema))


def upgrade() -> None:
    _change(add=True)


def downgrade() -> None:
    _change(add=False)
