"""Metering: one usage record per invocation, and each function's price plan.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

BigIntId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("functions") as batch:
        batch.add_column(sa.Column("price_plan", sa.String(64), nullable=True))
    op.create_table(
        "usage_records",
        sa.Column("id", BigIntId, primary_key=True, autoincrement=True),
        sa.Column("function", sa.String(64), nullable=False),
        sa.Column("version", sa.String(16), nullable=False),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("started_at", sa.Float(precision=53), nullable=False),
        sa.Column("hour", sa.Integer, nullable=False),
        sa.Column("duration_us", sa.BigInteger, nullable=False),
        sa.Column("billed_ms", sa.BigInteger, nullable=False),
        sa.Column("memory_mb", sa.Integer, nullable=False),
        sa.Column("max_memory_mb", sa.Integer, nullable=False),
        sa.Column("cpu_us", sa.BigInteger, nullable=True),
        sa.Column("init_us", sa.BigInteger, nullable=True),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("price_plan", sa.String(64), nullable=False),
    )
    op.create_index("ix_usage_records_started_at", "usage_records", ["started_at"])
    op.create_index(
        "ix_usage_records_function_started_at", "usage_records", ["function", "started_at"]
    )
    op.create_index("ix_usage_records_request_id", "usage_records", ["request_id"])


def downgrade() -> None:
    op.drop_table("usage_records")
    with op.batch_alter_table("functions") as batch:
        batch.drop_column("price_plan")
