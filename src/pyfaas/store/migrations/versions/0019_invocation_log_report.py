"""An invocation's log record keeps its REPORT figures in columns instead of its START, END
and REPORT lines in its text: the lines are made when the record is read. A no-output
invocation's record then stores no text at all (about half of what a record wrote).
Records stored before keep their whole text (the new columns are NULL).

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

_COLUMNS = (
    ("version", sa.String(16)),
    ("duration_us", sa.BigInteger()),
    ("billed_ms", sa.BigInteger()),
    ("memory_mb", sa.Integer()),
    ("max_memory_mb", sa.Integer()),
    ("init_us", sa.BigInteger()),
)


def upgrade() -> None:
    for name, type_ in _COLUMNS:
        op.add_column("invocation_logs", sa.Column(name, type_, nullable=True))


def downgrade() -> None:
    # Records stored since keep their output, not their START/END/REPORT lines.
    with op.batch_alter_table("invocation_logs") as batch:
        for name, _ in reversed(_COLUMNS):
            batch.drop_column(name)
