"""Code bundles in the database, for several servers sharing it (each has its own disk).

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "code_blobs",
        sa.Column("sha256", sa.String(64), primary_key=True),
        sa.Column("zip", sa.LargeBinary, nullable=False),
        sa.Column("created_at", sa.Float(precision=53), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("code_blobs")
