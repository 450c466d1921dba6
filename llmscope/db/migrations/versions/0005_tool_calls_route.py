"""records: tool calls, the tools offered, every choice of n > 1, and the gateway route

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27 14:20:00
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("records") as batch:
        batch.add_column(sa.Column("tool_calls", JSON, nullable=True))
        batch.add_column(sa.Column("tools", JSON, nullable=True))
        batch.add_column(sa.Column("choices", JSON, nullable=True))
        batch.add_column(sa.Column("route", sa.String(256), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("records") as batch:
        batch.drop_column("route")
        batch.drop_column("choices")
        batch.drop_column("tools")
        batch.drop_column("tool_calls")
