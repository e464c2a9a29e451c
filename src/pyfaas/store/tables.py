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
    sa.Column("maximum_retry_attempts", sa.Integer, nullable=False, server_default="2"),
    sa.Column("maximum_event_age_s", sa.Integer, nullable=False, server_default="21600"),
    sa.Column("on_success", sa.String(64), nullable=True),
    sa.Column("on_failure", sa.String(64), nullable=True),
    sa.Column("wsgi", sa.String(256), nullable=True),
    sa.Column("asgi", sa.String(256), nullable=True),
    sa.Column("price_plan", sa.String(64), nullable=True),
    # {"VARIABLE": "secret name"} as JSON: secrets the function's workers get (migration 0011).
    sa.Column("secrets", sa.Text, nullable=False, server_default="{}"),
    # The last version number published (never reused, even after a delete).
    sa.Column("last_version", sa.Integer, nullable=False, server_default="0"),
    sa.Column("ephemeral_storage_mb", sa.Integer, nullable=False, server_default="512"),
    sa.Column("network", sa.String(8), nullable=False, server_default="host"),
    sa.Column("gpus", sa.Integer, nullable=False, server_default="0"),
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
    # Bytes of text (UTF-8): retention by size sums it without reading the text.
    sa.Column("size", sa.Integer, nullable=False, server_default="0"),
    # Retention by age deletes from the oldest timestamp up.
    sa.Index("ix_invocation_logs_timestamp", "timestamp"),
    # An invocation's record: ``text`` is the handler's output only (empty, or ending in a
    # newline), and these hold its REPORT figures; the START/END/REPORT lines are made from
    # them when it is read (model.invocation_log_text), not stored. NULL in a plain record,
    # whose text is all of it. init_us is 0 for a warm start.
    sa.Column("version", sa.String(16), nullable=True),
    sa.Column("duration_us", sa.BigInteger, nullable=True),
    sa.Column("billed_ms", sa.BigInteger, nullable=True),
    sa.Column("memory_mb", sa.Integer, nullable=True),
    sa.Column("max_memory_mb", sa.Integer, nullable=True),
    sa.Column("init_us", sa.BigInteger, nullable=True),
)

# Asynchronous invocations: the durable queue, their status, and the dead-letter queue
# (status 'dead'). One row per accepted event, kept after it finishes.
async_events = sa.Table(
    "async_events",
    metadata,
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
    # The version or alias invoked (NULL: $LATEST); each attempt resolves it again.
    sa.Column("qualifier", sa.String(128), nullable=True),
    # What the handler returned, once it succeeded (the SDK's FunctionCall.get reads it).
    sa.Column("result", sa.LargeBinary, nullable=True),
    sa.Index("ix_async_events_due", "status", "next_attempt_at"),
    # Must match store/events.py WAITING_SQL.
    sa.Index(
        "ix_async_events_waiting",
        "function",
        "next_attempt_at",
        sqlite_where=sa.text("status IN ('queued', 'failed')"),
        postgresql_where=sa.text("status IN ('queued', 'failed')"),
    ),
    sa.Index("ix_async_events_function_status", "function", "status"),
    sa.Index("ux_async_events_idempotency", "function", "idempotency_key", unique=True),
)

# Function URLs: one per function (qualifier NULL) and, once versions and aliases exist, one
# per qualifier. A function's URLs go with it (ON DELETE CASCADE).
function_urls = sa.Table(
    "function_urls",
    metadata,
    sa.Column("id", BigIntId, primary_key=True, autoincrement=True),
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
    # NULLs never collide in a unique index: the unqualified URL gets an index of its own.
    sa.Index(
        "ux_function_urls_unqualified",
        "function",
        unique=True,
        sqlite_where=sa.text("qualifier IS NULL"),
        postgresql_where=sa.text("qualifier IS NULL"),
    ),
    sa.Index("ux_function_urls_qualified", "function", "qualifier", unique=True),
)

# Schedules: each belongs to a function and goes with it (ON DELETE CASCADE; SQLite
# connections enable foreign keys). Every slot at or before handled_until was fired or
# skipped; the async queue's idempotency key makes a slot fire once across servers.
schedules = sa.Table(
    "schedules",
    metadata,
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
    sa.Index("ix_schedules_function", "function"),
    # The version or alias its events invoke (NULL: $LATEST).
    sa.Column("qualifier", sa.String(128), nullable=True),
)

# Metering: one row per invocation that ran (throttled calls did not). ``hour`` is
# started_at // 3600, kept so that reports group by hour or day (hour // 24) in plain
# integer SQL on SQLite and PostgreSQL alike.
usage_records = sa.Table(
    "usage_records",
    metadata,
    sa.Column("id", BigIntId, primary_key=True, autoincrement=True),
    sa.Column("function", sa.String(64), nullable=False),
    sa.Column("version", sa.String(16), nullable=False),
    sa.Column("request_id", sa.String(64), nullable=False),
    sa.Column("started_at", sa.Float(precision=53), nullable=False),
    sa.Column("hour", sa.Integer, nullable=False),
    sa.Column("duration_us", sa.BigInteger, nullable=False),
    sa.Column("billed_ms", sa.BigInteger, nullable=False),
    sa.Column("memory_mb", sa.Integer, nullable=False),
    sa.Column("max_memory_mb", sa.Integer, nullable=False),
    sa.Column("cpu_us", sa.BigInteger, nullable=True),
    sa.Column("init_us", sa.BigInteger, nullable=True),
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("price_plan", sa.String(64), nullable=False),
    sa.Index("ix_usage_records_started_at", "started_at"),
    sa.Index("ix_usage_records_function_started_at", "function", "started_at"),
)

# Event source mappings: a broker stream or queue feeding a function (sources room).
event_source_mappings = sa.Table(
    "event_source_mappings",
    metadata,
    sa.Column("uuid", sa.String(36), primary_key=True),
    sa.Column("function", sa.String(64), nullable=False, index=True),
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

# API tokens (access control): the SHA-256 of each token, never the token. Revoked tokens
# stay listed with revoked_at.
api_tokens = sa.Table(
    "api_tokens",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("token_sha256", sa.String(64), nullable=False),
    sa.Column("scopes", sa.String(64), nullable=False),
    sa.Column("functions", sa.Text, nullable=True),
    sa.Column("created_at", sa.Float(precision=53), nullable=False),
    sa.Column("revoked_at", sa.Float(precision=53), nullable=True),
)

# Secrets: each value encrypted with the server's key (AES-GCM, the name as associated data).
secrets = sa.Table(
    "secrets",
    metadata,
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("ciphertext", sa.LargeBinary, nullable=False),
    sa.Column("created_at", sa.Float(precision=53), nullable=False),
    sa.Column("updated_at", sa.Float(precision=53), nullable=False),
)

# Versions: immutable snapshots of a function ($LATEST is the functions row itself), numbered
# from functions.last_version, so that a number is never used twice. They go with their
# function (ON DELETE CASCADE); code_sha256 is indexed for code garbage collection.
function_versions = sa.Table(
    "function_versions",
    metadata,
    sa.Column(
        "function",
        sa.String(64),
        sa.ForeignKey("functions.name", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("config", sa.Text, nullable=False),
    sa.Column("code_sha256", sa.String(64), nullable=False, index=True),
    sa.Column("code_size", sa.BigInteger, nullable=False),
    sa.Column("layer_sha256", sa.String(64), nullable=True),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("created_at", sa.Float(precision=53), nullable=False),
)

# Aliases: a name for a version, and maybe a second version with a share of the traffic.
# The foreign keys to function_versions make "alias to a missing version" and "delete a
# version an alias uses" fail in the database itself, whatever the race.
function_aliases = sa.Table(
    "function_aliases",
    metadata,
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

# The uploaded zip of every stored code tree, on a database that several servers share:
# a server that never saw the deploy unpacks its code from here (disks are not shared).
code_blobs = sa.Table(
    "code_blobs",
    metadata,
    sa.Column("sha256", sa.String(64), primary_key=True),
    sa.Column("zip", sa.LargeBinary, nullable=False),
    sa.Column("created_at", sa.Float(precision=53), nullable=False),
)

# The latest canary rollout of each alias, watched by a server until its window ends; goes
# with the alias (and so with the function).
alias_rollouts = sa.Table(
    "alias_rollouts",
    metadata,
    sa.Column("function", sa.String(64), primary_key=True),
    sa.Column("alias", sa.String(128), primary_key=True),
    sa.Column("previous_version", sa.Integer, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("weight", sa.Float(precision=53), nullable=False),
    sa.Column("window_s", sa.Float(precision=53), nullable=False),
    sa.Column("error_threshold", sa.Float(precision=53), nullable=False),
    sa.Column("promote", sa.Boolean, nullable=False),
    sa.Column("state", sa.String(16), nullable=False, index=True),
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
