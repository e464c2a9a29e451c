"""Deploy a function and invoke it over HTTP, end to end, against a real server."""

from __future__ import annotations

import base64
import uuid

import httpx
import pytest

from conftest import ServerProcess, deploy, unique

HELLO = """
def handler(event, context):
    print("hi from print")
    return {"message": "Hello, " + event.get("name", "world") + "!"}
"""

CONTEXT_PROBE = """
import os

def handler(event, context):
    return {
        "function_name": context.function_name,
        "function_version": context.function_version,
        "invoked_function_arn": context.invoked_function_arn,
        "memory_limit_in_mb": int(context.memory_limit_in_mb),
        "aws_request_id": context.aws_request_id,
        "log_group_name": context.log_group_name,
        "log_stream_name": context.log_stream_name,
        "remaining": context.get_remaining_time_in_millis(),
        "env": {k: os.environ.get(k) for k in (
            "AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_VERSION",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "LAMBDA_TASK_ROOT", "_HANDLER", "GREETING",
            "PYFAAS_HOME")},
    }
"""


def test_deploy_then_invoke_returns_the_handlers_json(api: httpx.Client) -> None:
    name = unique("hello")
    created = deploy(api, name, {"handler.py": HELLO})
    assert created.status_code == 201, created.text
    assert created.json()["created"] is True
    response = api.post(f"/v1/functions/{name}/invoke", json={"name": "Ada"})
    assert response.status_code == 200
    assert response.json() == {"message": "Hello, Ada!"}
    assert "x-pyfaas-function-error" not in response.headers
    assert response.headers["x-pyfaas-executed-version"] == "$LATEST"
    assert response.headers["content-type"] == "application/json"
    assert response.headers["content-length"] == str(len(response.content))
    request_id = response.headers["x-pyfaas-request-id"]
    parsed = uuid.UUID(request_id)
    assert (str(parsed), parsed.version, parsed.variant) == (request_id, 7, uuid.RFC_4122)


def test_empty_payload_is_an_empty_event(api: httpx.Client) -> None:
    name = unique("empty")
    deploy(api, name, {"handler.py": HELLO}).raise_for_status()
    response = api.post(f"/v1/functions/{name}/invoke")
    assert response.json() == {"message": "Hello, world!"}


def test_handler_sees_lambdas_context_and_environment(api: httpx.Client) -> None:
    name = unique("ctx")
    deploy(
        api,
        name,
        {"probe.py": CONTEXT_PROBE},
        handler="probe.handler",
        memory_mb=256,
        timeout_s=7,
        environment={"GREETING": "hej"},
    ).raise_for_status()
    response = api.post(f"/v1/functions/{name}/invoke", json={})
    body = response.json()
    assert body["function_name"] == name
    assert body["function_version"] == "$LATEST"
    assert body["invoked_function_arn"].endswith(f":function:{name}")
    assert body["invoked_function_arn"].startswith("arn:aws:lambda:")
    assert body["memory_limit_in_mb"] == 256
    assert body["aws_request_id"] == response.headers["x-pyfaas-request-id"]
    assert body["log_group_name"] == f"/aws/lambda/{name}"
    assert "[$LATEST]" in body["log_stream_name"]
    assert 0 < body["remaining"] <= 7000
    env = body["env"]
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == name
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "256"
    assert env["_HANDLER"] == "probe.handler"
    assert env["GREETING"] == "hej"
    assert env["LAMBDA_TASK_ROOT"]
    assert env["PYFAAS_HOME"] is None, "the server's environment must not leak into workers"


def test_async_def_handler_is_awaited(api: httpx.Client) -> None:
    name = unique("async")
    code = (
        "import asyncio\nasync def handler(event, context):\n"
        "    await asyncio.sleep(0.01)\n    return {'awaited': True}\n"
    )
    deploy(api, name, {"handler.py": code}).raise_for_status()
    assert api.post(f"/v1/functions/{name}/invoke").json() == {"awaited": True}


def test_handler_exception_comes_back_in_lambdas_error_shape(api: httpx.Client) -> None:
    name = unique("raises")
    code = (
        "class Declined(Exception):\n    pass\n\ndef handler(event, context):\n"
        "    if event.get('fail'):\n        raise Declined('card declined')\n    return 'ok'\n"
    )
    deploy(api, name, {"handler.py": code}).raise_for_status()
    response = api.post(f"/v1/functions/{name}/invoke", json={"fail": True})
    assert response.status_code == 200
    assert response.headers["x-pyfaas-function-error"] == "Unhandled"
    error = response.json()
    assert error["errorType"] == "Declined"
    assert error["errorMessage"] == "card declined"
    assert any("handler.py" in line for line in error["stackTrace"])
    # The platform carries on: the same worker pool serves the next call.
    assert api.post(f"/v1/functions/{name}/invoke", json={}).json() == "ok"


def test_logs_hold_start_output_end_and_report_lines(api: httpx.Client) -> None:
    name = unique("logs")
    code = (
        "import logging\nlogging.getLogger().setLevel(logging.INFO)\n"
        "def handler(event, context):\n    print('printed', event['n'])\n"
        "    logging.getLogger('app').info('logged %s', event['n'])\n    return event['n']\n"
    )
    deploy(api, name, {"handler.py": code}).raise_for_status()
    first = api.post(f"/v1/functions/{name}/invoke", json={"n": 1})
    second = api.post(f"/v1/functions/{name}/invoke", json={"n": 2})
    records = api.get(f"/v1/functions/{name}/logs").json()["records"]
    assert [r["request_id"] for r in records] == [
        first.headers["x-pyfaas-request-id"],
        second.headers["x-pyfaas-request-id"],
    ]
    text = records[0]["text"]
    rid = records[0]["request_id"]
    lines = text.splitlines()
    assert lines[0] == f"START RequestId: {rid} Version: $LATEST"
    assert "printed 1" in text
    assert any(line.startswith("[INFO]") and "logged 1" in line and rid in line for line in lines)
    assert lines[-2] == f"END RequestId: {rid}"
    report = lines[-1]
    assert report.startswith(f"REPORT RequestId: {rid}\tDuration: ")
    for field in ("Billed Duration: ", "Memory Size: 128 MB", "Max Memory Used: "):
        assert field in report
    assert "\n\n" not in text, "one line per log record, no blank lines"
    used_mb = int(report.split("Max Memory Used: ")[1].split(" MB")[0])
    assert 5 < used_mb < 64, "the worker's own peak, not the server's it was forked from"
    assert "Init Duration" not in records[1]["text"], "the second call ran on a warm worker"
    only = api.get(f"/v1/functions/{name}/logs", params={"request_id": rid}).json()["records"]
    assert [r["request_id"] for r in only] == [rid]
    tail = api.post(
        f"/v1/functions/{name}/invoke", json={"n": 3}, headers={"X-Pyfaas-Log-Type": "Tail"}
    )
    assert "printed 3" in base64.b64decode(tail.headers["x-pyfaas-log-result"]).decode()


def test_list_show_and_delete(api: httpx.Client) -> None:
    name = unique("crud")
    deploy(api, name, {"handler.py": HELLO}, description="crud test").raise_for_status()
    names = [f["name"] for f in api.get("/v1/functions").json()["functions"]]
    assert name in names
    assert names == sorted(names)
    api.post(f"/v1/functions/{name}/invoke").raise_for_status()
    shown = api.get(f"/v1/functions/{name}").json()
    assert shown["description"] == "crud test"
    assert shown["stats"]["invocations"] >= 1
    assert api.delete(f"/v1/functions/{name}").status_code == 204
    assert api.get(f"/v1/functions/{name}").status_code == 404
    gone = api.post(f"/v1/functions/{name}/invoke")
    assert gone.status_code == 404
    assert gone.json()["error"]["code"] == "function_not_found"
    assert api.delete(f"/v1/functions/{name}").status_code == 404


def test_same_code_deployed_twice_is_stored_once(api: httpx.Client, server: ServerProcess) -> None:
    a, b = unique("same"), unique("same")
    marker = f"# {uuid.uuid4()}\n"
    sha_a = deploy(api, a, {"handler.py": HELLO + marker}).json()["code_sha256"]
    sha_b = deploy(api, b, {"handler.py": HELLO + marker}).json()["code_sha256"]
    assert sha_a == sha_b
    stored = [p for p in (server.home / "code").iterdir() if p.name == sha_a]
    assert len(stored) == 1


def test_redeploy_updates_code_and_says_so(api: httpx.Client) -> None:
    name = unique("update")
    deploy(api, name, {"handler.py": "def handler(e, c):\n    return 1\n"}).raise_for_status()
    assert api.post(f"/v1/functions/{name}/invoke").json() == 1
    same = deploy(api, name, {"handler.py": "def handler(e, c):\n    return 1\n"})
    assert same.status_code == 200
    assert (same.json()["created"], same.json()["changed"]) == (False, False)
    updated = deploy(api, name, {"handler.py": "def handler(e, c):\n    return 2\n"})
    assert (updated.json()["created"], updated.json()["changed"]) == (False, True)
    assert api.post(f"/v1/functions/{name}/invoke").json() == 2
    described = deploy(
        api,
        name,
        {"handler.py": "def handler(e, c):\n    return 2\n"},
        description="now documented",
    )
    assert described.json()["changed"] is True
    assert api.get(f"/v1/functions/{name}").json()["description"] == "now documented"


def test_timeout_kills_the_worker_and_the_next_call_gets_a_fresh_one(api: httpx.Client) -> None:
    name = unique("timeout")
    code = (
        "import time\ndef handler(event, context):\n"
        "    time.sleep(event.get('sleep', 0))\n    return 'done'\n"
    )
    deploy(api, name, {"handler.py": code}, timeout_s=1).raise_for_status()
    slow = api.post(f"/v1/functions/{name}/invoke", json={"sleep": 30})
    assert slow.headers["x-pyfaas-function-error"] == "Unhandled"
    assert "Task timed out after 1.00 seconds" in slow.json()["errorMessage"]
    fast = api.post(f"/v1/functions/{name}/invoke", json={})
    assert fast.json() == "done"
    assert "x-pyfaas-init-duration-ms" in fast.headers, "a fresh worker was started"


def test_a_crashing_worker_gives_a_clear_error_and_is_replaced(api: httpx.Client) -> None:
    name = unique("crash")
    code = (
        "import os\ndef handler(event, context):\n"
        "    if event.get('crash'):\n        os._exit(3)\n    return 'alive'\n"
    )
    deploy(api, name, {"handler.py": code}).raise_for_status()
    crashed = api.post(f"/v1/functions/{name}/invoke", json={"crash": True})
    assert crashed.headers["x-pyfaas-function-error"] == "Unhandled"
    assert crashed.json()["errorType"] == "Runtime.ExitError"
    assert "exit status 3" in crashed.json()["errorMessage"]
    assert api.post(f"/v1/functions/{name}/invoke", json={}).json() == "alive"


def test_memory_beyond_the_limit_is_a_clear_error(api: httpx.Client) -> None:
    name = unique("oom")
    code = (
        "def handler(event, context):\n    blob = bytearray(event['mb'] * 1024 * 1024)\n"
        "    return len(blob)\n"
    )
    deploy(api, name, {"handler.py": code}, memory_mb=128).raise_for_status()
    response = api.post(f"/v1/functions/{name}/invoke", json={"mb": 4096})
    assert response.headers["x-pyfaas-function-error"] == "Unhandled"
    assert response.json()["errorType"] in ("Runtime.OutOfMemory", "Runtime.ExitError")
    assert api.post(f"/v1/functions/{name}/invoke", json={"mb": 1}).json() == 1024 * 1024


def test_health_and_openapi(api: httpx.Client) -> None:
    assert api.get("/v1/health").json()["status"] == "ok"
    doc = api.get("/v1/openapi.json").json()
    assert doc["openapi"].startswith("3.")
    for path in (
        "/v1/functions",
        "/v1/functions/{name}",
        "/v1/functions/{name}/invoke",
        "/v1/functions/{name}/logs",
    ):
        assert path in doc["paths"]
    assert "post" in doc["paths"]["/v1/functions/{name}/invoke"]


@pytest.mark.slow
def test_requirements_are_installed_once_into_a_layer(
    api: httpx.Client, server: ServerProcess
) -> None:
    first, second = unique("req"), unique("req")
    files = {
        "handler.py": "import six\ndef handler(e, c):\n    return six.__version__\n",
        "requirements.txt": "six==1.16.0\n",
    }
    one = deploy(api, first, files)
    assert one.status_code == 201, one.text
    layer = one.json()["layer_sha256"]
    assert layer
    assert api.post(f"/v1/functions/{first}/invoke").json() == "1.16.0"
    files["handler.py"] += "# another function, same requirements\n"
    two = deploy(api, second, files)
    assert two.json()["layer_sha256"] == layer
    assert len(list((server.home / "layers").glob(f"{layer}*"))) == 1
