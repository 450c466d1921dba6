"""records: indexes on trace_id and merged_into (a trace's calls, a call's merged rows)

Retention (``llmscope.db.prune``) asks, for every batch of records it deletes, which rows are
merged into them and whether a trace still has a record; so does the trace view.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05 18:40:00
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_records_trace_id", "records", ["trace_id"])
    op.create_index("ix_records_merged_into", "records", ["merged_into"])


def downgrade() -> None:
    op.drop_index("ix_records_merged_into", table_name="records")
    op.drop_index("ix_records_trace_id", table_name="records")
