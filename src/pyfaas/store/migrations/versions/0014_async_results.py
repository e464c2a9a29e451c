"""Async invocations keep their result: what a succeeded event's handler returned.

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("async_events") as batch:
        batch.add_column(sa.Column("result", sa.LargeBinary, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("async_events") as batch:
        batch.drop_column("result")
