"""Log retention: the size of each log record (retention by size sums it) and an index on
timestamp (retention by age and time-range queries).

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("invocation_logs") as batch:
        batch.add_column(sa.Column("size", sa.Integer, nullable=False, server_default="0"))
    # Bytes, not characters, on both databases.
    if op.get_bind().dialect.name == "sqlite":
        op.execute("UPDATE invocation_logs SET size = length(CAST(text AS BLOB))")
    else:
        op.execute("UPDATE invocation_logs SET size = octet_length(text)")
    op.create_index("ix_invocation_logs_timestamp", "invocation_logs", ["timestamp"])


def downgrade() -> None:
    op.drop_index("ix_invocation_logs_timestamp", table_name="invocation_logs")
    with op.batch_alter_table("invocation_logs") as batch:
        batch.drop_column("size")
