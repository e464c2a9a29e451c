"""Canary rollouts of aliases, watched by the server.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alias_rollouts",
        sa.Column("function", sa.String(64), primary_key=True),
        sa.Column("alias", sa.String(128), primary_key=True),
        sa.Column("previous_version", sa.Integer, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("weight", sa.Float(precision=53), nullable=False),
        sa.Column("window_s", sa.Float(precision=53), nullable=False),
        sa.Column("error_threshold", sa.Float(precision=53), nullable=False),
        sa.Column("promote", sa.Boolean, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("started_at", sa.Float(precision=53), nullable=False),
        sa.Column("ends_at", sa.Float(precision=53), nullable=False),
        sa.Column("finished_at", sa.Float(precision=53), nullable=True),
        sa.Column("invocations", sa.Integer, nullable=False),
        sa.Column("errors", sa.Integer, nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.ForeignKeyConstraint(
            ["function", "alias"],
            ["function_aliases.function", "function_aliases.name"],
            name="fk_alias_rollouts_alias",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_alias_rollouts_state", "alias_rollouts", ["state"])


def downgrade() -> None:
    op.drop_index("ix_alias_rollouts_state", "alias_rollouts")
    op.drop_table("alias_rollouts")
