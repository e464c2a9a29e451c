"""Every bad input gets a 4xx with a stable code and a message, and leaves nothing written."""

from __future__ import annotations

import io
import json
import stat
import zipfile
from collections.abc import Iterator

import httpx
import pytest

from conftest import ServerProcess, deploy, unique, zip_bytes

OK_HANDLER = "def handler(event, context):\n    return event\n"


def assert_error(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code, error
    assert len(error["message"]) > 10
    message: str = error["message"]
    return message


def stored_code(server: ServerProcess) -> list[str]:
    root = server.home / "code"
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


def assert_not_deployed(api: httpx.Client, name: str) -> None:
    assert api.get(f"/v1/functions/{name}").status_code == 404


@pytest.fixture(scope="module")
def small_limits(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    srv = ServerProcess(
        tmp_path_factory.mktemp("small-limits"),
        env={
            "PYFAAS_LIMIT_ZIPPED_CODE_BYTES": "20000",
            "PYFAAS_LIMIT_UNZIPPED_CODE_BYTES": "100000",
            "PYFAAS_LIMIT_SYNC_PAYLOAD_BYTES": "1000",
        },
    ).wait_ready()
    yield srv
    srv.stop()


@pytest.mark.parametrize("name", ["has space", "a" * 65, "dot.name", "ünïcode", "semi;colon"])
def test_invalid_function_names_are_refused(api: httpx.Client, name: str) -> None:
    response = deploy(api, name, {"handler.py": OK_HANDLER}, method="POST")
    assert_error(response, 400, "invalid_name")


@pytest.mark.parametrize(
    ("files", "handler", "code"),
    [
        ({"handler.py": OK_HANDLER}, "missing.handler", "handler_module_not_found"),
        ({"handler.py": OK_HANDLER}, "handler.nope", "handler_not_found"),
        (
            {"handler.py": "def handler(event, context)\n    return 1\n"},
            "handler.handler",
            "handler_syntax_error",
        ),
        (
            {"handler.py": "raise RuntimeError('no config')\ndef handler(e, c):\n    pass\n"},
            "handler.handler",
            "handler_init_error",
        ),
        ({"handler.py": "import not_a_module_anywhere\n"}, "handler.handler", "handler_init_error"),
    ],
)
def test_handler_problems_are_found_at_deploy_time(
    api: httpx.Client, server: ServerProcess, files: dict[str, str], handler: str, code: str
) -> None:
    name = unique("badhandler")
    files = {**files, "marker.txt": name}  # code no other test deploys
    before = stored_code(server)
    message = assert_error(deploy(api, name, files, handler=handler), 400, code)
    assert stored_code(server) == before, "the failed deploy's code was removed"
    if code == "handler_syntax_error":
        assert "handler.py" in message and "line 1" in message
    assert_not_deployed(api, name)


def test_a_failed_update_leaves_the_running_function_alone(api: httpx.Client) -> None:
    name = unique("keep")
    deploy(api, name, {"handler.py": OK_HANDLER}).raise_for_status()
    broken = deploy(api, name, {"handler.py": "def handler(:\n"})
    assert_error(broken, 400, "handler_syntax_error")
    assert api.post(f"/v1/functions/{name}/invoke", json={"still": "here"}).json() == {
        "still": "here"
    }


def _zip_with(entries: list[tuple[zipfile.ZipInfo | str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for info, content in entries:
            zf.writestr(info, content)
    return buf.getvalue()


def _symlink(name: str, target: str) -> tuple[zipfile.ZipInfo, bytes]:
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info, target.encode()


@pytest.mark.parametrize(
    ("archive", "code"),
    [
        (
            _zip_with([("handler.py", OK_HANDLER.encode()), ("../evil.py", b"x = 1")]),
            "bundle_unsafe_path",
        ),
        (
            _zip_with([("handler.py", OK_HANDLER.encode()), ("a/../../evil.py", b"x = 1")]),
            "bundle_unsafe_path",
        ),
        (
            _zip_with([("handler.py", OK_HANDLER.encode()), ("/etc/evil.py", b"x = 1")]),
            "bundle_unsafe_path",
        ),
        (
            _zip_with([("handler.py", OK_HANDLER.encode()), _symlink("passwd", "/etc/passwd")]),
            "bundle_symlink_escapes",
        ),
        (
            _zip_with([("handler.py", OK_HANDLER.encode()), _symlink("up", "../../..")]),
            "bundle_symlink_escapes",
        ),
        (b"this is not a zip file at all", "bundle_not_zip"),
        (_zip_with([]), "bundle_empty"),
    ],
    ids=[
        "dotdot",
        "nested-dotdot",
        "absolute",
        "symlink-absolute",
        "symlink-up",
        "not-zip",
        "empty",
    ],
)
def test_unsafe_or_broken_archives_are_refused(
    api: httpx.Client, server: ServerProcess, archive: bytes, code: str
) -> None:
    name = unique("badzip")
    before = (
        sorted(p.name for p in (server.home / "code").iterdir())
        if (server.home / "code").exists()
        else []
    )
    assert_error(deploy(api, name, archive), 400, code)
    assert_not_deployed(api, name)
    after = (
        sorted(p.name for p in (server.home / "code").iterdir())
        if (server.home / "code").exists()
        else []
    )
    assert after == before, "nothing half-written under code/"
    assert not (server.home.parent / "evil.py").exists()


def test_archives_over_the_size_limits_are_refused(small_limits: ServerProcess) -> None:
    with small_limits.client() as api:
        import os

        big_zipped = {"handler.py": OK_HANDLER, "noise.bin": os.urandom(30_000)}
        assert_error(deploy(api, "toobig", big_zipped), 413, "bundle_too_large")
        bomb = {"handler.py": OK_HANDLER, "zeros.bin": b"\0" * 500_000}
        assert len(zip_bytes(bomb)) < 20_000
        assert_error(deploy(api, "bomb", bomb), 413, "bundle_too_large")
        assert_not_deployed(api, "toobig")
        assert_not_deployed(api, "bomb")


def test_payloads_that_are_not_json_or_too_large_are_refused(small_limits: ServerProcess) -> None:
    with small_limits.client() as api:
        deploy(api, "echo", {"handler.py": OK_HANDLER}).raise_for_status()
        bad = api.post("/v1/functions/echo/invoke", content=b"{not json")
        assert "not valid JSON" in assert_error(bad, 400, "invalid_payload")
        big = api.post("/v1/functions/echo/invoke", json={"x": "y" * 2000})
        assert_error(big, 413, "payload_too_large")
        assert api.post("/v1/functions/echo/invoke", json={"x": 1}).json() == {"x": 1}


def test_an_invocation_type_other_than_requestresponse_or_event_is_refused(
    small_limits: ServerProcess,
) -> None:
    # X-Amz-Invocation-Type is read when X-Invocation-Type is absent, even when it is empty.
    with small_limits.client() as api:
        deploy(api, "kinds", {"handler.py": OK_HANDLER}).raise_for_status()
        url = "/v1/functions/kinds/invoke"
        for headers in (
            {"X-Invocation-Type": "DryRun"},
            {"X-Amz-Invocation-Type": "Sometimes"},
            {"X-Amz-Invocation-Type": ""},
        ):
            refused = api.post(url, json={"x": 1}, headers=headers)
            assert_error(refused, 400, "invalid_invocation_type")
        ok = api.post(url, json={"x": 1}, headers={"X-Amz-Invocation-Type": "RequestResponse"})
        assert ok.json() == {"x": 1}


def test_unknown_function(api: httpx.Client) -> None:
    for response in (
        api.post("/v1/functions/nobody-here/invoke", json={}),
        api.get("/v1/functions/nobody-here"),
        api.get("/v1/functions/nobody-here/logs"),
        api.delete("/v1/functions/nobody-here"),
    ):
        assert_error(response, 404, "function_not_found")


def test_creating_a_name_that_exists_is_a_conflict_and_put_updates(api: httpx.Client) -> None:
    name = unique("exists")
    assert deploy(api, name, {"handler.py": OK_HANDLER}, method="POST").status_code == 201
    again = deploy(api, name, {"handler.py": OK_HANDLER + "# v2\n"}, method="POST")
    assert "PUT" in assert_error(again, 409, "function_exists")
    updated = deploy(api, name, {"handler.py": OK_HANDLER + "# v2\n"})
    assert updated.status_code == 200
    assert updated.json()["created"] is False


def test_a_result_that_is_not_json_is_a_marshal_error(api: httpx.Client) -> None:
    name = unique("marshal")
    deploy(api, name, {"handler.py": "def handler(e, c):\n    return {1, 2}\n"}).raise_for_status()
    response = api.post(f"/v1/functions/{name}/invoke")
    assert response.headers["x-pyfaas-function-error"] == "Unhandled"
    assert response.json()["errorType"] == "Runtime.MarshalError"
    assert "not JSON serializable" in response.json()["errorMessage"]


@pytest.mark.slow
def test_a_handler_printing_100_mb_is_truncated_and_nothing_dies(api: httpx.Client) -> None:
    name = unique("flood")
    code = (
        "import sys\ndef handler(e, c):\n    line = 'x' * 1023 + '\\n'\n"
        "    for _ in range(100 * 1024):\n        sys.stdout.write(line)\n    return 'survived'\n"
    )
    deploy(api, name, {"handler.py": code}, timeout_s=60).raise_for_status()
    response = api.post(f"/v1/functions/{name}/invoke")
    assert response.json() == "survived"
    rid = response.headers["x-pyfaas-request-id"]
    text = api.get(f"/v1/functions/{name}/logs", params={"request_id": rid}).json()["records"][0][
        "text"
    ]
    assert len(text) < 2 * 1024 * 1024
    assert "truncated" in text
    assert text.rstrip().splitlines()[-1].startswith(f"REPORT RequestId: {rid}")
    assert api.get("/v1/health").status_code == 200


@pytest.mark.parametrize(
    ("config", "code"),
    [
        ({"memory_mb": 64}, "invalid_memory"),
        ({"memory_mb": 20000}, "invalid_memory"),
        ({"timeout_s": 0}, "invalid_timeout"),
        ({"timeout_s": 901}, "invalid_timeout"),
        ({"runtime": "python2.7"}, "invalid_runtime"),
        ({"handler": "no_dot"}, "invalid_handler"),
        ({"environment": {"AWS_LAMBDA_FUNCTION_NAME": "x"}}, "reserved_environment_variable"),
        ({"environment": {"1BAD": "x"}}, "invalid_environment"),
        ({"memory": 256}, "unknown_field"),
        ({"timeout_s": "3"}, "invalid_type"),
    ],
)
def test_invalid_configuration_is_refused(
    api: httpx.Client, config: dict[str, object], code: str
) -> None:
    name = unique("badcfg")
    assert_error(deploy(api, name, {"handler.py": OK_HANDLER}, **config), 400, code)
    assert_not_deployed(api, name)


def test_a_deploy_without_a_declared_length_is_refused(api: httpx.Client) -> None:
    body = zip_bytes({"handler.py": OK_HANDLER})

    def chunks() -> Iterator[bytes]:
        yield b'--b\r\nContent-Disposition: form-data; name="code"; filename="c.zip"\r\n\r\n'
        yield body
        yield b"\r\n--b--\r\n"

    response = api.put(
        "/v1/functions/chunked",
        content=chunks(),
        headers={"Content-Type": "multipart/form-data; boundary=b"},
    )
    assert_error(response, 411, "length_required")
    assert_not_deployed(api, "chunked")


def test_deploy_needs_multipart_with_a_json_config_and_code(api: httpx.Client) -> None:
    assert_error(api.put("/v1/functions/raw", content=b"PK..."), 400, "invalid_content_type")
    no_code = api.put(
        "/v1/functions/nocode",
        data={"config": json.dumps({"name": "nocode"})},
        files={"other": ("x.txt", b"x")},
    )
    assert no_code.status_code == 400
    bad_json = api.put(
        "/v1/functions/badjson",
        data={"config": "{nope"},
        files={"code": ("code.zip", zip_bytes({"handler.py": OK_HANDLER}))},
    )
    assert_error(bad_json, 400, "invalid_config")
    mismatch = api.put(
        "/v1/functions/one",
        data={"config": json.dumps({"name": "two"})},
        files={"code": ("code.zip", zip_bytes({"handler.py": OK_HANDLER}))},
    )
    assert_error(mismatch, 400, "name_mismatch")


def test_unknown_routes_and_methods_are_json_errors(api: httpx.Client) -> None:
    assert_error(api.get("/v1/nothing"), 404, "route_not_found")
    assert_error(api.patch("/v1/functions"), 405, "method_not_allowed")
