"""Event source mappings: broker streams and queues that feed functions in batches.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "event_source_mappings",
        sa.Column("uuid", sa.String(36), primary_key=True),
        sa.Column("function", sa.String(64), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("source", sa.String(255), nullable=False),
        sa.Column("subject", sa.String(255), nullable=True),
        sa.Column("consumer_group", sa.String(64), nullable=True),
        sa.Column("batch_size", sa.Integer, nullable=False),
        sa.Column("maximum_batching_window_s", sa.Float, nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("maximum_retry_attempts", sa.Integer, nullable=False),
        sa.Column("on_failure", sa.String(64), nullable=True),
        sa.Column("report_batch_item_failures", sa.Boolean, nullable=False),
        sa.Column("starting_position", sa.String(16), nullable=False),
        sa.Column("created_at", sa.Float(precision=53), nullable=False),
        sa.Column("updated_at", sa.Float(precision=53), nullable=False),
    )
    op.create_index("ix_event_source_mappings_function", "event_source_mappings", ["function"])


def downgrade() -> None:
    op.drop_table("event_source_mappings")
