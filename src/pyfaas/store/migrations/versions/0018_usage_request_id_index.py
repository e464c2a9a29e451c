"""Usage records lose their index on request_id: no query reads records by request id, and
inserting every invocation's id into it cost a write of a random index page per record.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-02
"""

from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_usage_records_request_id", table_name="usage_records")


def downgrade() -> None:
    op.create_index("ix_usage_records_request_id", "usage_records", ["request_id"])
