"""Web apps as functions: the WSGI or ASGI application a function runs ("module:attribute").

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("functions") as batch:
        batch.add_column(sa.Column("wsgi", sa.String(256), nullable=True))
        batch.add_column(sa.Column("asgi", sa.String(256), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("functions") as batch:
        batch.drop_column("asgi")
        batch.drop_column("wsgi")
