"""Functions and their invocation logs.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

BigIntId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "functions",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("handler", sa.String(256), nullable=False),
        sa.Column("runtime", sa.String(32), nullable=False),
        sa.Column("memory_mb", sa.Integer, nullable=False),
        sa.Column("timeout_s", sa.Integer, nullable=False),
        sa.Column("environment", sa.Text, nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("code_sha256", sa.String(64), nullable=False),
        sa.Column("code_size", sa.BigInteger, nullable=False),
        sa.Column("layer_sha256", sa.String(64), nullable=True),
        sa.Column("version", sa.String(16), nullable=False),
        sa.Column("created_at", sa.Float(precision=53), nullable=False),
        sa.Column("updated_at", sa.Float(precision=53), nullable=False),
    )
    op.create_index("ix_functions_code_sha256", "functions", ["code_sha256"])
    op.create_table(
        "invocation_logs",
        sa.Column("id", BigIntId, primary_key=True, autoincrement=True),
        sa.Column("function", sa.String(64), nullable=False),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("timestamp", sa.Float(precision=53), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
    )
    op.create_index("ix_invocation_logs_function_id", "invocation_logs", ["function", "id"])
    op.create_index("ix_invocation_logs_request_id", "invocation_logs", ["request_id"])


def downgrade() -> None:
    op.drop_table("invocation_logs")
    op.drop_table("functions")
