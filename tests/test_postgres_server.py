"""The same server on PostgreSQL: deploy, invoke and logs, with a fresh database per run."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from conftest import ServerProcess, deploy, postgres_database, wait_for


@pytest.fixture(scope="module")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with postgres_database() as url:
        srv = ServerProcess(tmp_path_factory.mktemp("pg"), env={"PYFAAS_DATABASE_URL": url})
        srv.wait_ready()
        yield srv
        srv.stop()


@pytest.mark.postgres
def test_deploy_invoke_and_logs_on_postgresql(pg_server: ServerProcess) -> None:
    with pg_server.client() as api:
        code = "def handler(event, context):\n    print('pg says hi')\n    return event['x'] * 2\n"
        assert deploy(api, "double", {"handler.py": code}).status_code == 201
        response = api.post("/v1/functions/double/invoke", json={"x": 21})
        assert response.json() == 42
        records = api.get("/v1/functions/double/logs").json()["records"]
        assert "pg says hi" in records[-1]["text"]
        assert [f["name"] for f in api.get("/v1/functions").json()["functions"]] == ["double"]
    assert not (pg_server.home / "pyfaas.db").exists(), "nothing went to SQLite"


@pytest.mark.postgres
def test_nul_characters_neither_fail_requests_nor_lose_log_lines_on_postgresql(
    pg_server: ServerProcess,
) -> None:
    """PostgreSQL's text cannot hold NUL: a name holding one is simply not found, and text
    that holds one is stored with U+FFFD in its place (found by schemathesis)."""
    with pg_server.client() as api:
        missing = api.get("/v1/functions/a%00b")
        assert (missing.status_code, missing.json()["error"]["code"]) == (
            404,
            "function_not_found",
        )
        assert api.get("/v1/invocations", params={"function": "a\x00"}).json() == {
            "invocations": []
        }
        code = "def handler(event, context):\n    print('before\\x00after')\n    return 1\n"
        deployed = deploy(api, "nul-printer", {"handler.py": code}, description="a\x00b")
        assert deployed.status_code == 201, deployed.text
        assert api.get("/v1/functions/nul-printer").json()["description"] == "a\ufffdb"
        assert api.post("/v1/functions/nul-printer/invoke", json={}).json() == 1
        # The log batch holding that line is written, not dropped with its neighbours.
        wait_for(
            lambda: bool(api.get("/v1/functions/nul-printer/logs").json()["records"]),
            what="the log line with a NUL stored",
        )
        records = api.get("/v1/functions/nul-printer/logs").json()["records"]
        assert "before\ufffdafter" in records[-1]["text"]
        found = api.get("/v1/functions/nul-printer/logs", params={"filter": "before\x00"})
        assert len(found.json()["records"]) == 1
