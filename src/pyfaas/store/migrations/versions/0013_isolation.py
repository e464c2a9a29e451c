"""Isolation: each function's ephemeral storage (/tmp size) and network mode.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("functions") as batch:
        batch.add_column(
            sa.Column("ephemeral_storage_mb", sa.Integer, nullable=False, server_default="512")
        )
        batch.add_column(sa.Column("network", sa.String(8), nullable=False, server_default="host"))


def downgrade() -> None:
    with op.batch_alter_table("functions") as batch:
        batch.drop_column("network")
        batch.drop_column("ephemeral_storage_mb")
