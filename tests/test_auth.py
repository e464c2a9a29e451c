"""API tokens: required when configured, and required to listen beyond loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from conftest import ServerProcess, run_cli

TOKEN = "s3cret-token-for-tests"


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    srv = ServerProcess(tmp_path_factory.mktemp("guarded"), env={"PYFAAS_TOKEN": TOKEN})
    srv.wait_ready()
    yield srv
    srv.stop()


def test_every_request_needs_the_token(guarded: ServerProcess) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
        for method, path in (
            ("GET", "/v1/functions"),
            ("GET", "/v1/health"),
            ("POST", "/v1/functions/x/invoke"),
            ("GET", "/v1/openapi.json"),
        ):
            response = httpx.request(method, guarded.url + path, headers=headers)
            assert response.status_code == 401
            assert response.json()["error"]["code"] == "unauthorized"
            assert response.headers["www-authenticate"] == "Bearer"
    ok = httpx.get(guarded.url + "/v1/functions", headers={"Authorization": f"Bearer {TOKEN}"})
    assert ok.status_code == 200


def test_the_cli_sends_the_token_from_the_environment(
    guarded: ServerProcess, tmp_path: Path
) -> None:
    (tmp_path / "handler.py").write_text("def handler(e, c):\n    return 'in'\n")
    assert run_cli("deploy", str(tmp_path), "-n", "guarded", server=guarded).returncode == 0
    assert run_cli("invoke", "guarded", server=guarded).stdout.strip() == '"in"'
    refused = run_cli("ls", env={"PYFAAS_URL": guarded.url, "PYFAAS_TOKEN": ""})
    assert refused.returncode == 1
    assert "requires an API token" in refused.stderr


def test_binding_beyond_loopback_without_a_token_refuses_to_start(tmp_path: Path) -> None:
    result = run_cli(
        "serve",
        "--host",
        "0.0.0.0",
        "--port",
        "0",
        env={"PYFAAS_HOME": str(tmp_path), "PYFAAS_TOKEN": ""},
        timeout=30,
    )
    assert result.returncode == 1
    assert "refusing to listen on 0.0.0.0 without an API token" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "pyfaas.db").exists()


def test_bad_server_settings_are_one_line_errors(tmp_path: Path) -> None:
    bad = run_cli(
        "serve", env={"PYFAAS_HOME": str(tmp_path), "PYFAAS_EXECUTOR": "warp"}, timeout=30
    )
    assert bad.returncode == 1 and "executor 'warp' is not available" in bad.stderr
    (tmp_path / "pyfaas.toml").write_text("[server]\nport = 'eighty'\n")
    broken = run_cli("serve", "--config", str(tmp_path / "pyfaas.toml"), timeout=30)
    assert broken.returncode == 1 and "bad configuration value" in broken.stderr
    for result in (bad, broken):
        assert "Traceback" not in result.stderr


def test_a_port_in_use_is_a_one_line_error_before_any_start_up_work(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli(
            "serve", "--port", str(port), env={"PYFAAS_HOME": str(tmp_path)}, timeout=30
        )
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "pyfaas.db").exists(), "no database was created"
