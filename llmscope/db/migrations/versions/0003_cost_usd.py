"""cost per record, and budget alerts stored once per budget, period and threshold

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 13:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("records") as batch:
        batch.add_column(sa.Column("cost_usd", sa.Float(), nullable=True))
    # One budget alert per key (budget:NAME:PERIOD:THRESHOLD), however many collectors race.
    op.create_index(
        "ux_alerts_budget_key",
        "alerts",
        ["stable_key"],
        unique=True,
        sqlite_where=sa.text("kind = 'budget'"),
        postgresql_where=sa.text("kind = 'budget'"),
    )


def downgrade() -> None:
    op.drop_index("ux_alerts_budget_key", table_name="alerts")
    with op.batch_alter_table("records") as batch:
        batch.drop_column("cost_usd")
