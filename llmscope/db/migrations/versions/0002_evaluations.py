"""evaluations: one evaluator's verdict per record and evaluator version

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 13:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "evaluations",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("record_id", sa.String(length=128), nullable=False),
        sa.Column("evaluator", sa.String(length=64), nullable=False),
        sa.Column("version", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("passed", sa.Boolean(), nullable=True),
        sa.Column("justification", sa.Text(), nullable=True),
        sa.Column("judge_model", sa.String(length=256), nullable=True),
        sa.Column("judge_record_id", sa.String(length=128), nullable=True),
        sa.Column("input_tokens", sa.Integer(), nullable=True),
        sa.Column("output_tokens", sa.Integer(), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["record_id"], ["records.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("record_id", "evaluator", "version", name="uq_evaluations_record"),
    )
    op.create_index(
        "ix_evaluations_evaluator_created", "evaluations", ["evaluator", "version", "created_at"]
    )
    op.create_index("ix_evaluations_created", "evaluations", ["created_at"])
    # online judging reads new records by arrival (a replayed record's timestamp is old)
    op.create_index("ix_records_received_at", "records", ["received_at"])


def downgrade() -> None:
    op.drop_index("ix_records_received_at", table_name="records")
    op.drop_table("evaluations")
