"""The queue of asynchronous invocations (and its dead-letter part), and each function's
settings for them: retries, maximum event age, destinations.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("functions") as batch:
        batch.add_column(
            sa.Column("maximum_retry_attempts", sa.Integer, nullable=False, server_default="2")
        )
        batch.add_column(
            sa.Column("maximum_event_age_s", sa.Integer, nullable=False, server_default="21600")
        )
        batch.add_column(sa.Column("on_success", sa.String(64), nullable=True))
        batch.add_column(sa.Column("on_failure", sa.String(64), nullable=True))
    op.create_table(
        "async_events",
        sa.Column("request_id", sa.String(64), primary_key=True),
        sa.Column("function", sa.String(64), nullable=False),
        sa.Column("payload", sa.LargeBinary, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("failures", sa.Integer, nullable=False),
        sa.Column("enqueued_at", sa.Float(precision=53), nullable=False),
        sa.Column("updated_at", sa.Float(precision=53), nullable=False),
        sa.Column("next_attempt_at", sa.Float(precision=53), nullable=False),
        sa.Column("lease_until", sa.Float(precision=53), nullable=True),
        sa.Column("leased_by", sa.String(64), nullable=True),
        sa.Column("idempotency_key", sa.String(256), nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("condition", sa.String(32), nullable=True),
    )
    op.create_index("ix_async_events_due", "async_events", ["status", "next_attempt_at"])
    op.create_index("ix_async_events_function_status", "async_events", ["function", "status"])
    op.create_index(
        "ux_async_events_idempotency",
        "async_events",
        ["function", "idempotency_key"],
        unique=True,
    )


def downgrade() -> None:
    op.drop_table("async_events")
    with op.batch_alter_table("functions") as batch:
        for column in ("on_failure", "on_success", "maximum_event_age_s", "maximum_retry_attempts"):
            batch.drop_column(column)
