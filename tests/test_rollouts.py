"""Canary rollouts: `pyfaas deploy --publish --alias live --canary 10% --auto-rollback`
publishes, sends a share of the alias to the new version, and the server watches that
version's error rate (from the usage records) and rolls back, keeps the split or promotes."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import (
    PYFAAS,
    ServerProcess,
    deploy,
    postgres_database,
    run_cli,
    serving,
    tidy_client,
    unique,
    wait_for,
)

GOOD = "def handler(event, context):\n    return {{'code': {label!r}}}\n"
BAD = "def handler(event, context):\n    raise RuntimeError('the new version is broken')\n"


@pytest.fixture(scope="module")
def rollout_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server of its own that measures rollouts ten times a second."""
    env = {"PYFAAS_ROLLOUT_POLL_S": "0.1", "PYFAAS_IDLE_TIMEOUT_S": "30"}
    with serving(tmp_path_factory.mktemp("rollouts"), env) as server:
        yield server


@pytest.fixture()
def client(rollout_server: ServerProcess) -> Iterator[httpx.Client]:
    with tidy_client(rollout_server) as c:
        yield c


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json() if response.content else None


def code_dir(root: Path, source: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "handler.py").write_text(source)
    return root


class Traffic:
    """Invokes ``target`` over and over from a thread, as users would, until stopped."""

    def __init__(self, server: ServerProcess, target: str) -> None:
        self.codes: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(server, target), daemon=True)

    def _run(self, server: ServerProcess, target: str) -> None:
        with server.client() as c:
            while not self._stop.is_set():
                self.codes.append(c.post(f"/v1/functions/{target}/invoke", json={}).status_code)
                time.sleep(0.01)

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


def first_release(server: ServerProcess, directory: Path, name: str) -> None:
    """Deploy, publish version 1 and create the alias ``live`` on it (no canary yet)."""
    done = run_cli(
        "deploy", str(directory), "--name", name, "--publish", "--alias", "live", server=server
    )
    assert done.returncode == 0, done.stderr
    assert f"Created alias {name}:live -> 1 (100%)" in done.stderr


def test_a_failing_canary_is_rolled_back_by_the_server_and_the_deploy_fails(
    rollout_server: ServerProcess, client: httpx.Client, tmp_path: Path
) -> None:
    name = unique("canary-bad")
    directory = code_dir(tmp_path / "fn", GOOD.format(label="one"))
    first_release(rollout_server, directory, name)
    code_dir(directory, BAD)
    started = time.monotonic()
    with Traffic(rollout_server, f"{name}:live"):
        done = run_cli(
            "deploy", str(directory), "--name", name, "--publish", "--alias", "live",
            "--canary", "30%", "--auto-rollback", "--window", "60s", "--error-threshold", "5%",
            server=rollout_server,
        )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert time.monotonic() - started < 45, "rolled back as the errors came, not at the end"
    assert f"{name}:live -> 1 (70%), 2 (30%)" in done.stderr
    assert f"{name}:live rolled back" in done.stderr
    assert "back on version 1 (100%)" in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last == f"pyfaas: canary failed: {name}:live rolled back", done.stderr

    alias = ok(client.get(f"/v1/functions/{name}/aliases/live"))
    assert (alias["version"], alias["additional_version_weights"]) == ("1", {})
    rollout = ok(client.get(f"/v1/functions/{name}/aliases/live/rollout"))
    assert (rollout["state"], rollout["previous_version"], rollout["version"]) == (
        "rolled_back",
        "1",
        "2",
    )
    assert rollout["errors"] >= 1 and rollout["error_rate"] > 0.05
    assert rollout["finished_at"] is not None
    # After the rollback every invocation of the alias runs the old, working version.
    for _ in range(20):
        assert ok(client.post(f"/v1/functions/{name}/invoke", params={"qualifier": "live"}))
    shown = run_cli("alias", "rollout", name, "live", server=rollout_server)
    assert shown.returncode == 0, shown.stderr
    assert "rolled_back" in shown.stdout and "1 -> 2 (30%)" in shown.stdout


@pytest.mark.parametrize("promote", [False, True], ids=["passed", "promoted"])
def test_a_clean_window_passes_and_promote_moves_everything_to_the_new_version(
    rollout_server: ServerProcess, client: httpx.Client, tmp_path: Path, promote: bool
) -> None:
    name = unique("canary-good")
    directory = code_dir(tmp_path / "fn", GOOD.format(label="one"))
    first_release(rollout_server, directory, name)
    code_dir(directory, GOOD.format(label="two"))
    args = ["--promote"] if promote else []
    with Traffic(rollout_server, f"{name}:live") as traffic:
        done = run_cli(
            "deploy", str(directory), "--name", name, "--publish", "--alias", "live",
            "--canary", "50%", "--auto-rollback", "--window", "3s", *args,
            server=rollout_server,
        )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert set(traffic.codes) == {200}
    rollout = ok(client.get(f"/v1/functions/{name}/aliases/live/rollout"))
    assert rollout["invocations"] > 0 and rollout["errors"] == 0, rollout
    alias = ok(client.get(f"/v1/functions/{name}/aliases/live"))
    if promote:
        assert rollout["state"] == "promoted"
        assert f"{name}:live promoted" in done.stderr
        assert (alias["version"], alias["additional_version_weights"]) == ("2", {})
    else:
        assert rollout["state"] == "passed"
        assert f"{name}:live passed" in done.stderr and "the split stays" in done.stderr
        assert (alias["version"], alias["additional_version_weights"]) == ("1", {"2": 0.5})


def test_a_canary_without_auto_rollback_only_shifts_the_alias(
    rollout_server: ServerProcess, client: httpx.Client, tmp_path: Path
) -> None:
    name = unique("canary-plain")
    directory = code_dir(tmp_path / "fn", GOOD.format(label="one"))
    first_release(rollout_server, directory, name)
    code_dir(directory, GOOD.format(label="two"))
    done = run_cli(
        "deploy", str(directory), "--name", name, "--publish", "--alias", "live",
        "--canary", "0.1", server=rollout_server,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"{name}:live -> 1 (90%), 2 (10%)" in done.stderr
    alias = ok(client.get(f"/v1/functions/{name}/aliases/live"))
    assert alias["additional_version_weights"] == {"2": 0.1}
    assert client.get(f"/v1/functions/{name}/aliases/live/rollout").status_code == 404
    # Deploying the same code again publishes nothing and leaves the alias alone.
    again = run_cli(
        "deploy", str(directory), "--name", name, "--publish", "--alias", "live",
        server=rollout_server,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert "nothing changed since version 2" in again.stderr
    moved = ok(client.get(f"/v1/functions/{name}/aliases/live"))
    assert (moved["version"], moved["additional_version_weights"]) == ("2", {}), (
        "without --canary the alias moves to the new version"
    )


def test_an_app_deploy_rolls_out_only_the_functions_that_changed(
    rollout_server: ServerProcess, client: httpx.Client, tmp_path: Path
) -> None:
    app = unique("ro").replace("-", "")
    root = tmp_path / "app"
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir()
    (root / "pyfaas.toml").write_text(
        f'[app]\nname = "{app}"\n\n[functions.{app}-a]\npath = "a"\n\n'
        f'[functions.{app}-b]\npath = "b"\n'
    )
    (root / "a" / "handler.py").write_text(GOOD.format(label="a1"))
    (root / "b" / "handler.py").write_text(GOOD.format(label="b1"))
    first = run_cli("deploy", "--publish", "--alias", "live", server=rollout_server, cwd=root)
    assert first.returncode == 0, first.stderr
    assert f"Created alias {app}-a:live -> 1" in first.stderr
    assert f"Created alias {app}-b:live -> 1" in first.stderr

    (root / "b" / "handler.py").write_text(BAD)
    with Traffic(rollout_server, f"{app}-b:live"):
        done = run_cli(
            "deploy", "--publish", "--alias", "live", "--canary", "50%", "--auto-rollback",
            "--window", "60s", server=rollout_server, cwd=root,
        )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert f"{app}-a:live already sends everything to 1" in done.stderr
    assert done.stderr.strip().endswith(f"canary failed: {app}-b:live rolled back")
    b = ok(client.get(f"/v1/functions/{app}-b/aliases/live"))
    assert (b["version"], b["additional_version_weights"]) == ("1", {})
    assert client.get(f"/v1/functions/{app}-a/aliases/live/rollout").status_code == 404


def test_the_server_keeps_watching_after_the_cli_goes_and_across_a_restart(
    tmp_path: Path,
) -> None:
    env = {"PYFAAS_ROLLOUT_POLL_S": "0.1"}
    name = unique("canary-restart")
    with serving(tmp_path / "home", env) as first:
        directory = code_dir(tmp_path / "fn", GOOD.format(label="one"))
        first_release(first, directory, name)
        code_dir(directory, GOOD.format(label="two"))
        follower = subprocess.Popen(
            [PYFAAS, "deploy", str(directory), "--name", name, "--publish", "--alias", "live",
             "--canary", "20%", "--auto-rollback", "--window", "4s", "--promote",
             "--url", first.url],
            stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        with first.client() as c:
            wait_for(
                lambda: c.get(f"/v1/functions/{name}/aliases/live/rollout").status_code == 200,
                what="the rollout started",
            )
        follower.kill()  # the CLI goes away; the rollout does not
        follower.communicate()
    with serving(tmp_path / "home", env) as second, second.client() as c:
        rollout = c.get(f"/v1/functions/{name}/aliases/live/rollout").json()
        assert rollout["state"] in ("watching", "promoted"), rollout

        def promoted() -> bool:
            found = c.get(f"/v1/functions/{name}/aliases/live/rollout").json()
            return bool(found["state"] == "promoted")

        wait_for(promoted, timeout=20, what="the restarted server finished the rollout")
        alias = c.get(f"/v1/functions/{name}/aliases/live").json()
        assert (alias["version"], alias["additional_version_weights"]) == ("2", {})


def _versions(client: httpx.Client, name: str) -> None:
    """``name`` with versions 1 and 2 and alias live on 1."""
    ok(deploy(client, name, {"handler.py": GOOD.format(label="one")}), 201)
    ok(client.post(f"/v1/functions/{name}/versions"), 201)
    ok(deploy(client, name, {"handler.py": GOOD.format(label="two")}))
    ok(client.post(f"/v1/functions/{name}/versions"), 201)
    ok(client.put(f"/v1/functions/{name}/aliases/live", json={"version": 1}))


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"version": 2}, 400, "invalid_routing"),
        ({"version": 2, "weight": 0}, 400, "invalid_routing"),
        ({"version": 2, "weight": 1.5}, 400, "invalid_routing"),
        ({"version": 2, "weight": "10%"}, 400, "invalid_routing"),
        ({"weight": 0.1}, 400, "invalid_version"),
        ({"version": "$LATEST", "weight": 0.1}, 400, "invalid_version"),
        ({"version": 1, "weight": 0.1}, 400, "invalid_rollout"),
        ({"version": 2, "weight": 0.1, "window_s": 0}, 400, "invalid_rollout"),
        ({"version": 2, "weight": 0.1, "window_s": 100000}, 400, "invalid_rollout"),
        ({"version": 2, "weight": 0.1, "error_threshold": 1}, 400, "invalid_rollout"),
        ({"version": 2, "weight": 0.1, "error_threshold": -0.1}, 400, "invalid_rollout"),
        ({"version": 2, "weight": 0.1, "promote": "yes"}, 400, "invalid_rollout"),
        ({"version": 2, "weight": 0.1, "speed": 1}, 400, "unknown_field"),
        ({"version": 9, "weight": 0.1}, 404, "version_not_found"),
    ],
)
def test_a_bad_rollout_is_refused_and_the_alias_is_left_alone(
    client: httpx.Client, body: dict[str, Any], status: int, code: str
) -> None:
    name = unique("bad-rollout")
    _versions(client, name)
    response = client.post(f"/v1/functions/{name}/aliases/live/rollout", json=body)
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    assert response.json()["error"]["message"]
    alias = ok(client.get(f"/v1/functions/{name}/aliases/live"))
    assert (alias["version"], alias["additional_version_weights"]) == ("1", {})
    assert client.get(f"/v1/functions/{name}/aliases/live/rollout").status_code == 404


def test_one_rollout_at_a_time_and_missing_things_are_404(client: httpx.Client) -> None:
    name = unique("one-rollout")
    _versions(client, name)
    path = f"/v1/functions/{name}/aliases/live/rollout"
    body = {"version": 2, "weight": 0.1, "window_s": 600}
    started = ok(client.post(path, json=body), 201)
    assert (started["state"], started["previous_version"], started["weight"]) == (
        "watching",
        "1",
        0.1,
    )
    again = client.post(path, json=body)
    assert (again.status_code, again.json()["error"]["code"]) == (409, "rollout_in_progress")
    missing = client.post(f"/v1/functions/{name}/aliases/nope/rollout", json=body)
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "alias_not_found")
    gone = client.get(f"/v1/functions/{unique('nobody')}/aliases/live/rollout")
    assert (gone.status_code, gone.json()["error"]["code"]) == (404, "function_not_found")
    # Setting the alias by hand ends the watch; deleting the alias takes its rollout along.
    ok(client.put(f"/v1/functions/{name}/aliases/live", json={"version": 2}))
    wait_for(lambda: client.get(path).json()["state"] == "stopped", what="the watch stopped")
    assert "changed meanwhile" in client.get(path).json()["message"]
    assert client.delete(f"/v1/functions/{name}/aliases/live").status_code == 204
    ok(client.put(f"/v1/functions/{name}/aliases/live", json={"version": 1}))
    assert client.get(path).json()["error"]["code"] == "rollout_not_found"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--canary", "10%"), "--canary needs --alias NAME"),
        (("--alias", "live"), "--alias needs --publish"),
        (("--publish", "--alias", "live", "--canary", "150%"), "between 0% and 100%"),
        (("--publish", "--alias", "live", "--canary", "0%"), "between 0% and 100%"),
        (("--publish", "--alias", "live", "--canary", "lots"), "--canary takes a percentage"),
        (("--publish", "--alias", "live", "--auto-rollback"), "--auto-rollback needs --canary"),
        (("--publish", "--alias", "live", "--window", "60s"), "--window needs --auto-rollback"),
        (("--publish", "--alias", "live", "--promote"), "--promote needs --auto-rollback"),
        (
            ("--publish", "--alias", "live", "--error-threshold", "5%"),
            "--error-threshold needs --auto-rollback",
        ),
        (
            ("--publish", "--alias", "live", "--canary", "10%", "--auto-rollback", "--window",
             "soon"),
            "--window takes a duration",
        ),
        (
            ("--publish", "--alias", "live", "--canary", "10%", "--auto-rollback", "--window",
             "2d"),
            "--window takes a duration",
        ),
        (
            ("--publish", "--alias", "live", "--canary", "10%", "--auto-rollback", "--window",
             "0.5s"),
            "--window must be 1s to 24h",
        ),
        (
            ("--publish", "--alias", "live", "--canary", "10%", "--auto-rollback",
             "--error-threshold", "100%"),
            "--error-threshold takes 0% up to 100%",
        ),
        (("--publish", "--watch"), "--watch is for development"),
    ],
)  # fmt: skip
def test_bad_release_flags_are_one_line_errors_and_nothing_is_deployed(
    rollout_server: ServerProcess,
    client: httpx.Client,
    tmp_path: Path,
    args: tuple[str, ...],
    message: str,
) -> None:
    name = unique("flags")
    directory = code_dir(tmp_path / "fn", GOOD.format(label="one"))
    done = run_cli("deploy", str(directory), "--name", name, *args, server=rollout_server)
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pyfaas: ") and message in lines[0], lines
    assert client.get(f"/v1/functions/{name}").status_code == 404


def test_a_rollout_on_postgresql_rolls_back_a_failing_version(tmp_path: Path) -> None:
    with postgres_database() as url:
        env = {"PYFAAS_DATABASE_URL": url, "PYFAAS_ROLLOUT_POLL_S": "0.1"}
        with serving(tmp_path / "pg", env) as server, tidy_client(server) as pg:
            name = unique("pg-canary")
            ok(deploy(pg, name, {"handler.py": GOOD.format(label="one")}), 201)
            ok(pg.post(f"/v1/functions/{name}/versions"), 201)
            ok(deploy(pg, name, {"handler.py": BAD}))
            ok(pg.post(f"/v1/functions/{name}/versions"), 201)
            ok(pg.put(f"/v1/functions/{name}/aliases/live", json={"version": 1}))
            path = f"/v1/functions/{name}/aliases/live/rollout"
            ok(pg.post(path, json={"version": "2", "weight": 0.5, "window_s": 120}), 201)
            for _ in range(40):
                pg.post(f"/v1/functions/{name}/invoke", params={"qualifier": "live"}, json={})
            wait_for(lambda: pg.get(path).json()["state"] == "rolled_back", what="rollback")
            alias = ok(pg.get(f"/v1/functions/{name}/aliases/live"))
            assert (alias["version"], alias["additional_version_weights"]) == ("1", {})
