"""The store on SQLite and on PostgreSQL: the same queries, the same answers."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import postgres_database
from pyfaas.model import (
    ConfigurationError,
    FunctionConfig,
    FunctionExists,
    FunctionNotFound,
    FunctionRecord,
    LogRecord,
)
from pyfaas.store import Store, open_store


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    with postgres_database() as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'db' / 'pyfaas.db'}"
    value: str = request.getfixturevalue("pg_url")
    return value


def record(name: str, sha: str = "a" * 64, **config: object) -> FunctionRecord:
    now = time.time()
    return FunctionRecord(
        config=FunctionConfig(name=name, **config),  # type: ignore[arg-type]
        code_sha256=sha,
        code_size=123,
        layer_sha256=None,
        version="$LATEST",
        created_at=now,
        updated_at=now,
    )


def run(coro_fn, url: str) -> None:  # type: ignore[no-untyped-def]
    async def main() -> None:
        store = await open_store(url)
        try:
            await coro_fn(store)
        finally:
            await store.close()

    asyncio.run(main())


def test_functions_round_trip_with_their_configuration(url: str) -> None:
    async def story(store: Store) -> None:
        for leftover in await store.list_functions():
            await store.delete_function(leftover.name)
        r = record(
            "b-func", environment={"KEY": "välue", "OTHER": ""}, memory_mb=512, description="d"
        )
        await store.create_function(r)
        await store.create_function(record("a-func"))
        got = await store.get_function("b-func")
        assert got == r
        assert [f.name for f in await store.list_functions()] == ["a-func", "b-func"]
        with pytest.raises(FunctionExists):
            await store.create_function(r)
        later = record("b-func", sha="b" * 64)
        assert await store.put_function(later) is False
        updated = await store.get_function("b-func")
        assert updated.code_sha256 == "b" * 64
        assert updated.created_at == r.created_at, "an update keeps created_at"
        assert await store.put_function(record("c-func")) is True
        assert await store.code_referenced("b" * 64)
        assert not await store.code_referenced("f" * 64)
        await store.delete_function("b-func")
        with pytest.raises(FunctionNotFound):
            await store.get_function("b-func")
        with pytest.raises(FunctionNotFound):
            await store.delete_function("b-func")

    run(story, url)


def test_logs_by_function_request_tail_and_follow(url: str) -> None:
    async def story(store: Store) -> None:
        await store.put_function(record("logger"))
        await store.append_logs(
            [LogRecord("logger", f"r{i}", 1000.0 + i, f"line {i}\n") for i in range(5)]
            + [LogRecord("someone-else", "x", 1.0, "other\n")]
        )
        everything = await store.query_logs("logger")
        assert [r.text for r in everything] == [f"line {i}\n" for i in range(5)]
        ids = [r.id for r in everything]
        assert ids == sorted(ids)
        tail = await store.query_logs("logger", limit=2, tail=True)
        assert [r.request_id for r in tail] == ["r3", "r4"]
        after = await store.query_logs("logger", after_id=ids[2])
        assert [r.request_id for r in after] == ["r3", "r4"]
        one = await store.query_logs("logger", request_id="r1")
        assert [r.text for r in one] == ["line 1\n"]
        await store.delete_function("logger")
        assert await store.query_logs("logger") == []
        assert len(await store.query_logs("someone-else")) == 1

    run(story, url)


def test_opening_twice_migrates_once(url: str) -> None:
    async def twice() -> None:
        first = await open_store(url)
        await first.put_function(record("kept"))
        second = await open_store(url)
        assert (await second.get_function("kept")).name == "kept"
        await second.delete_function("kept")
        await first.close()
        await second.close()

    asyncio.run(twice())


def test_sqlite_runs_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "wal.db"
    run(lambda store: store.put_function(record("w")), f"sqlite:///{path}")
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


@pytest.mark.parametrize("bad", ["mysql://localhost/db", "sqlite://", "not a url at all"])
def test_unsupported_database_urls_are_configuration_errors(bad: str) -> None:
    with pytest.raises(ConfigurationError):
        asyncio.run(open_store(bad))
