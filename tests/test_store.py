"""The store keeps functions and logs the same way on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from conftest import postgres_database
from pyfaas.model import (
    ConfigurationError,
    FunctionConfig,
    FunctionExists,
    FunctionNotFound,
    FunctionRecord,
    LogRecord,
    UsageRecord,
)
from pyfaas.model.events import SUCCEEDED
from pyfaas.store import Store, open_store
from pyfaas.store.batches import BatchWriter
from pyfaas.store.engine import MIGRATIONS
from pyfaas.store.events import NewEvent, Settlement
from pyfaas.store.tables import metadata


@pytest.fixture(scope="session")
def postgres_session_url() -> Iterator[str]:
    with postgres_database() as url:
        yield url


def _empty_postgres(url: str) -> str:
    """Give the test an empty database, as SQLite tests get a new file."""
    with psycopg.connect(url.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute("DROP SCHEMA public CASCADE")
        conn.execute("CREATE SCHEMA public")
    return url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A store URL with nothing in it yet, on each database pyfaas supports."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'home' / 'pyfaas.db'}"
    return _empty_postgres(request.getfixturevalue("postgres_session_url"))


def with_store(url: str, story: Callable[[Store], Awaitable[None]]) -> None:
    async def main() -> None:
        store = await open_store(url)
        try:
            await story(store)
        finally:
            await store.close()

    asyncio.run(main())


def record(
    name: str, *, sha: str = "a" * 64, at: float | None = None, **cfg: Any
) -> FunctionRecord:
    now = time.time() if at is None else at
    return FunctionRecord(
        config=FunctionConfig(name=name, **cfg),
        code_sha256=sha,
        code_size=1234,
        layer_sha256=None,
        version="$LATEST",
        created_at=now,
        updated_at=now,
    )


def schema(url: str) -> dict[str, Any]:
    """Tables, their columns and the Alembic revision, as the database reports them."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            inspector = sa.inspect(conn)
            tables = {
                t: sorted(c["name"] for c in inspector.get_columns(t))
                for t in inspector.get_table_names()
            }
            revision = conn.execute(sa.text("SELECT version_num FROM alembic_version")).all()
    finally:
        engine.dispose()
    return {"tables": tables, "revision": revision}


# --- migrations ---------------------------------------------------------------------------

HEAD = [(ScriptDirectory(str(MIGRATIONS)).get_current_head(),)]


def test_opening_a_migrated_database_again_changes_nothing_and_keeps_the_data(url: str) -> None:
    with_store(url, lambda store: store.create_function(record("kept")))
    before = schema(url)
    assert set(before["tables"]) == {
        "alembic_version",
        "functions",
        "invocation_logs",
        "async_events",
        "function_urls",
        "schedules",
        "usage_records",
        "event_source_mappings",
        "api_tokens",
        "secrets",
        "function_versions",
        "function_aliases",
        "code_blobs",
        "alias_rollouts",
    }
    assert before["revision"] == HEAD

    async def check(store: Store) -> None:
        assert [f.name for f in await store.list_functions()] == ["kept"]

    with_store(url, check)
    assert schema(url) == before


def test_two_servers_starting_on_a_new_database_migrate_it_once(url: str) -> None:
    async def both() -> None:
        stores = await asyncio.gather(open_store(url), open_store(url), open_store(url))
        await stores[0].create_function(record("seen-by-all"))
        for store in stores:
            assert (await store.get_function("seen-by-all")).name == "seen-by-all"
            await store.close()

    asyncio.run(both())
    assert schema(url)["revision"] == HEAD


@pytest.mark.slow
def test_server_processes_starting_together_on_a_new_database_all_come_up(url: str) -> None:
    opener = "import asyncio, sys; from pyfaas.store import open_store\n" + (
        "async def main():\n    await (await open_store(sys.argv[1])).close()\nasyncio.run(main())"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", opener, url], stderr=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    errors = [p.communicate(timeout=60)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, errors
    assert schema(url)["revision"] == HEAD


def test_the_migrations_build_exactly_the_schema_the_tables_declare(url: str) -> None:
    with_store(url, lambda store: store.close())
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            differences = compare_metadata(MigrationContext.configure(conn), metadata)
    finally:
        engine.dispose()
    assert differences == []


def test_upgrading_a_database_of_the_first_schema_keeps_its_functions(url: str) -> None:
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True)
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            config = Config()
            config.set_main_option("script_location", str(MIGRATIONS))
            config.attributes["connection"] = conn
            command.upgrade(config, "0001")
            conn.execute(
                sa.text(
                    "INSERT INTO functions VALUES ('old', 'handler.handler', 'python3.11', 256, "
                    "5, '{}', 'from 0001', :sha, 10, NULL, '$LATEST', 1.0, 2.0)"
                ),
                {"sha": "c" * 64},
            )
    finally:
        engine.dispose()

    async def check(store: Store) -> None:
        old = await store.get_function("old")
        assert (old.config.memory_mb, old.config.description) == (256, "from 0001")
        cfg = old.config
        assert (cfg.reserved_concurrency, cfg.provisioned_concurrency) == (None, 0)
        assert (cfg.concurrency_per_worker, cfg.idle_timeout_s) == (1, None)

    with_store(url, check)
    assert schema(url)["revision"] == HEAD


# --- functions ----------------------------------------------------------------------------


def test_a_function_round_trips_with_its_whole_configuration(url: str) -> None:
    original = FunctionRecord(
        config=FunctionConfig(
            name="full",
            handler="app.main.handle",
            runtime="python3.12",
            memory_mb=2048,
            timeout_s=900,
            environment={"GREETING": "grüß dich 🌍", "EMPTY": "", "JSON": '{"a": [1, "b"]}'},
            description="ünïcode and 'quotes'",
        ),
        code_sha256="c" * 64,
        code_size=250 * 1024 * 1024,
        layer_sha256="d" * 64,
        version="$LATEST",
        created_at=1_700_000_000.123456,
        updated_at=1_700_000_123.654321,
    )

    async def story(store: Store) -> None:
        await store.create_function(original)
        assert await store.get_function("full") == original
        assert await store.list_functions() == [original]

    with_store(url, story)


def test_functions_are_listed_by_name(url: str) -> None:
    async def story(store: Store) -> None:
        assert await store.list_functions() == []
        for name in ("b", "c-1", "a_2", "A"):
            await store.create_function(record(name))
        assert [f.name for f in await store.list_functions()] == sorted(["b", "c-1", "a_2", "A"])

    with_store(url, story)


def test_creating_a_taken_name_raises_function_exists_and_changes_nothing(url: str) -> None:
    async def story(store: Store) -> None:
        first = record("taken", environment={"V": "1"})
        await store.create_function(first)
        with pytest.raises(FunctionExists) as info:
            await store.create_function(record("taken", sha="b" * 64))
        assert info.value.code == "function_exists"
        assert await store.get_function("taken") == first

    with_store(url, story)


def test_racing_creates_of_one_name_have_exactly_one_winner(url: str) -> None:
    async def story(store: Store) -> None:
        outcomes = await asyncio.gather(
            *(store.create_function(record("contested", sha=f"{i:064x}")) for i in range(8)),
            return_exceptions=True,
        )
        assert sum(o is None for o in outcomes) == 1
        assert all(isinstance(o, FunctionExists) for o in outcomes if o is not None)

    with_store(url, story)


def test_put_creates_then_replaces_keeping_created_at(url: str) -> None:
    async def story(store: Store) -> None:
        first = record("put-me", at=1000.0, environment={"A": "1"})
        assert await store.put_function(first) is True
        second = record("put-me", sha="e" * 64, at=2000.0, memory_mb=256, environment={"B": "2"})
        assert await store.put_function(second) is False
        got = await store.get_function("put-me")
        assert got.created_at == 1000.0, "an update keeps the creation time"
        assert got.updated_at == 2000.0
        assert (got.code_sha256, got.config) == (second.code_sha256, second.config)

    with_store(url, story)


def test_racing_puts_of_a_new_name_create_it_once(url: str) -> None:
    async def story(store: Store) -> None:
        created = await asyncio.gather(*(store.put_function(record("raced")) for _ in range(8)))
        assert created.count(True) == 1
        assert [f.name for f in await store.list_functions()] == ["raced"]

    with_store(url, story)


def test_missing_functions_raise_function_not_found(url: str) -> None:
    async def story(store: Store) -> None:
        with pytest.raises(FunctionNotFound) as got:
            await store.get_function("ghost")
        with pytest.raises(FunctionNotFound) as deleted:
            await store.delete_function("ghost")
        assert got.value.code == deleted.value.code == "function_not_found"
        await store.create_function(record("brief"))
        await store.delete_function("brief")
        with pytest.raises(FunctionNotFound):
            await store.get_function("brief")
        assert await store.list_functions() == []

    with_store(url, story)


def test_code_is_referenced_while_a_function_runs_it(url: str) -> None:
    async def story(store: Store) -> None:
        assert not await store.code_referenced("1" * 64)
        await store.create_function(record("one", sha="1" * 64))
        await store.create_function(record("two", sha="1" * 64))
        assert await store.code_referenced("1" * 64)
        await store.delete_function("one")
        assert await store.code_referenced("1" * 64), "'two' still runs it"
        await store.put_function(record("two", sha="2" * 64))
        assert not await store.code_referenced("1" * 64)
        assert await store.code_referenced("2" * 64)

    with_store(url, story)


# --- logs ---------------------------------------------------------------------------------


def lines(function: str, request_id: str, count: int, start: int = 0) -> list[LogRecord]:
    return [
        LogRecord(function, request_id, 1_700_000_000.5 + i, f"{request_id} line {i}\n")
        for i in range(start, start + count)
    ]


def test_logs_come_back_in_the_order_written_with_increasing_ids(url: str) -> None:
    async def story(store: Store) -> None:
        await store.append_logs(lines("f", "r1", 3))
        await store.append_logs(lines("f", "r2", 2) + lines("other", "x", 1))
        await store.append_logs([])
        got = await store.query_logs("f")
        assert [r.text for r in got] == [r.text for r in lines("f", "r1", 3) + lines("f", "r2", 2)]
        assert [r.timestamp for r in got] == [r.timestamp for r in lines("f", "r1", 3)] + [
            r.timestamp for r in lines("f", "r2", 2)
        ]
        ids = [r.id for r in got]
        assert ids == sorted(set(ids)) and ids[0] > 0
        assert [r.request_id for r in await store.query_logs("other")] == ["x"]
        assert await store.query_logs("nobody") == []

    with_store(url, story)


def test_log_queries_by_request_tail_limit_and_follow(url: str) -> None:
    async def story(store: Store) -> None:
        await store.append_logs(lines("f", "a", 5) + lines("f", "b", 5) + lines("f", "a", 2, 5))
        every = await store.query_logs("f")
        texts = [r.text for r in every]

        assert [r.text for r in await store.query_logs("f", limit=3)] == texts[:3]
        assert [r.text for r in await store.query_logs("f", limit=3, tail=True)] == texts[-3:]
        assert await store.query_logs("f", limit=0) == []

        only_a = await store.query_logs("f", request_id="a")
        assert [r.text for r in only_a] == [f"a line {i}\n" for i in range(7)]
        tail_a = await store.query_logs("f", request_id="a", tail=True, limit=2)
        assert [r.text for r in tail_a] == ["a line 5\n", "a line 6\n"]

        # Following: poll with the last id seen, get only what came after it.
        last = every[-1].id
        assert await store.query_logs("f", after_id=last) == []
        await store.append_logs(lines("f", "c", 2))
        new = await store.query_logs("f", after_id=last)
        assert [r.text for r in new] == ["c line 0\n", "c line 1\n"]
        assert all(r.id > last for r in new)
        middle = every[4].id
        assert [r.id for r in await store.query_logs("f", after_id=middle, limit=2)] == [
            every[5].id,
            every[6].id,
        ]

    with_store(url, story)


def test_a_batch_of_logs_is_written_in_one_transaction_with_few_statements(url: str) -> None:
    inserts: list[bool] = []
    traced: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, _p: Any, _c: Any, many: bool) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO INVOCATION_LOGS"):
            inserts.append(many)

    async def story(store: Store) -> None:
        if store.is_sqlite:
            # SQLite batches bypass SQLAlchemy: they run on the store's own sqlite3 connection
            # in a thread (Transactions.in_thread); watch that connection's statements.
            await store.append_logs(lines("opening", "o", 1))
            direct = store._tx._direct
            assert direct is not None
            direct.set_trace_callback(traced.append)
        sa.event.listen(sa.engine.Engine, "before_cursor_execute", seen)
        try:
            await store.append_logs(lines("batched", "r", 200))
        finally:
            sa.event.remove(sa.engine.Engine, "before_cursor_execute", seen)
        assert len(await store.query_logs("batched")) == 200
        if store.is_sqlite:
            assert traced[0] == "BEGIN IMMEDIATE" and traced[-1] == "COMMIT"
            # One statement (its VALUES padded to 256 rows): the GIL changes hands per
            # statement, not per row; the ids come from its last rowid.
            assert sum(t.startswith("INSERT INTO") for t in traced) == 1
            assert len(traced) == 3  # BEGIN, the insert, COMMIT
        else:
            assert inserts == [True]

    with_store(url, story)


def test_a_batch_larger_than_one_statement_keeps_its_order_and_ids(url: str) -> None:
    async def story(store: Store) -> None:
        await store.append_logs(lines("f", "first", 1))
        written = await store.append_logs(lines("f", "big", 1000) + lines("g", "other", 3))
        stored = await store.query_logs("f", limit=2000)
        assert [r.text for r in stored] == ["first line 0\n"] + [
            f"big line {i}\n" for i in range(1000)
        ]
        assert [r.id for r in stored[1:]] == [r.id for r in written[:1000]]
        ids = [r.id for r in written]
        assert ids == sorted(ids) and len(set(ids)) == 1003 and ids[0] > stored[0].id
        assert [r.text for r in await store.query_logs("g")] == [
            f"other line {i}\n" for i in range(3)
        ]

    with_store(url, story)


def test_batches_of_every_size_store_exactly_their_rows_even_a_function_named_0(
    url: str,
) -> None:
    # On SQLite a batch's statement is padded with rows of zeros up to a power of two, which
    # are left out by their first value: a function named "0" (text) must not be.
    async def story(store: Store) -> None:
        for count in (1, 2, 3, 5, 127, 129, 257):
            written = await store.append_logs(lines("0", f"n{count}", count))
            stored = await store.query_logs("0", request_id=f"n{count}", limit=1000)
            assert [r.text for r in stored] == [r.text for r in written]
            assert [r.id for r in stored] == [r.id for r in written]
        assert len(await store.query_logs("0", limit=10_000)) == 1 + 2 + 3 + 5 + 127 + 129 + 257

    with_store(url, story)


def test_usage_records_keep_their_missing_values_as_null(url: str) -> None:
    async def story(store: Store) -> None:
        warm = usage("f", 3)
        cold = [
            r._replace(request_id=f"c{i}", init_us=2500, cpu_us=None) for i, r in enumerate(warm)
        ]
        await store.usage.append_usage(warm + cold[:2])
        [totals] = await store.usage.usage_totals(start=0, end=2e9, function="f")
        assert (totals.invocations, totals.cold_starts, totals.init_us) == (5, 2, 5000)
        assert totals.cpu_us == 3 * 90

    with_store(url, story)


def test_a_usage_record_is_counted_in_the_hour_it_started_even_at_an_hour_edge(url: str) -> None:
    # SQLite works the hour out as it inserts; PostgreSQL gets it from Python.
    edge = 3600.0 * 480_000
    starts = [edge - 1.5, edge - 1e-6, edge, edge + 1e-6, edge + 3599.999, 1.7e9 + 0.25]
    records = [r._replace(started_at=t) for r, t in zip(usage("h", 6), starts, strict=True)]

    async def story(store: Store) -> None:
        await store.usage.append_usage(records)
        async with store._engine.connect() as conn:
            rows = await conn.execute(
                sa.text("SELECT started_at, hour FROM usage_records ORDER BY started_at")
            )
            stored = [(started, hour) for started, hour in rows]
        assert stored == sorted((t, int(t // 3600)) for t in starts)
        hours = [472_222, 479_999, 479_999, 480_000, 480_000, 480_000]
        assert [hour for _, hour in stored] == hours

    with_store(url, story)


def usage(function: str, count: int) -> list[UsageRecord]:
    return [
        UsageRecord(
            function=function, version="$LATEST", request_id=f"u{i}", started_at=1.7e9 + i,
            duration_us=1500, billed_ms=2, memory_mb=128, max_memory_mb=20, cpu_us=90,
            init_us=None, outcome="success",
        )
        for i in range(count)
    ]  # fmt: skip


def test_usage_and_logs_handed_over_in_one_turn_share_one_transaction(tmp_path: Path) -> None:
    traced: list[str] = []

    async def story(store: Store) -> None:
        await store.append_logs(lines("opening", "o", 1))
        direct = store._tx._direct
        assert direct is not None
        direct.set_trace_callback(traced.append)
        # The usage and log writers flush in the same turn of the loop (BatchWriter).
        await asyncio.gather(
            store.usage.append_usage(usage("f", 40)), store.append_logs(lines("f", "r", 30))
        )
        assert len(await store.query_logs("f")) == 30
        totals = await store.usage.usage_totals(start=0, end=2e9, function="f")
        assert [t.invocations for t in totals] == [40]
        # One statement each, no savepoints: BEGIN, two INSERTs, COMMIT.
        assert traced[0] == "BEGIN IMMEDIATE" and traced[-1] == "COMMIT" and len(traced) == 4
        assert sum(t.startswith('INSERT INTO "usage_records"') for t in traced) == 1
        assert sum(t.startswith('INSERT INTO "invocation_logs"') for t in traced) == 1

    with_store(f"sqlite:///{tmp_path / 'pyfaas.db'}", story)


def test_a_write_that_fails_in_a_shared_transaction_is_rolled_back_alone(tmp_path: Path) -> None:
    def half_then_fail(conn: sqlite3.Connection) -> None:
        conn.execute(
            "INSERT INTO invocation_logs (function, request_id, timestamp, text, size)"
            " VALUES ('f', 'doomed', 1, 'never stored', 12)"
        )
        raise sqlite3.IntegrityError("this batch is refused")

    async def story(store: Store) -> None:
        await store.append_logs(lines("opening", "o", 1))
        failed, kept = await asyncio.gather(
            store._tx.in_thread(half_then_fail),
            store.append_logs(lines("f", "kept", 2)),
            return_exceptions=True,
        )
        assert isinstance(failed, sqlite3.IntegrityError)
        assert not isinstance(kept, BaseException)
        assert [r.request_id for r in await store.query_logs("f")] == ["kept", "kept"]
        # The writer goes on: the next batch is stored.
        await store.append_logs(lines("f", "later", 1))
        assert len(await store.query_logs("f")) == 3

    with_store(f"sqlite:///{tmp_path / 'pyfaas.db'}", story)


def test_deleting_a_function_deletes_its_logs_and_no_others(url: str) -> None:
    async def story(store: Store) -> None:
        await store.create_function(record("doomed"))
        await store.create_function(record("neighbour"))
        await store.append_logs(lines("doomed", "r", 3) + lines("neighbour", "n", 2))
        await store.delete_function("doomed")
        assert await store.query_logs("doomed") == []
        assert len(await store.query_logs("neighbour")) == 2

    with_store(url, story)


# --- opening a store ----------------------------------------------------------------------


def test_sqlite_runs_in_wal_mode_and_creates_its_directory(tmp_path: Path) -> None:
    path = tmp_path / "not" / "yet" / "there" / "pyfaas.db"
    pragmas: dict[str, object] = {}

    async def story(store: Store) -> None:
        await store.create_function(record("w"))

    def on_checkout(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        cursor = dbapi_connection.cursor()
        for name in ("synchronous", "foreign_keys", "busy_timeout"):
            cursor.execute(f"PRAGMA {name}")
            pragmas[name] = cursor.fetchone()[0]
        cursor.close()

    sa.event.listen(sa.pool.Pool, "checkout", on_checkout)
    try:
        with_store(f"sqlite:///{path}", story)
    finally:
        sa.event.remove(sa.pool.Pool, "checkout", on_checkout)
    with contextlib.closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert pragmas == {"synchronous": 2, "foreign_keys": 1, "busy_timeout": 5000}  # FULL


def test_an_accepted_event_is_fsynced_and_its_lease_and_outcome_are_not(tmp_path: Path) -> None:
    """Enqueue commits with synchronous=FULL; claiming, renewing and settling with NORMAL
    (WAL: a crash of the server loses none of them; a power cut may make an event run again,
    never lose it)."""
    checkouts: list[object] = []

    def on_checkout(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA synchronous")
        checkouts.append(cursor.fetchone()[0])
        cursor.close()

    async def story(store: Store) -> None:
        ids = [str(uuid.uuid4()) for _ in range(2)]
        steps: dict[str, Callable[[], Awaitable[object]]] = {
            "enqueue": lambda: store.events.enqueue(
                [NewEvent(i, "f", b"{}", None, time.time()) for i in ids]
            ),
            "claim": lambda: store.events.claim(
                now=time.time(), limit=2, lease_s=30, owner="me", function="f"
            ),
            "renew": lambda: store.events.renew(ids, owner="me", until=time.time() + 30),
            "settle": lambda: store.events.settle(
                [Settlement(i, "me", SUCCEEDED, time.time()) for i in ids]
            ),
        }
        for step, run in steps.items():
            checkouts.append(step)
            await run()

    sa.event.listen(sa.pool.Pool, "checkout", on_checkout)
    try:
        with_store(f"sqlite:///{tmp_path / 'pyfaas.db'}", story)
    finally:
        sa.event.remove(sa.pool.Pool, "checkout", on_checkout)
    first = {
        step: checkouts[checkouts.index(step) + 1]
        for step in ("enqueue", "claim", "renew", "settle")
    }
    assert first == {"enqueue": 2, "claim": 1, "renew": 1, "settle": 1}  # FULL, NORMAL


@pytest.mark.parametrize(
    "bad",
    ["mysql://root@localhost/db", "sqlite://", "sqlite:///:memory:", "not a url at all"],
)
def test_an_unsupported_store_url_is_a_configuration_error_naming_what_works(bad: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        asyncio.run(open_store(bad))
    assert "sqlite:///" in info.value.message
    assert "postgresql+psycopg://" in info.value.message


def test_an_unreachable_postgres_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError) as info:
        asyncio.run(open_store("postgresql+psycopg://postgres@127.0.0.1:1/nothing"))
    assert "cannot open the store database" in info.value.message


def test_two_batch_writers_with_one_interval_write_in_the_same_turn_of_the_loop() -> None:
    # So that the usage and the log batches reach Transactions.in_thread together and share a
    # transaction. Both are submitted in one period of the loop's clock (0.9 s apart from its
    # end); the first write to run schedules a callback, which must not run before the second.
    turns: list[str] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        both = asyncio.Event()

        def writer(name: str) -> Callable[[list[int]], Awaitable[None]]:
            async def write(batch: list[int]) -> None:
                if not turns:
                    loop.call_soon(turns.append, "next turn")
                turns.append(f"{name} {batch}")
                if len(turns) == 2:
                    both.set()

            return write

        first = BatchWriter(writer("usage"), name="usage", interval_s=1.0)
        second = BatchWriter(writer("logs"), name="logs", interval_s=1.0)
        await first.start()
        await second.start()
        try:
            await asyncio.sleep(1.0 - loop.time() % 1.0 + 0.01)  # just after a period begins
            first.submit(1)
            await asyncio.sleep(0.1)
            second.submit(2)
            second.submit(3)
            await asyncio.wait_for(both.wait(), 30)
            await asyncio.sleep(0)
        finally:
            await first.close()
            await second.close()

    asyncio.run(main())
    assert sorted(turns[:2]) == ["logs [2, 3]", "usage [1]"]  # timers due together: any order
    assert turns[2:] == ["next turn"]


def test_a_batch_writer_writes_what_came_during_a_write_at_its_next_tick_not_at_once() -> None:
    # Draining back to back made a busy server write tiny batches (a transaction and an fsync
    # each) as fast as they were stored; what arrives during a write waits for the next tick.
    written: list[list[int]] = []

    async def main() -> None:
        release, started = asyncio.Event(), asyncio.Event()

        async def write(batch: list[int]) -> None:
            written.append(batch)
            started.set()
            await release.wait()

        writer = BatchWriter(write, name="slow", interval_s=3600, max_batch=2)
        await writer.start()
        try:
            writer.submit(1)
            writer.submit(2)  # max_batch: written without waiting for the tick
            await asyncio.wait_for(started.wait(), 30)
            writer.submit(3)  # during the write
            release.set()
            for _ in range(20):
                await asyncio.sleep(0)
            assert written == [[1, 2]] and len(writer) == 1
        finally:
            await writer.close()  # stopping writes what is pending
        assert written == [[1, 2], [3]]

    asyncio.run(main())


def test_a_batch_writer_asks_its_interval_before_each_wait_and_retime_cuts_a_wait() -> None:
    written: list[list[int]] = []
    interval = [3600.0]

    async def main() -> None:
        done = asyncio.Event()

        async def write(batch: list[int]) -> None:
            written.append(batch)
            done.set()

        writer = BatchWriter(write, name="retimed", interval_s=lambda: interval[0])
        await writer.start()
        try:
            writer.submit(1)
            await asyncio.sleep(0.3)
            assert written == []  # waiting for the next multiple of an hour
            interval[0] = 0.02
            writer.retime()
            await asyncio.wait_for(done.wait(), 5)
            assert written == [[1]]
        finally:
            await writer.close()

    asyncio.run(main())
