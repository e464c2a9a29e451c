"""Per-function scaling settings: reserved and provisioned concurrency, workers' concurrency,
idle timeout.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("functions") as batch:
        batch.add_column(sa.Column("reserved_concurrency", sa.Integer, nullable=True))
        batch.add_column(
            sa.Column("provisioned_concurrency", sa.Integer, nullable=False, server_default="0")
        )
        batch.add_column(
            sa.Column("concurrency_per_worker", sa.Integer, nullable=False, server_default="1")
        )
        batch.add_column(sa.Column("idle_timeout_s", sa.Integer, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("functions") as batch:
        for column in (
            "idle_timeout_s",
            "concurrency_per_worker",
            "provisioned_concurrency",
            "reserved_concurrency",
        ):
            batch.drop_column(column)
