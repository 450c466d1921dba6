"""evaluations computed elsewhere: their label, the records' response id, the ones still waiting

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05 05:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("evaluations") as batch:
        batch.add_column(sa.Column("label", sa.String(256), nullable=True))
    with op.batch_alter_table("records") as batch:
        batch.add_column(sa.Column("response_id", sa.String(256), nullable=True))
    op.create_index("ix_records_response_id", "records", ["response_id"])
    op.create_table(
        "pending_evaluations",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("record_ref", sa.String(length=128), nullable=True),
        sa.Column("span_id", sa.String(length=16), nullable=True),
        sa.Column("response_id", sa.String(length=256), nullable=True),
        sa.Column("evaluator", sa.String(length=64), nullable=False),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("passed", sa.Boolean(), nullable=True),
        sa.Column("label", sa.String(length=256), nullable=True),
        sa.Column("justification", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    for column in ("record_ref", "span_id", "response_id", "received_at"):
        op.create_index(f"ix_pending_evaluations_{column}", "pending_evaluations", [column])


def downgrade() -> None:
    op.drop_table("pending_evaluations")
    op.drop_index("ix_records_response_id", table_name="records")
    with op.batch_alter_table("records") as batch:
        batch.drop_column("response_id")
    with op.batch_alter_table("evaluations") as batch:
        batch.drop_column("label")
