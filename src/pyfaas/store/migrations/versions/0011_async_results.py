"""Async invocations keep their result: what a succeeded event's handler returned.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("async_events") as batch:
        batch.add_column(sa.Column("result", sa.LargeBinary, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("async_events") as batch:
        batch.drop_column("result")
