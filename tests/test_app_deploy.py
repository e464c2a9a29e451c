"""Apps: a folder with a pyfaas.toml, planned and deployed as one (changed parts only, all or
nothing), redeployed on every edit with --watch."""

from __future__ import annotations

import json
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from conftest import PYFAAS, ServerProcess, deploy, run_cli, serving, unique, wait_for

REDIS_URL = "redis://127.0.0.1:6379/0"
EXAMPLE_APP = Path(__file__).resolve().parents[1] / "examples" / "app"


@pytest.fixture(scope="module")
def app_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server of its own, quick to retry event sources and fire schedules."""
    env = {
        "PYFAAS_SCHEDULE_POLL_S": "0.2",
        "PYFAAS_SOURCE_BACKOFF_S": "0.2",
        "PYFAAS_RETRY_BASE_S": "0.2",
        "PYFAAS_IDLE_TIMEOUT_S": "30",
    }
    with serving(tmp_path_factory.mktemp("apps"), env) as srv:
        yield srv


@pytest.fixture()
def client(app_server: ServerProcess) -> Iterator[httpx.Client]:
    with app_server.client() as c:
        yield c


def handler_returning(value: str) -> str:
    return f"def handler(event, context):\n    return {{'version': {value!r}}}\n"


def write_app(root: Path, manifest: str, files: dict[str, str]) -> Path:
    """An app folder: ``pyfaas.toml`` and ``files`` (relative path -> text)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "pyfaas.toml").write_text(manifest)
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def cli(
    server: ServerProcess, *args: str, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, server=server, cwd=cwd, timeout=180)


def functions_of(client: httpx.Client, app: str) -> dict[str, dict[str, Any]]:
    listed = client.get("/v1/functions").json()["functions"]
    return {f["name"]: f for f in listed if f["description"].startswith(f"[app:{app}]")}


def invoke(client: httpx.Client, name: str, event: Any = None) -> Any:
    response = client.post(f"/v1/functions/{name}/invoke", json=event or {})
    assert response.status_code == 200, response.text
    return response.json()


def logs_of(client: httpx.Client, name: str) -> str:
    records = client.get(f"/v1/functions/{name}/logs").json()
    return json.dumps(records)


def line_of(text: str, snippet: str) -> int:
    """The 1-based line of ``text`` that holds ``snippet`` first."""
    return next(i for i, line in enumerate(text.splitlines(), 1) if snippet in line)


def shop(app: str, stream: str) -> str:
    """A manifest with every kind of trigger; function names carry the app's name."""
    return f"""
[app]
name = "{app}"

[defaults]
timeout_s = 5
environment = {{ STAGE = "test" }}

[functions.{app}-api]
path = "api"
description = "the HTTP API"
environment = {{ ROLE = "api" }}

[functions.{app}-api.url]
auth_type = "NONE"
cors = {{ allow_origins = ["https://shop.example"], allow_methods = ["GET"] }}

[functions.{app}-orders]
path = "orders"

[[functions.{app}-orders.sources]]
type = "redis"
url = "{REDIS_URL}"
stream = "{stream}"
batch_size = 5
maximum_batching_window_s = 0.1

[functions.{app}-report]
path = "report"
on_success = "{app}-audit"
maximum_retry_attempts = 0

[[functions.{app}-report.schedules]]
expression = "rate(1 hour)"
input = {{ kind = "hourly" }}

[functions.{app}-audit]
path = "audit"
"""


SHOP_FILES = {
    "api/handler.py": (
        "import os\n"
        "def handler(event, context):\n"
        "    return {'path': event['rawPath'], 'stage': os.environ['STAGE'],"
        " 'role': os.environ['ROLE']}\n"
    ),
    "orders/handler.py": (
        "import base64\n"
        "def handler(event, context):\n"
        "    for r in event['Records']:\n"
        "        print('order', base64.b64decode(r['kinesis']['data']).decode())\n"
        "    return {'n': len(event['Records'])}\n"
    ),
    "report/handler.py": handler_returning("report-1"),
    "audit/handler.py": (
        "def handler(event, context):\n"
        "    print('audit', event['requestContext']['condition'], event['responsePayload'])\n"
        "    return {}\n"
    ),
}


@pytest.fixture()
def shop_app(tmp_path: Path) -> tuple[str, str, Path]:
    app, stream = unique("shop"), f"orders-{uuid.uuid4().hex[:8]}"
    return app, stream, write_app(tmp_path / "shop", shop(app, stream), SHOP_FILES)


def test_plan_lists_functions_and_triggers_to_create_and_deploys_nothing(
    app_server: ServerProcess, client: httpx.Client, shop_app: tuple[str, str, Path]
) -> None:
    app, stream, root = shop_app
    shown = cli(app_server, "plan", cwd=root)
    assert shown.returncode == 0, shown.stderr
    for name in ("api", "orders", "report", "audit"):
        assert f"+ create function {app}-{name}" in shown.stdout
    assert "+ create url auth=NONE cors=https://shop.example" in shown.stdout
    assert "+ create schedule rate(1 hour)" in shown.stdout
    assert f"+ create source redis {stream}" in shown.stdout
    assert "Plan: 4 to create, 0 to update, 0 to delete (functions); 3 trigger change(s)." in (
        shown.stdout
    )
    assert functions_of(client, app) == {}
    # --dir plans the same app from elsewhere.
    elsewhere = cli(app_server, "plan", "--dir", str(root))
    assert elsewhere.stdout.splitlines()[1:] == shown.stdout.splitlines()[1:]


def test_deploy_creates_the_app_and_a_second_deploy_changes_nothing(
    app_server: ServerProcess, client: httpx.Client, shop_app: tuple[str, str, Path]
) -> None:
    app, stream, root = shop_app
    done = cli(app_server, "deploy", cwd=root)
    assert done.returncode == 0, done.stderr
    assert f"Deployed app {app}: 7 of 7 change(s) applied" in done.stdout
    deployed = functions_of(client, app)
    assert set(deployed) == {f"{app}-{n}" for n in ("api", "orders", "report", "audit")}
    api = deployed[f"{app}-api"]
    assert api["description"] == f"[app:{app}] the HTTP API"
    assert (api["timeout_s"], api["environment"]) == (5, {"STAGE": "test", "ROLE": "api"})
    assert deployed[f"{app}-report"]["on_success"] == f"{app}-audit"

    # The function URL, with its CORS settings.
    page = client.get(f"/fn/{app}-api/items", headers={"Origin": "https://shop.example"})
    assert page.json() == {"path": "/items", "stage": "test", "role": "api"}
    assert page.headers["access-control-allow-origin"] == "https://shop.example"
    # The schedule.
    schedules = client.get(f"/v1/functions/{app}-report/schedules").json()["schedules"]
    assert [(s["expression"], s["input"]) for s in schedules] == [
        ("rate(1 hour)", {"kind": "hourly"})
    ]
    # The queue consumer reads the Redis stream.
    redis.Redis.from_url(REDIS_URL).xadd(stream, {"data": "tea x2"})
    wait_for(lambda: "order tea x2" in logs_of(client, f"{app}-orders"), what="order consumed")
    # The async destination: report's result goes to audit.
    accepted = client.post(
        f"/v1/functions/{app}-report/invoke", json={}, headers={"X-Invocation-Type": "Event"}
    )
    assert accepted.status_code == 202
    wait_for(lambda: "report-1" in logs_of(client, f"{app}-audit"), what="destination record")

    again = cli(app_server, "deploy", cwd=root)
    assert again.returncode == 0, again.stderr
    assert "No changes: the deployed app matches the manifest." in again.stdout
    assert functions_of(client, app) == deployed  # same code, same updated_at: untouched
    assert client.get(f"/v1/functions/{app}-report/schedules").json()["schedules"] == schedules


def test_only_the_changed_function_is_redeployed(
    app_server: ServerProcess, client: httpx.Client, shop_app: tuple[str, str, Path]
) -> None:
    app, _, root = shop_app
    assert cli(app_server, "deploy", cwd=root).returncode == 0
    before = functions_of(client, app)
    (root / "report" / "handler.py").write_text(handler_returning("report-2"))
    manifest = (root / "pyfaas.toml").read_text()
    (root / "pyfaas.toml").write_text(
        manifest.replace(
            f'[functions.{app}-audit]\npath = "audit"',
            f'[functions.{app}-audit]\npath = "audit"\nmemory_mb = 256',
        )
    )

    shown = cli(app_server, "plan", cwd=root)
    assert f"~ update function {app}-report" in shown.stdout
    assert f"code: {before[f'{app}-report']['code_sha256'][:12]} ->" in shown.stdout
    assert f"~ update function {app}-audit" in shown.stdout
    assert "memory_mb: 128 -> 256" in shown.stdout
    assert f"= function {app}-api (unchanged)" in shown.stdout

    assert cli(app_server, "deploy", cwd=root).returncode == 0
    after = functions_of(client, app)
    for untouched in ("api", "orders"):
        assert after[f"{app}-{untouched}"] == before[f"{app}-{untouched}"]
    assert after[f"{app}-report"]["code_sha256"] != before[f"{app}-report"]["code_sha256"]
    assert invoke(client, f"{app}-report") == {"version": "report-2"}
    # A setting alone changes no code.
    audit = after[f"{app}-audit"]
    assert audit["memory_mb"] == 256
    assert audit["code_sha256"] == before[f"{app}-audit"]["code_sha256"]
    assert audit["updated_at"] > before[f"{app}-audit"]["updated_at"]


def test_triggers_follow_the_manifest_and_a_removed_function_is_deleted(
    app_server: ServerProcess, client: httpx.Client, shop_app: tuple[str, str, Path]
) -> None:
    app, stream, root = shop_app
    assert cli(app_server, "deploy", cwd=root).returncode == 0
    text = (root / "pyfaas.toml").read_text()
    orders = text.index(f"[functions.{app}-orders]")
    report = text.index(f"[functions.{app}-report]")
    text = text[:orders] + text[report:]  # the consumer goes, with its source
    text = text.replace('expression = "rate(1 hour)"', 'expression = "rate(2 hours)"')
    text = text.replace('allow_methods = ["GET"]', 'allow_methods = ["GET", "POST"]')
    (root / "pyfaas.toml").write_text(text)
    shown = cli(app_server, "plan", cwd=root)
    assert f"- delete function {app}-orders" in shown.stdout
    assert f"- delete source redis {stream}" in shown.stdout
    assert "+ create schedule rate(2 hours)" in shown.stdout
    assert "- delete schedule rate(1 hour)" in shown.stdout
    assert "~ update url" in shown.stdout

    assert cli(app_server, "deploy", cwd=root).returncode == 0
    assert f"{app}-orders" not in functions_of(client, app)
    mappings = client.get("/v1/event-source-mappings", params={"function": f"{app}-orders"})
    assert mappings.json()["event_source_mappings"] == []
    schedules = client.get(f"/v1/functions/{app}-report/schedules").json()["schedules"]
    assert [s["expression"] for s in schedules] == ["rate(2 hours)"]
    url = client.get(f"/v1/functions/{app}-api/url").json()
    assert url["cors"]["allow_methods"] == ["GET", "POST"]
    assert "No changes" in cli(app_server, "plan", cwd=root).stdout


def test_a_failing_deploy_rolls_back_and_the_old_app_keeps_serving(
    app_server: ServerProcess, client: httpx.Client, tmp_path: Path
) -> None:
    app = unique("roll")
    manifest = f"""
[app]
name = "{app}"

[functions.{app}-b]
path = "b"

[functions.{app}-c]
path = "c"
"""
    root = write_app(
        tmp_path / "app",
        manifest,
        {"b/handler.py": handler_returning("b-1"), "c/handler.py": handler_returning("c-1")},
    )
    assert cli(app_server, "deploy", cwd=root).returncode == 0
    before = functions_of(client, app)

    # A new function (created first), b changed and working, c changed and failing at import.
    write_app(
        root,
        manifest + f'\n[functions.{app}-a]\npath = "a"\n',
        {
            "a/handler.py": handler_returning("a-1"),
            "b/handler.py": handler_returning("b-2"),
            "c/handler.py": "import no_such_module\n" + handler_returning("c-2"),
        },
    )
    failed = cli(app_server, "deploy", cwd=root)
    assert failed.returncode == 1
    assert f"update {app}-c (pyfaas.toml:{line_of(manifest, f'[functions.{app}-c]')}) failed" in (
        failed.stderr
    )
    assert "no_such_module" in failed.stderr and "[handler_init_error]" in failed.stderr
    assert "rolled back 2 change(s): the app is as it was before this deploy" in failed.stderr
    assert "Traceback" not in failed.stderr
    after = functions_of(client, app)
    assert set(after) == set(before)  # a is gone again
    for name in before:
        assert after[name]["code_sha256"] == before[name]["code_sha256"]
    assert invoke(client, f"{app}-b") == {"version": "b-1"}
    assert invoke(client, f"{app}-c") == {"version": "c-1"}


def test_a_trigger_the_server_refuses_rolls_back_the_functions_too(
    app_server: ServerProcess, client: httpx.Client, tmp_path: Path
) -> None:
    app = unique("trig")
    manifest = f'[app]\nname = "{app}"\n\n[functions.{app}-f]\npath = "f"\n'
    root = write_app(tmp_path / "app", manifest, {"f/handler.py": handler_returning("f-1")})
    assert cli(app_server, "deploy", cwd=root).returncode == 0
    before = functions_of(client, app)
    bad = (
        manifest
        + f'timeout_s = 7\n\n[[functions.{app}-f.schedules]]\nexpression = "rate(0 minutes)"\n'
    )
    write_app(root, bad, {"f/handler.py": handler_returning("f-2")})
    failed = cli(app_server, "deploy", cwd=root)
    assert failed.returncode == 1
    assert "create schedule rate(0 minutes)" in failed.stderr
    assert "[invalid_schedule_expression]" in failed.stderr
    assert "rolled back 1 change(s)" in failed.stderr
    after = functions_of(client, app)
    assert after[f"{app}-f"]["code_sha256"] == before[f"{app}-f"]["code_sha256"]
    assert after[f"{app}-f"]["timeout_s"] == 3
    assert client.get(f"/v1/functions/{app}-f/schedules").json()["schedules"] == []
    assert invoke(client, f"{app}-f") == {"version": "f-1"}


def test_the_code_endpoint_gives_back_code_with_the_same_hash(
    client: httpx.Client, app_server: ServerProcess
) -> None:
    name = unique("code")
    files = {"handler.py": handler_returning("x"), "bin/tool": "#!/bin/sh\n", "data/a.txt": "a"}
    created = deploy(client, name, files).json()
    code = client.get(f"/v1/functions/{name}/code")
    assert code.headers["content-type"] == "application/zip"
    assert code.headers["x-pyfaas-code-sha256"] == created["code_sha256"]
    again = deploy(client, name, code.content).json()
    assert (again["code_sha256"], again["changed"]) == (created["code_sha256"], False)
    assert client.get("/v1/functions/nope-nope/code").json()["error"]["code"] == (
        "function_not_found"
    )


class _Output:
    """Collects a process's output lines in a thread, so a test can wait for one."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.text = ""
        assert proc.stdout is not None
        self._thread = threading.Thread(target=self._read, args=(proc.stdout,), daemon=True)
        self._thread.start()

    def _read(self, stream: Any) -> None:
        for line in stream:
            self.text += line


def test_watch_redeploys_after_an_edit_and_shows_the_new_codes_latency(
    app_server: ServerProcess, client: httpx.Client, tmp_path: Path
) -> None:
    app = unique("watch")
    manifest = f'[app]\nname = "{app}"\n\n[functions.{app}-w]\npath = "w"\n'
    root = write_app(tmp_path / "app", manifest, {"w/handler.py": handler_returning("w-1")})
    proc = subprocess.Popen(
        [PYFAAS, "deploy", "--watch", "--app", str(root), "--url", app_server.url],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output = _Output(proc)
    try:
        wait_for(lambda: "Watching" in output.text, timeout=60, what="first deploy")
        assert invoke(client, f"{app}-w") == {"version": "w-1"}
        assert f"{app}-w: init " in output.text and "first call" in output.text
        started = time.monotonic()
        (root / "w" / "handler.py").write_text(handler_returning("w-2"))
        wait_for(
            lambda: invoke(client, f"{app}-w") == {"version": "w-2"},
            timeout=30,
            what="redeployed after the edit",
        )
        assert time.monotonic() - started < 30
        wait_for(lambda: output.text.count("first call") >= 2, what="latency of the new code")
        assert "Changed: handler.py" in output.text
        # A broken edit is reported; the last good code keeps serving, and watching goes on.
        (root / "w" / "handler.py").write_text("def handler(:\n")
        wait_for(lambda: "handler_syntax_error" in output.text, what="error shown")
        assert invoke(client, f"{app}-w") == {"version": "w-2"}
        assert proc.poll() is None
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_the_example_app_plans_cleanly(app_server: ServerProcess) -> None:
    shown = cli(app_server, "plan", "--dir", str(EXAMPLE_APP))
    assert shown.returncode == 0, shown.stderr
    assert "Plan: 4 to create" in shown.stdout


GOOD = '[app]\nname = "{app}"\n\n[functions.{app}-f]\npath = "f"\n'


def _case(extra: str, snippet: str, message: str, base: str = GOOD) -> tuple[str, str | None, str]:
    return base + extra, snippet, message


MANIFEST_ERRORS = {
    "unknown top-level key": _case("\n[server]\nport = 1\n", "[server]", "server: unknown key"),
    "unknown function key": _case(
        "memroy_mb = 256\n", "memroy_mb", "functions.{app}-f.memroy_mb: unknown key"
    ),
    "wrong type": _case(
        'memory_mb = "big"\n', "memory_mb", "memory_mb: must be an integer, got a string"
    ),
    "bool for an int": _case(
        "timeout_s = true\n", "timeout_s", "timeout_s: must be an integer, got true or false"
    ),
    "env value not a string": _case(
        "environment = { DEBUG = 1 }\n", "environment", "environment.DEBUG: must be a string"
    ),
    "reserved env var": _case(
        'environment = { AWS_LAMBDA_X = "1" }\n', "environment", "is reserved by the runtime"
    ),
    "handler module missing": _case(
        'handler = "nothere.handler"\n', "nothere", "handler: module 'nothere' is not in f"
    ),
    "bad handler shape": _case(
        'handler = "handler"\n', 'handler = "handler"', "handler: handler 'handler' must look like"
    ),
    "web app module missing": _case(
        'asgi = "main:app"\n', "asgi", "asgi: module 'main' is not in f"
    ),
    "path missing": _case(
        '\n[functions.{app}-g]\npath = "nowhere"\n',
        'path = "nowhere"',
        "functions.{app}-g.path: 'nowhere' is not a directory",
    ),
    "destination outside the app": _case(
        'on_failure = "elsewhere"\n', "on_failure", "'elsewhere' is not a function of this app"
    ),
    "destination cycle": _case(
        'on_success = "{app}-g"\n\n[functions.{app}-g]\npath = "f"\non_failure = "{app}-h"\n\n'
        '[functions.{app}-h]\npath = "f"\non_success = "{app}-f"\n',
        'on_success = "{app}-g"',
        "destinations form a cycle ({app}-f -> {app}-g -> {app}-h -> {app}-f)",
    ),
    "url without auth_type": _case(
        "\n[functions.{app}-f.url]\ncors = {}\n", "[functions.{app}-f.url]", "url: needs auth_type"
    ),
    "bad auth_type": _case(
        '\n[functions.{app}-f.url]\nauth_type = "OPEN"\n', "auth_type", "url.auth_type:"
    ),
    "bad cors origin": _case(
        '\n[functions.{app}-f.url]\nauth_type = "NONE"\n'
        'cors = { allow_origins = ["shop.example/x"] }\n',
        "cors",
        "url.cors: cors.allow_origins entry 'shop.example/x'",
    ),
    "schedule without expression": _case(
        "\n[[functions.{app}-f.schedules]]\nenabled = true\n",
        "[[functions",
        "schedules[0]: needs an expression",
    ),
    "second schedule bad missed_runs": _case(
        '\n[[functions.{app}-f.schedules]]\nexpression = "rate(1 hour)"\n\n'
        '[[functions.{app}-f.schedules]]\nexpression = "rate(2 hours)"\nmissed_runs = "all"\n',
        "missed_runs",
        "schedules[1].missed_runs: must be one of fire_once, skip",
    ),
    "bad source type": _case(
        '\n[[functions.{app}-f.sources]]\ntype = "kafka"\nstream = "s"\n',
        'type = "kafka"',
        "sources[0].type: type must be one of redis",
    ),
    "bad batch size": _case(
        f'\n[[functions.{{app}}-f.sources]]\ntype = "redis"\nurl = "{REDIS_URL}"\n'
        'stream = "s"\nbatch_size = 0\n',
        "batch_size",
        "sources[0].batch_size: batch_size must be an integer from 1",
    ),
    "no app name": ("[app]\n\n[functions.f]\n", "[app]", "app: needs a name"),
    "no functions": ('[app]\nname = "{app}"\n', None, "functions: declare at least one function"),
    "not TOML": (
        GOOD + "memory_mb = \n",
        "memory_mb",
        "not valid TOML: Invalid value (at line {line}",
    ),
}


@pytest.mark.parametrize("case", sorted(MANIFEST_ERRORS))
def test_each_manifest_error_names_file_line_and_key_and_deploys_nothing(
    case: str, app_server: ServerProcess, client: httpx.Client, tmp_path: Path
) -> None:
    app = unique("bad")
    template, snippet, message = MANIFEST_ERRORS[case]
    text = template.replace("{app}", app)
    root = write_app(tmp_path / "app", text, {"f/handler.py": handler_returning("f")})
    line = line_of(text, snippet.replace("{app}", app)) if snippet else None
    for command in ("plan", "deploy"):
        result = cli(app_server, command, cwd=root)
        assert result.returncode == 1, result.stdout
        expected = message.replace("{app}", app).replace("{line}", str(line))
        assert expected in result.stderr.replace("\n", " "), result.stderr
        if case == "not TOML":
            assert "pyfaas.toml: not valid TOML" in result.stderr
        elif line is not None:
            assert f"pyfaas.toml:{line}: " in result.stderr, result.stderr
        else:
            assert "pyfaas.toml: functions: " in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
    assert functions_of(client, app) == {}


def test_a_setting_out_of_the_servers_range_is_located_and_rolled_back(
    app_server: ServerProcess, client: httpx.Client, tmp_path: Path
) -> None:
    app = unique("range")
    text = GOOD.replace("{app}", app) + f'\n[functions.{app}-g]\npath = "f"\nmemory_mb = 64\n'
    root = write_app(tmp_path / "app", text, {"f/handler.py": handler_returning("f")})
    result = cli(app_server, "deploy", cwd=root)
    assert result.returncode == 1
    assert f"(pyfaas.toml:{line_of(text, f'[functions.{app}-g]')}) failed" in result.stderr
    assert "[invalid_memory]" in result.stderr
    assert "rolled back 1 change(s)" in result.stderr
    assert functions_of(client, app) == {}


def test_app_deploy_refuses_names_of_other_functions_and_mixed_options(
    app_server: ServerProcess, client: httpx.Client, tmp_path: Path
) -> None:
    app = unique("own")
    taken = f"{app}-f"
    deploy(client, taken, {"handler.py": handler_returning("theirs")})
    root = write_app(
        tmp_path / "app", GOOD.replace("{app}", app), {"f/handler.py": handler_returning("f")}
    )
    result = cli(app_server, "deploy", cwd=root)
    assert result.returncode == 1
    assert f"a function named '{taken}' exists and is not part of any app" in result.stderr
    assert invoke(client, taken) == {"version": "theirs"}

    both = cli(app_server, "deploy", str(root / "f"), "--app", str(root))
    assert "give PATH (one function) or --app DIR (an app), not both" in both.stderr
    named = cli(app_server, "deploy", "--name", "x", cwd=root)
    assert "--name apply to one function" in named.stderr
    watch = cli(app_server, "deploy", str(root / "f"), "--watch")
    assert "--watch deploys an app" in watch.stderr
    nothing = cli(app_server, "plan", cwd=tmp_path)
    assert nothing.returncode == 1 and "no pyfaas.toml in" in nothing.stderr
    for result in (both, named, watch, nothing):
        assert result.returncode == 1 and "Traceback" not in result.stderr


def test_requirements_in_the_manifest_reach_the_bundle(
    app_server: ServerProcess, client: httpx.Client, tmp_path: Path
) -> None:
    """A requirements list is written as the bundle's requirements.txt (here: none to
    install, so the test needs no index), and it is part of the code hash."""
    app = unique("reqs")
    handler = (
        "import pathlib\n"
        "def handler(event, context):\n"
        "    return pathlib.Path(__file__).with_name('requirements.txt').read_text()\n"
    )
    text = GOOD.replace("{app}", app) + 'requirements = ["# pinned nothing"]\n'
    root = write_app(tmp_path / "app", text, {"f/handler.py": handler})
    assert cli(app_server, "deploy", cwd=root).returncode == 0
    assert invoke(client, f"{app}-f") == "# pinned nothing\n"
    assert "No changes" in cli(app_server, "plan", cwd=root).stdout
    assert not (root / "f" / "requirements.txt").exists()


def test_the_clients_code_hash_is_the_servers_code_sha256(
    app_server: ServerProcess, client: httpx.Client, tmp_path: Path
) -> None:
    """Unchanged code is never sent: the hash the CLI computes from a directory is the
    code_sha256 the server gives the uploaded tree (modes and symlinks included)."""
    from pyfaas.packaging.tree_hash import directory_sha256

    name = unique("hash")
    root = write_app(tmp_path / name, "", {"handler.py": handler_returning("h"), "pkg/m.py": ""})
    (root / "pyfaas.toml").unlink()
    (root / "run.sh").write_text("#!/bin/sh\n")
    (root / "run.sh").chmod(0o755)
    (root / "link").symlink_to("pkg")
    (root / "__pycache__").mkdir()
    (root / "__pycache__" / "x.pyc").write_bytes(b"debris")
    assert cli(app_server, "deploy", str(root)).returncode == 0
    served = client.get(f"/v1/functions/{name}").json()["code_sha256"]
    assert directory_sha256(root) == served
    (root / "run.sh").chmod(0o644)
    assert directory_sha256(root) != served


# --- pyfaas.yaml ----------------------------------------------------------------------------

SHOP_YAML = """
app:
  name: {app}
defaults:
  timeout_s: 5
  environment: {{STAGE: test}}
functions:
  {app}-api:
    path: api
    description: the HTTP API
    environment: {{ROLE: api}}
    url:
      auth_type: NONE
  {app}-report:
    path: report
    on_success: {app}-audit
    maximum_retry_attempts: 0
    schedules:
      - expression: rate(1 hour)
        input: {{kind: hourly}}
  {app}-audit:
    path: audit
"""


def test_a_pyfaas_yaml_app_deploys_like_a_toml_one_and_a_second_deploy_changes_nothing(
    app_server: ServerProcess, client: httpx.Client, tmp_path: Path
) -> None:
    app = unique("yml")
    files = {k: v for k, v in SHOP_FILES.items() if not k.startswith("orders")}
    root = write_app(tmp_path / "app", "", files)
    (root / "pyfaas.toml").unlink()
    (root / "pyfaas.yaml").write_text(SHOP_YAML.format(app=app))
    shown = cli(app_server, "plan", cwd=root)
    assert shown.returncode == 0, shown.stderr
    assert "Plan: 3 to create, 0 to update, 0 to delete (functions); 2 trigger" in shown.stdout
    done = cli(app_server, "deploy", cwd=root)
    assert done.returncode == 0, done.stderr
    deployed = functions_of(client, app)
    api = deployed[f"{app}-api"]
    assert (api["timeout_s"], api["environment"]) == (5, {"STAGE": "test", "ROLE": "api"})
    assert api["description"] == f"[app:{app}] the HTTP API"
    assert deployed[f"{app}-report"]["on_success"] == f"{app}-audit"
    assert client.get(f"/fn/{app}-api/items").json()["path"] == "/items"
    schedules = client.get(f"/v1/functions/{app}-report/schedules").json()["schedules"]
    assert [(s["expression"], s["input"]) for s in schedules] == [
        ("rate(1 hour)", {"kind": "hourly"})
    ]
    again = cli(app_server, "deploy", cwd=root)
    assert again.returncode == 0, again.stderr
    assert "No changes: the deployed app matches the manifest." in again.stdout
    assert functions_of(client, app) == deployed


GOOD_YAML = "app:\n  name: {app}\nfunctions:\n  {app}-f:\n    path: f\n"
YAML_ERRORS = {
    "unknown function key": (
        GOOD_YAML + "    memroy_mb: 256\n",
        "memroy_mb",
        "functions.{app}-f.memroy_mb: unknown key",
    ),
    "wrong type": (
        GOOD_YAML + "    memory_mb: big\n",
        "memory_mb",
        "functions.{app}-f.memory_mb: must be an integer, got a string",
    ),
    "schedule without expression": (
        GOOD_YAML + "    schedules:\n      - enabled: true\n",
        "- enabled",
        "functions.{app}-f.schedules[0]: needs an expression",
    ),
    "empty defaults": (
        "defaults:\n" + GOOD_YAML,
        "defaults:",
        "defaults: must be a table, got nothing (null)",
    ),
    "key not a string": (
        GOOD_YAML + "    environment:\n      1: one\n",
        "1: one",
        "key 1 must be a string (quote it)",
    ),
    "not YAML": (GOOD_YAML + "    memory_mb: [256\n", None, "not valid YAML"),
    "not a mapping": ("- app\n- functions\n", None, "the document must be a mapping"),
}


@pytest.mark.parametrize("case", sorted(YAML_ERRORS))
def test_each_yaml_manifest_error_names_file_line_and_key_and_deploys_nothing(
    case: str, app_server: ServerProcess, client: httpx.Client, tmp_path: Path
) -> None:
    app = unique("badyml")
    template, snippet, message = YAML_ERRORS[case]
    text = template.replace("{app}", app)
    root = write_app(tmp_path / "app", "", {"f/handler.py": handler_returning("f")})
    (root / "pyfaas.toml").unlink()
    (root / "pyfaas.yaml").write_text(text)
    for command in ("plan", "deploy"):
        result = cli(app_server, command, cwd=root)
        assert result.returncode == 1, result.stdout
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
        assert message.replace("{app}", app) in lines[0], lines[0]
        where = "pyfaas.yaml"
        if snippet is not None:
            where += f":{line_of(text, snippet.replace('{app}', app))}: "
        assert where in lines[0], lines[0]
    assert functions_of(client, app) == {}


def test_an_app_with_both_manifests_is_refused(app_server: ServerProcess, tmp_path: Path) -> None:
    app = unique("both")
    root = write_app(tmp_path / "app", GOOD.replace("{app}", app), {"f/handler.py": "x = 1\n"})
    (root / "pyfaas.yaml").write_text(GOOD_YAML.replace("{app}", app))
    result = cli(app_server, "plan", cwd=root)
    assert result.returncode == 1
    assert "has pyfaas.toml and pyfaas.yaml: keep one manifest" in result.stderr
