"""Function URLs: per function (and qualifier), the auth type and the CORS settings.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "function_urls",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column(
            "function",
            sa.String(64),
            sa.ForeignKey("functions.name", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("qualifier", sa.String(128), nullable=True),
        sa.Column("url_id", sa.String(32), nullable=False),
        sa.Column("auth_type", sa.String(16), nullable=False),
        sa.Column("cors", sa.Text, nullable=True),
        sa.Column("created_at", sa.Float(precision=53), nullable=False),
        sa.Column("updated_at", sa.Float(precision=53), nullable=False),
    )
    op.create_index(
        "ux_function_urls_unqualified",
        "function_urls",
        ["function"],
        unique=True,
        sqlite_where=sa.text("qualifier IS NULL"),
        postgresql_where=sa.text("qualifier IS NULL"),
    )
    op.create_index(
        "ux_function_urls_qualified", "function_urls", ["function", "qualifier"], unique=True
    )


def downgrade() -> None:
    op.drop_table("function_urls")
