"""Access control: API tokens with scopes and function limits, secrets encrypted at rest and
handed to handlers, header size limits, and a refusal for clients that keep guessing."""

from __future__ import annotations

import base64
import hashlib
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import (
    ServerProcess,
    deploy,
    postgres_database,
    run_cli,
    serving,
    unique,
    wait_for,
)

ADMIN_TOKEN = "bootstrap-admin-token-for-access-tests"
SECRET_VALUE = "hunter2-correct-horse-battery-staple"

HANDLER = """
import hashlib, os

def handler(event, context):
    value = os.environ.get("DB_PASSWORD", "")
    if event.get("print"):
        print("connecting with", value)
    if event.get("fail"):
        raise RuntimeError("login refused for password " + value)
    return {"sha256": hashlib.sha256(value.encode()).hexdigest(), "length": len(value)}
"""
ECHO = "def handler(event, context):\n    return {'ok': True, 'headers': event.get('headers')}\n"


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    env = {
        "PYFAAS_TOKEN": ADMIN_TOKEN,
        "PYFAAS_IDLE_TIMEOUT_S": "30",
        # The table below sends wrong tokens on purpose; the rate limit has a test of its own.
        "PYFAAS_AUTH_FAILURE_LIMIT": "1000",
    }
    with serving(tmp_path_factory.mktemp("access"), env) as server:
        yield server


@pytest.fixture(scope="module")
def admin(guarded: ServerProcess) -> Iterator[httpx.Client]:
    with guarded.client() as client:
        yield client


@pytest.fixture(scope="module")
def functions(admin: httpx.Client) -> dict[str, str]:
    """Two functions, alpha and beta, each with a URL protected by tokens."""
    names = {"alpha": unique("alpha"), "beta": unique("beta")}
    for name in names.values():
        assert deploy(admin, name, {"handler.py": ECHO}).status_code == 201
        created = admin.post(f"/v1/functions/{name}/url", json={"auth_type": "TOKEN"})
        assert created.status_code == 201, created.text
    return names


def new_token(admin: httpx.Client, *scopes: str, functions: list[str] | None = None) -> str:
    body: dict[str, Any] = {"name": "test", "scopes": list(scopes), "functions": functions}
    created = admin.post("/v1/tokens", json=body)
    assert created.status_code == 201, created.text
    plain: str = created.json()["token"]
    return plain


@pytest.fixture(scope="module")
def tokens(admin: httpx.Client) -> dict[str, str]:
    return {scope: new_token(admin, scope) for scope in ("admin", "deploy", "invoke", "read")}


# --- every scope on representative routes of every router ----------------------------------

# (method, path, JSON body, the scope it needs, the status when allowed). Bodies are chosen so
# that an allowed request changes nothing (a 400 or 404 past authorization).
ROUTES: list[tuple[str, str, Any, str | None, int]] = [
    ("GET", "/v1/health", None, None, 200),
    ("GET", "/v1/openapi.json", None, None, 200),
    ("GET", "/v1/functions", None, "read", 200),
    ("GET", "/v1/functions/{alpha}", None, "read", 200),
    ("PATCH", "/v1/functions/{alpha}", {"memory_mb": 1}, "deploy", 400),
    ("DELETE", "/v1/functions/ghost-function", None, "deploy", 404),
    ("POST", "/v1/functions/{alpha}/invoke", {}, "invoke", 200),
    ("GET", "/v1/functions/{alpha}/logs", None, "read", 200),
    ("GET", "/v1/invocations", None, "read", 200),
    ("GET", "/v1/dlq", None, "read", 200),
    ("POST", "/v1/dlq/redrive", {}, "deploy", 400),
    ("GET", "/v1/functions/{alpha}/url", None, "read", 200),
    ("PATCH", "/v1/functions/{alpha}/url", {"auth_type": "SOMETIMES"}, "deploy", 400),
    ("GET", "/v1/functions/{alpha}/schedules", None, "read", 200),
    ("POST", "/v1/functions/{alpha}/schedules", {"expression": "never"}, "deploy", 400),
    ("GET", "/v1/usage", None, "read", 200),
    ("GET", "/metrics", None, "read", 200),
    ("GET", "/v1/event-source-mappings", None, "read", 200),
    ("POST", "/v1/event-source-mappings", {"type": "kafka"}, "deploy", 400),
    ("GET", "/v1/tokens", None, "admin", 200),
    ("POST", "/v1/tokens", {"name": "x", "scopes": ["root"]}, "admin", 400),
    ("GET", "/v1/secrets", None, "admin", 200),
    ("PUT", "/v1/secrets/some-secret", {"value": ""}, "admin", 400),
]
GRANTS = {
    "admin": {"admin", "deploy", "invoke", "read"},
    "deploy": {"deploy", "read"},
    "invoke": {"invoke"},
    "read": {"read"},
}


def call(
    server: ServerProcess, method: str, path: str, body: Any, headers: dict[str, str]
) -> httpx.Response:
    return httpx.request(method, server.url + path, json=body, headers=headers, timeout=30)


@pytest.mark.parametrize("held", ["admin", "deploy", "invoke", "read"])
def test_each_scope_reaches_exactly_its_routes(
    guarded: ServerProcess, functions: dict[str, str], tokens: dict[str, str], held: str
) -> None:
    for method, template, body, needed, allowed_status in ROUTES:
        path = template.format(**functions)
        response = call(guarded, method, path, body, bearer(tokens[held]))
        if needed is None or needed in GRANTS[held]:
            assert response.status_code == allowed_status, (held, method, path, response.text)
        else:
            assert response.status_code == 403, (held, method, path, response.text)
            error = response.json()["error"]
            assert error["code"] == "insufficient_scope"
            assert needed in error["message"]


def test_the_server_token_is_the_admin_token_on_every_route(
    guarded: ServerProcess, functions: dict[str, str]
) -> None:
    for method, template, body, _, allowed_status in ROUTES:
        response = call(guarded, method, template.format(**functions), body, bearer(ADMIN_TOKEN))
        assert response.status_code == allowed_status, (method, template, response.text)


def test_missing_and_wrong_tokens_get_401_on_every_route(
    guarded: ServerProcess, functions: dict[str, str]
) -> None:
    made_up = "pyf_0123456789abcdef_" + "A" * 43
    for headers, message in (
        ({}, "requires an API token"),
        (bearer("wrong"), "not valid"),
        (bearer(made_up), "not valid"),
        ({"Authorization": ADMIN_TOKEN}, "not valid"),  # no "Bearer"
    ):
        for method, template, body, _, _ in ROUTES:
            response = call(guarded, method, template.format(**functions), body, headers)
            assert response.status_code == 401, (method, template, headers)
            assert response.json()["error"]["code"] == "unauthorized"
            assert message in response.json()["error"]["message"]
            assert response.headers["www-authenticate"] == "Bearer"


def test_every_route_of_the_app_needs_a_declared_scope() -> None:
    """Function URLs and the Lambda API (SigV4) have their own checks; the rest a scope."""
    from pyfaas.api.access import ROUTE_SCOPES
    from pyfaas.api.app import ROUTES as APP_ROUTES
    from pyfaas.api.lambda_api import LAMBDA_PATH_PREFIXES

    undeclared = [
        (route.path, method)
        for route in APP_ROUTES
        if not route.path.startswith(("/fn/", *LAMBDA_PATH_PREFIXES))
        for method in (route.methods or set()) - {"HEAD"}
        if (route.path, method) not in ROUTE_SCOPES
    ]
    assert undeclared == []


def test_a_revoked_token_gets_401_token_revoked_at_once(
    guarded: ServerProcess, admin: httpx.Client, functions: dict[str, str]
) -> None:
    token = new_token(admin, "invoke")
    invoke = f"/v1/functions/{functions['alpha']}/invoke"
    assert call(guarded, "POST", invoke, {}, bearer(token)).status_code == 200
    token_id = token.split("_")[1]
    revoked = admin.delete(f"/v1/tokens/{token_id}")
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    refused = call(guarded, "POST", invoke, {}, bearer(token))
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "token_revoked"
    assert token_id in refused.json()["error"]["message"]
    url = call(guarded, "GET", f"/fn/{functions['alpha']}/", None, bearer(token))
    assert url.status_code == 401 and url.json()["error"]["code"] == "token_revoked"
    again = admin.delete(f"/v1/tokens/{token_id}")
    assert again.json()["revoked_at"] == revoked.json()["revoked_at"]


def test_a_token_limited_to_functions_reaches_only_them(
    guarded: ServerProcess, admin: httpx.Client, functions: dict[str, str]
) -> None:
    alpha, beta = functions["alpha"], functions["beta"]
    token = new_token(admin, "invoke", "read", functions=[alpha])
    headers = bearer(token)
    assert call(guarded, "POST", f"/v1/functions/{alpha}/invoke", {}, headers).status_code == 200
    assert call(guarded, "GET", f"/v1/functions/{alpha}/logs", None, headers).status_code == 200
    for method, path in (
        ("POST", f"/v1/functions/{beta}/invoke"),
        ("GET", f"/v1/functions/{beta}"),
        ("GET", "/v1/functions"),  # names no function: it could list the others
        ("GET", "/v1/usage"),
    ):
        refused = call(guarded, method, path, {} if method == "POST" else None, headers)
        assert refused.status_code == 403, (method, path)
        assert refused.json()["error"]["code"] == "function_not_allowed"
        assert alpha in refused.json()["error"]["message"]
    assert call(guarded, "GET", f"/fn/{alpha}/", None, headers).status_code == 200
    beta_url = call(guarded, "GET", f"/fn/{beta}/", None, headers)
    assert beta_url.status_code == 403
    assert beta_url.json()["error"]["code"] == "function_not_allowed"


def test_token_protected_urls_take_invoke_tokens_and_hide_them_from_the_function(
    guarded: ServerProcess, functions: dict[str, str], tokens: dict[str, str]
) -> None:
    path = f"/fn/{functions['alpha']}/hello"
    for held in ("admin", "invoke"):
        answered = call(guarded, "GET", path, None, bearer(tokens[held]))
        assert answered.status_code == 200, answered.text
        assert "authorization" not in answered.json()["headers"]
    for held in ("deploy", "read"):
        refused = call(guarded, "GET", path, None, bearer(tokens[held]))
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "insufficient_scope"
    for headers in ({}, bearer("pyf_0123456789abcdef_wrong")):
        refused = call(guarded, "GET", path, None, headers)
        assert refused.status_code == 401 and refused.json()["error"]["code"] == "unauthorized"
    # A name that does not exist answers 401 too: names cannot be probed without a token.
    ghost = call(guarded, "GET", "/fn/no-such-function/", None, {})
    assert ghost.status_code == 401


def test_a_public_url_passes_any_authorization_header_to_the_function(
    guarded: ServerProcess, admin: httpx.Client
) -> None:
    name = unique("public")
    assert deploy(admin, name, {"handler.py": ECHO}).status_code == 201
    assert admin.post(f"/v1/functions/{name}/url", json={"auth_type": "NONE"}).status_code == 201
    answered = call(guarded, "GET", f"/fn/{name}/", None, bearer("the-app-s-own-token"))
    assert answered.status_code == 200
    assert answered.json()["headers"]["authorization"] == "Bearer the-app-s-own-token"
    admin.delete(f"/v1/functions/{name}")


# --- tokens: API and CLI -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"scopes": ["read"]}, "invalid_token_name"),
        ({"name": "", "scopes": ["read"]}, "invalid_token_name"),
        ({"name": "x" * 65, "scopes": ["read"]}, "invalid_token_name"),
        ({"name": "ci"}, "invalid_scope"),
        ({"name": "ci", "scopes": []}, "invalid_scope"),
        ({"name": "ci", "scopes": ["read", "root"]}, "invalid_scope"),
        ({"name": "ci", "scopes": "read"}, "invalid_scope"),
        ({"name": "ci", "scopes": ["read"], "functions": []}, "invalid_token_functions"),
        ({"name": "ci", "scopes": ["read"], "functions": ["no spaces"]}, "invalid_token_functions"),
        ({"name": "ci", "scopes": ["admin"], "functions": ["f"]}, "invalid_token_functions"),
        ({"name": "ci", "scopes": ["read"], "expires": 3}, "unknown_field"),
    ],
)
def test_a_bad_token_request_is_a_400_and_creates_nothing(
    admin: httpx.Client, body: dict[str, Any], code: str
) -> None:
    before = admin.get("/v1/tokens").json()["tokens"]
    refused = admin.post("/v1/tokens", json=body)
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == code
    assert admin.get("/v1/tokens").json()["tokens"] == before


def test_revoking_an_unknown_token_is_404(admin: httpx.Client) -> None:
    missing = admin.delete("/v1/tokens/0000000000000000")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "token_not_found"


def test_tokens_are_stored_hashed_and_listed_without_the_token(
    guarded: ServerProcess, admin: httpx.Client
) -> None:
    token = new_token(admin, "read")
    listed = admin.get("/v1/tokens").json()["tokens"]
    mine = [t for t in listed if t["id"] == token.split("_")[1]]
    assert mine and mine[0]["scopes"] == ["read"] and mine[0]["revoked_at"] is None
    assert token not in admin.get("/v1/tokens").text
    stored = b"".join(p.read_bytes() for p in guarded.home.glob("pyfaas.db*"))
    assert token.encode() not in stored
    assert sha(token).encode() in stored


def test_the_token_cli_creates_lists_and_revokes(
    guarded: ServerProcess, functions: dict[str, str]
) -> None:
    alpha = functions["alpha"]
    created = run_cli("token", "create", "ci", "-s", "deploy", "-f", alpha, server=guarded)
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    assert token.startswith("pyf_") and "shown this once" in created.stderr
    token_id = token.split("_")[1]
    as_ci = {"PYFAAS_URL": guarded.url, "PYFAAS_TOKEN": token}
    shown = run_cli("show", alpha, env=as_ci)
    assert shown.returncode == 0, shown.stderr
    listed = run_cli("token", "ls", server=guarded)
    assert token_id in listed.stdout and "deploy" in listed.stdout
    assert token not in listed.stdout
    refused = run_cli("token", "ls", env=as_ci)
    assert refused.returncode == 1 and "[insufficient_scope]" in refused.stderr
    assert "Traceback" not in refused.stderr
    revoked = run_cli("token", "revoke", token_id, server=guarded)
    assert revoked.returncode == 0 and "Revoked" in revoked.stderr
    after = run_cli("show", alpha, env=as_ci)
    assert after.returncode == 1 and "[token_revoked]" in after.stderr


def test_token_cli_mistakes_are_one_line_errors(guarded: ServerProcess) -> None:
    for args, expected in (
        (("token", "create", "ci"), "give at least one --scope"),
        (("token", "create", "ci", "-s", "root"), "[invalid_scope]"),
        (("token", "revoke", "feedfacefeedface"), "[token_not_found]"),
    ):
        result = run_cli(*args, server=guarded)
        assert result.returncode == 1, args
        assert expected in result.stderr and "Traceback" not in result.stderr


def test_a_server_without_a_token_refuses_to_create_tokens(api: httpx.Client) -> None:
    refused = api.post("/v1/tokens", json={"name": "ci", "scopes": ["read"]})
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "access_control_off"
    assert api.get("/v1/tokens").json()["tokens"] == []


# --- secrets ---------------------------------------------------------------------------------


def test_a_secret_reaches_the_handler_and_never_comes_back_out(
    guarded: ServerProcess, admin: httpx.Client
) -> None:
    secret, name = unique("db-password"), unique("uses-secret")
    set_ = run_cli("secret", "set", secret, server=guarded, input=f"{SECRET_VALUE}\n".encode())
    assert set_.returncode == 0 and "Created" in set_.stderr, set_.stderr
    deployed = deploy(admin, name, {"handler.py": HANDLER}, secrets={"DB_PASSWORD": secret})
    assert deployed.status_code == 201, deployed.text
    assert SECRET_VALUE not in deployed.text

    result = admin.post(f"/v1/functions/{name}/invoke", json={"print": True}).json()
    assert result == {"sha256": sha(SECRET_VALUE), "length": len(SECRET_VALUE)}
    failed = admin.post(f"/v1/functions/{name}/invoke", json={"fail": True})
    assert failed.headers["x-pyfaas-function-error"] == "Unhandled"
    assert SECRET_VALUE not in failed.text
    assert "login refused for password [pyfaas: secret redacted]" in failed.json()["errorMessage"]

    shown = admin.get(f"/v1/functions/{name}")
    assert shown.json()["secrets"] == {"DB_PASSWORD": secret}
    assert SECRET_VALUE not in shown.text
    logs = admin.get(f"/v1/functions/{name}/logs")
    assert "connecting with [pyfaas: secret redacted]" in logs.text
    assert SECRET_VALUE not in logs.text
    assert SECRET_VALUE not in run_cli("logs", name, server=guarded).stdout
    listed = run_cli("secret", "ls", server=guarded)
    assert secret in listed.stdout and name in listed.stdout
    assert SECRET_VALUE not in listed.stdout + admin.get("/v1/secrets").text
    assert SECRET_VALUE not in admin.get(f"/v1/secrets/{secret}").text
    assert SECRET_VALUE not in guarded.output()

    # Encrypted at rest: neither the database nor its write-ahead log holds the value.
    stored = b"".join(p.read_bytes() for p in guarded.home.glob("pyfaas.db*"))
    assert SECRET_VALUE.encode() not in stored
    assert base64.b64encode(SECRET_VALUE.encode()) not in stored

    # A new value reaches the function's next invocation (its workers are replaced).
    changed = run_cli("secret", "set", secret, server=guarded, input=b"a-new-value-entirely")
    assert changed.returncode == 0 and "Updated" in changed.stderr
    assert name in changed.stderr
    again = admin.post(f"/v1/functions/{name}/invoke", json={}).json()
    assert again["sha256"] == sha("a-new-value-entirely")

    # In use: it cannot be removed; once the function is gone it can.
    in_use = run_cli("secret", "rm", secret, server=guarded)
    assert in_use.returncode == 1 and "[secret_in_use]" in in_use.stderr
    assert name in in_use.stderr
    assert admin.delete(f"/v1/functions/{name}").status_code == 204
    assert run_cli("secret", "rm", secret, server=guarded).returncode == 0
    assert admin.get(f"/v1/secrets/{secret}").status_code == 404


def test_a_handler_that_fails_at_import_quoting_a_secret_gets_a_redacted_deploy_error(
    admin: httpx.Client,
) -> None:
    secret, name = unique("init-secret"), unique("init-fails")
    assert admin.put(f"/v1/secrets/{secret}", json={"value": SECRET_VALUE}).status_code == 201
    code = "import os\nraise RuntimeError('bad ' + os.environ['DB_PASSWORD'])\n"
    refused = deploy(admin, name, {"handler.py": code}, secrets={"DB_PASSWORD": secret})
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "handler_init_error"
    assert SECRET_VALUE not in refused.text
    assert "[pyfaas: secret redacted]" in refused.json()["error"]["message"]
    assert admin.delete(f"/v1/secrets/{secret}").status_code == 204


def test_the_key_file_is_created_private(guarded: ServerProcess) -> None:
    key_file = guarded.home / "secret.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert len(base64.urlsafe_b64decode(key_file.read_text().strip())) == 32


def test_deploying_with_a_missing_secret_is_a_400_and_writes_nothing(
    admin: httpx.Client,
) -> None:
    name = unique("needs-secret")
    refused = deploy(admin, name, {"handler.py": HANDLER}, secrets={"DB_PASSWORD": "nope-404"})
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "unknown_secret"
    assert "pyfaas secret set nope-404" in refused.json()["error"]["message"]
    assert admin.get(f"/v1/functions/{name}").status_code == 404


@pytest.mark.parametrize(
    ("secrets", "environment", "code"),
    [
        ({"AWS_LAMBDA_FUNCTION_NAME": "s"}, {}, "invalid_secrets"),
        ({"_HANDLER": "s"}, {}, "invalid_secrets"),
        ({"1BAD": "s"}, {}, "invalid_secrets"),
        ({"TWICE": "s"}, {"TWICE": "plain"}, "invalid_secrets"),
        ({"GOOD": "no spaces allowed"}, {}, "invalid_secrets"),
        ({"GOOD": 7}, {}, "invalid_secrets"),
        (["GOOD"], {}, "invalid_type"),
    ],
)
def test_bad_secret_references_are_400s(
    admin: httpx.Client, secrets: Any, environment: dict[str, str], code: str
) -> None:
    name = unique("bad-refs")
    refused = deploy(admin, name, {"handler.py": HANDLER}, secrets=secrets, environment=environment)
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"]["code"] == code
    assert admin.get(f"/v1/functions/{name}").status_code == 404


def test_patching_in_an_unknown_secret_is_refused_and_changes_nothing(
    admin: httpx.Client, functions: dict[str, str]
) -> None:
    alpha = functions["alpha"]
    refused = admin.patch(f"/v1/functions/{alpha}", json={"secrets": {"X": "missing-one"}})
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "unknown_secret"
    assert admin.get(f"/v1/functions/{alpha}").json()["secrets"] == {}


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code"),
    [
        ("PUT", "/v1/secrets/.hidden", {"value": "v"}, 400, "invalid_secret_name"),
        ("PUT", "/v1/secrets/" + "n" * 129, {"value": "v"}, 400, "invalid_secret_name"),
        ("PUT", "/v1/secrets/ok", {"value": ""}, 400, "invalid_secret_value"),
        ("PUT", "/v1/secrets/ok", {"value": 42}, 400, "invalid_secret_value"),
        ("PUT", "/v1/secrets/ok", {"value": "a\u0000b"}, 400, "invalid_secret_value"),
        ("PUT", "/v1/secrets/ok", {"value": "x" * 40000}, 400, "invalid_secret_value"),
        ("PUT", "/v1/secrets/ok", {}, 400, "invalid_secret_value"),
        ("PUT", "/v1/secrets/ok", {"value": "v", "ttl": 3}, 400, "unknown_field"),
        ("PUT", "/v1/secrets/ok", [1], 400, "invalid_json"),
        ("GET", "/v1/secrets/never-set", None, 404, "secret_not_found"),
        ("DELETE", "/v1/secrets/never-set", None, 404, "secret_not_found"),
    ],
)
def test_bad_secret_requests_are_4xx_and_store_nothing(
    admin: httpx.Client, method: str, path: str, body: Any, status: int, code: str
) -> None:
    refused = admin.request(method, path, json=body)
    assert refused.status_code == status
    assert refused.json()["error"]["code"] == code
    if isinstance(body, dict) and isinstance(body.get("value"), str) and len(body["value"]) > 3:
        assert body["value"] not in refused.text
    assert admin.get("/v1/secrets/ok").status_code == 404


def test_secret_cli_mistakes_are_one_line_errors(guarded: ServerProcess) -> None:
    empty = run_cli("secret", "set", "empty-one", server=guarded, input=b"\n")
    assert empty.returncode == 1 and "the value is empty" in empty.stderr
    bad = run_cli("secret", "set", ".bad", server=guarded, input=b"value")
    assert bad.returncode == 1 and "[invalid_secret_name]" in bad.stderr
    missing = run_cli("secret", "rm", "never-set", server=guarded)
    assert missing.returncode == 1 and "[secret_not_found]" in missing.stderr
    for result in (empty, bad, missing):
        assert "Traceback" not in result.stderr


def test_a_bad_secret_key_stops_the_server_with_one_line(tmp_path: Path) -> None:
    result = run_cli(
        "serve",
        "--port",
        "0",
        env={"PYFAAS_HOME": str(tmp_path), "PYFAAS_SECRET_KEY": "too-short"},
        timeout=30,
    )
    assert result.returncode == 1
    assert "PYFAAS_SECRET_KEY must be 32 bytes" in result.stderr
    assert "Traceback" not in result.stderr
    (tmp_path / "secret.key").write_text(base64.urlsafe_b64encode(os.urandom(32)).decode())
    (tmp_path / "secret.key").chmod(0o644)
    result = run_cli("serve", "--port", "0", env={"PYFAAS_HOME": str(tmp_path)}, timeout=30)
    assert result.returncode == 1 and "chmod 600" in result.stderr


# --- request limits --------------------------------------------------------------------------


def test_oversized_headers_get_431_everywhere(
    guarded: ServerProcess, functions: dict[str, str]
) -> None:
    big = {"X-Padding": "x" * 20_000, **bearer(ADMIN_TOKEN)}
    for path in ("/v1/functions", f"/fn/{functions['alpha']}/", "/v1/health"):
        refused = httpx.get(guarded.url + path, headers=big)
        assert refused.status_code == 431, path
        assert refused.json()["error"]["code"] == "headers_too_large"
        assert "16384" in refused.json()["error"]["message"]
    fits = {"X-Padding": "x" * 12_000, **bearer(ADMIN_TOKEN)}
    assert httpx.get(guarded.url + "/v1/functions", headers=fits).status_code == 200


def test_an_address_that_keeps_failing_gets_429_until_its_window_passes(
    tmp_path: Path,
) -> None:
    env = {
        "PYFAAS_TOKEN": ADMIN_TOKEN,
        "PYFAAS_AUTH_FAILURE_LIMIT": "3",
        "PYFAAS_AUTH_FAILURE_WINDOW_S": "2",
    }
    with serving(tmp_path, env) as server:
        health = server.url + "/v1/health"
        with server.client() as admin:
            name = unique("guarded-url")
            assert deploy(admin, name, {"handler.py": ECHO}).status_code == 201
            assert admin.post(f"/v1/functions/{name}/url", json={"auth_type": "TOKEN"}).is_success
        for _ in range(5):  # no token at all is not a guess
            assert httpx.get(health).status_code == 401
        assert httpx.get(health, headers=bearer(ADMIN_TOKEN)).status_code == 200
        for _ in range(3):
            assert httpx.get(health, headers=bearer("guess")).status_code == 401
        started = time.monotonic()
        for headers in (bearer("guess"), bearer(ADMIN_TOKEN)):
            refused = httpx.get(health, headers=headers)
            assert refused.status_code == 429
            assert refused.json()["error"]["code"] == "too_many_failed_auth"
            assert 1 <= int(refused.headers["retry-after"]) <= 2
        # Token-protected function URLs are refused to it as well.
        url = httpx.get(f"{server.url}/fn/{name}/", headers=bearer(ADMIN_TOKEN))
        assert url.status_code == 429 and url.json()["error"]["code"] == "too_many_failed_auth"
        wait_for(
            lambda: httpx.get(health, headers=bearer(ADMIN_TOKEN)).status_code == 200,
            timeout=5,
            what="the refusal to end",
        )
        assert time.monotonic() - started >= 1.0


@pytest.mark.slow
def test_servers_sharing_postgresql_share_tokens_and_secrets_and_revocation_reaches_both(
    tmp_path: Path,
) -> None:
    key = base64.urlsafe_b64encode(os.urandom(32)).decode()
    with postgres_database() as url:
        env = {"PYFAAS_TOKEN": ADMIN_TOKEN, "PYFAAS_DATABASE_URL": url, "PYFAAS_SECRET_KEY": key}
        with (
            serving(tmp_path / "a", env) as a,
            serving(tmp_path / "b", env) as b,
            a.client() as admin_a,
            b.client() as admin_b,
        ):
            token = new_token(admin_a, "read")
            on_b = httpx.get(b.url + "/v1/functions", headers=bearer(token))
            assert on_b.status_code == 200
            secret = unique("shared")
            put = admin_a.put(f"/v1/secrets/{secret}", json={"value": SECRET_VALUE})
            assert put.status_code == 201
            name = unique("on-b")
            deployed = deploy(
                admin_b, name, {"handler.py": HANDLER}, secrets={"DB_PASSWORD": secret}
            )
            assert deployed.status_code == 201, deployed.text
            result = admin_b.post(f"/v1/functions/{name}/invoke", json={}).json()
            assert result["sha256"] == sha(SECRET_VALUE)
            assert admin_a.delete(f"/v1/tokens/{token.split('_')[1]}").status_code == 200
            revoked_at = time.monotonic()
            wait_for(
                lambda: (
                    httpx.get(b.url + "/v1/functions", headers=bearer(token)).status_code == 401
                ),
                timeout=5,
                what="the revocation to reach the other server",
            )
            assert time.monotonic() - revoked_at < 2.0
        other_key = {**env, "PYFAAS_SECRET_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode()}
        wrong = ServerProcess(tmp_path / "c", env=other_key)
        with pytest.raises(RuntimeError, match="does not decrypt with this server's key"):
            wrong.wait_ready(timeout=30)
        wrong.stop()
