"""The schema, as SQLAlchemy Core tables. Alembic migrations create and evolve it."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

# SQLite only makes an INTEGER PRIMARY KEY the rowid (fast appends, increasing ids).
BigIntId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

functions = sa.Table(
    "functions",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("handler", sa.String(256), nullable=False),
    sa.Column("runtime", sa.String(32), nullable=False),
    sa.Column("memory_mb", sa.Integer, nullable=False),
    sa.Column("timeout_s", sa.Integer, nullable=False),
    sa.Column("environment", sa.Text, nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("code_sha256", sa.String(64), nullable=False, index=True),
    sa.Column("code_size", sa.BigInteger, nullable=False),
    sa.Column("layer_sha256", sa.String(64), nullable=True),
    sa.Column("version", sa.String(16), nullable=False),
    sa.Column("created_at", sa.Float(precision=53), nullable=False),
    sa.Column("updated_at", sa.Float(precision=53), nullable=False),
    sa.Column("reserved_concurrency", sa.Integer, nullable=True),
    sa.Column("provisioned_concurrency", sa.Integer, nullable=False, server_default="0"),
    sa.Column("concurrency_per_worker", sa.Integer, nullable=False, server_default="1"),
    sa.Column("idle_timeout_s", sa.Integer, nullable=True),
)

invocation_logs = sa.Table(
    "invocation_logs",
    metadata,
    sa.Column("id", BigIntId, primary_key=True, autoincrement=True),
    sa.Column("function", sa.String(64), nullable=False),
    sa.Column("request_id", sa.String(64), nullable=False),
    sa.Column("timestamp", sa.Float(precision=53), nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Index("ix_invocation_logs_function_id", "function", "id"),
    sa.Index("ix_invocation_logs_request_id", "request_id"),
)
