"""Published versions and aliases; the qualifier an async event or a schedule invokes.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("functions") as batch:
        batch.add_column(sa.Column("last_version", sa.Integer, nullable=False, server_default="0"))
    with op.batch_alter_table("async_events") as batch:
        batch.add_column(sa.Column("qualifier", sa.String(128), nullable=True))
    with op.batch_alter_table("schedules") as batch:
        batch.add_column(sa.Column("qualifier", sa.String(128), nullable=True))
    op.create_table(
        "function_versions",
        sa.Column(
            "function",
            sa.String(64),
            sa.ForeignKey("functions.name", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("config", sa.Text, nullable=False),
        sa.Column("code_sha256", sa.String(64), nullable=False),
        sa.Column("code_size", sa.BigInteger, nullable=False),
        sa.Column("layer_sha256", sa.String(64), nullable=True),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float(precision=53), nullable=False),
    )
    op.create_index("ix_function_versions_code_sha256", "function_versions", ["code_sha256"])
    op.create_table(
        "function_aliases",
        sa.Column(
            "function",
            sa.String(64),
            sa.ForeignKey("functions.name", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("additional_version", sa.Integer, nullable=True),
        sa.Column("additional_weight", sa.Float(precision=53), nullable=True),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("provisioned_concurrency", sa.Integer, nullable=False),
        sa.Column("created_at", sa.Float(precision=53), nullable=False),
        sa.Column("updated_at", sa.Float(precision=53), nullable=False),
        sa.ForeignKeyConstraint(
            ["function", "version"],
            ["function_versions.function", "function_versions.version"],
            name="fk_function_aliases_version",
        ),
        sa.ForeignKeyConstraint(
            ["function", "additional_version"],
            ["function_versions.function", "function_versions.version"],
            name="fk_function_aliases_additional_version",
        ),
    )


def downgrade() -> None:
    op.drop_table("function_aliases")
    op.drop_table("function_versions")
    with op.batch_alter_table("schedules") as batch:
        batch.drop_column("qualifier")
    with op.batch_alter_table("async_events") as batch:
        batch.drop_column("qualifier")
    with op.batch_alter_table("functions") as batch:
        batch.drop_column("last_version")
