"""one call, one record: records' parent span, links and merge marker; the trace_spans table

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05 08:45:00
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("records") as batch:
        batch.add_column(sa.Column("parent_span_id", sa.String(16), nullable=True))
        batch.add_column(sa.Column("links", _JSON, nullable=True))
        batch.add_column(sa.Column("merged_into", sa.String(128), nullable=True))
        batch.add_column(sa.Column("inherited", _JSON, nullable=True))
    op.create_table(
        "trace_spans",
        sa.Column("trace_id", sa.String(length=32), nullable=False),
        sa.Column("span_id", sa.String(length=16), nullable=False),
        sa.Column("parent_span_id", sa.String(length=16), nullable=True),
        sa.Column("record_id", sa.String(length=128), nullable=False),
        sa.ForeignKeyConstraint(["record_id"], ["records.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("trace_id", "span_id"),
    )
    op.create_index("ix_trace_spans_record", "trace_spans", ["record_id"])


def downgrade() -> None:
    op.drop_table("trace_spans")
    with op.batch_alter_table("records") as batch:
        batch.drop_column("inherited")
        batch.drop_column("merged_into")
        batch.drop_column("links")
        batch.drop_column("parent_span_id")
