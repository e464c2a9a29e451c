"""Schedules of functions (rate and cron expressions), deleted with their function.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "schedules",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column(
            "function",
            sa.String(64),
            sa.ForeignKey("functions.name", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("expression", sa.String(256), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("input", sa.Text, nullable=True),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("missed_runs", sa.String(16), nullable=False),
        sa.Column("anchor", sa.Float(precision=53), nullable=False),
        sa.Column("handled_until", sa.Float(precision=53), nullable=False),
        sa.Column("created_at", sa.Float(precision=53), nullable=False),
        sa.Column("updated_at", sa.Float(precision=53), nullable=False),
        sa.Column("last_fired_at", sa.Float(precision=53), nullable=True),
        sa.Column("last_request_id", sa.String(64), nullable=True),
    )
    op.create_index("ix_schedules_function", "schedules", ["function"])


def downgrade() -> None:
    op.drop_table("schedules")
