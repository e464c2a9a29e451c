"""A partial index of the events waiting for an attempt, per function and next attempt: the
dispatcher finds due functions and claims their events without reading other functions'
backlogs or finished events.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

WAITING = sa.text("status IN ('queued', 'failed')")


def upgrade() -> None:
    op.create_index(
        "ix_async_events_waiting",
        "async_events",
        ["function", "next_attempt_at"],
        sqlite_where=WAITING,
        postgresql_where=WAITING,
    )


def downgrade() -> None:
    op.drop_index("ix_async_events_waiting", table_name="async_events")
