"""The same server on PostgreSQL: deploy, invoke and logs, with a fresh database per run."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from conftest import ServerProcess, deploy, postgres_database


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
