"""Web apps as functions: a real Flask app (WSGI) and a real FastAPI app (ASGI) deployed with
--wsgi / --asgi, and the same apps wrapped for AWS Lambda by apig-wsgi and Mangum, deployed as
plain handlers. Every request goes through :func:`http`, which delivers it the way a Lambda
function URL does (payload format 2.0) and maps the response back."""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from conftest import ServerProcess, deploy, run_cli, unique, wait_for

APPS = Path(__file__).parent / "apps"
JSON = {"Content-Type": "application/json"}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
_TEXT_TYPES = ("text/", "application/json", "application/x-www-form-urlencoded")


_WITH_URL: set[tuple[str, str]] = set()


def http(
    server: ServerProcess,
    function: str,
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    body: bytes | str = b"",
) -> tuple[int, httpx.Headers, bytes]:
    """One real HTTP request to ``function``'s URL, ``/fn/{function}{path}`` (``path`` as a
    client sends it after the host: percent-encoded, with the query). Gives the function a
    public URL first if it has none. Redirects are not followed."""
    if (server.url, function) not in _WITH_URL:
        with server.client() as client:
            made = client.post(f"/v1/functions/{function}/url", json={"auth_type": "NONE"})
        assert made.status_code in (201, 409), made.text
        _WITH_URL.add((server.url, function))
    data = body.encode() if isinstance(body, str) else body
    with httpx.Client(base_url=server.url, timeout=60) as client:
        request = client.build_request(
            method, f"/fn/{function}{path}", headers=headers, content=data
        )
        request.url = request.url.copy_with(raw_path=f"/fn/{function}{path}".encode())
        response = client.send(request)
    return response.status_code, response.headers, response.content


def bundle(directory: str) -> dict[str, str | bytes]:
    """The files of tests/apps/``directory``, as a code bundle."""
    root = APPS / directory
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }


def multipart(
    fields: dict[str, str], files: dict[str, tuple[str, bytes, str]]
) -> tuple[str, bytes]:
    """A multipart/form-data body as a browser would send it: (content type, bytes)."""
    request = httpx.Request("POST", "https://example.test/", data=fields, files=files)
    return request.headers["content-type"], request.read()


def deployed(server: ServerProcess, directory: str, prefix: str, **config: object) -> str:
    name = unique(prefix)
    with server.client() as client:
        response = deploy(client, name, bundle(directory), **config)
    assert response.status_code == 201, response.text
    return name


@pytest.fixture(scope="module")
def flask_site(server: ServerProcess) -> str:
    return deployed(server, "flask_site", "flask", wsgi="app:app")


@pytest.fixture(scope="module")
def fastapi_site(server: ServerProcess) -> str:
    return deployed(server, "fastapi_site", "fastapi", asgi="main:app")


@pytest.fixture(params=["wsgi", "asgi"])
def site(request: pytest.FixtureRequest, flask_site: str, fastapi_site: str) -> str:
    """Each behaviour, once for the Flask app and once for the FastAPI app."""
    return flask_site if request.param == "wsgi" else fastapi_site


def as_json(body: bytes) -> object:
    return json.loads(body)


def test_routes_reach_the_right_view_with_path_parameters(server: ServerProcess, site: str) -> None:
    status, headers, body = http(server, site, "GET", "/")
    assert status == 200
    assert headers["content-type"].startswith("text/html")
    assert b"<h1>Hello from" in body
    status, headers, body = http(server, site, "GET", "/items/42")
    assert (status, as_json(body)) == (200, {"id": 42, "kind": "item"})
    assert headers["content-type"] == "application/json"


def test_unknown_route_is_the_apps_404(server: ServerProcess, site: str) -> None:
    status, _, body = http(server, site, "GET", "/no/such/page")
    assert status == 404
    assert b"Not Found" in body


def test_json_body_round_trips(server: ServerProcess, site: str) -> None:
    payload = {"name": "Ada", "langs": ["en", "fr"], "nested": {"ok": True}, "é": "ü"}
    status, _, body = http(
        server,
        site,
        "POST",
        "/echo",
        headers=JSON,
        body=json.dumps(payload),
    )
    assert status == 200
    assert as_json(body) == {"json": payload, "content_type": "application/json"}


def test_query_string_with_repeated_and_encoded_parameters(
    server: ServerProcess, site: str
) -> None:
    status, _, body = http(server, site, "GET", "/search?q=caf%C3%A9+au+lait&tag=a&tag=b%26c")
    assert status == 200
    assert as_json(body) == {"q": "café au lait", "tags": ["a", "b&c"]}


def test_urlencoded_form_post(server: ServerProcess, site: str) -> None:
    status, _, body = http(
        server,
        site,
        "POST",
        "/form",
        headers=FORM,
        body="name=Ada+Lovelace&lang=en&lang=fr",
    )
    assert status == 200
    assert as_json(body) == {"name": "Ada Lovelace", "langs": ["en", "fr"]}


def test_multipart_file_upload_keeps_every_byte(server: ServerProcess, site: str) -> None:
    data = bytes(range(256)) * 300 + b"\xff\xfe\x00 end"  # not UTF-8: must travel base64
    content_type, body = multipart(
        {"note": "quarterly figures"}, {"file": ("report.bin", data, "application/octet-stream")}
    )
    status, _, answer = http(
        server, site, "POST", "/upload", headers={"Content-Type": content_type}, body=body
    )
    assert status == 200, answer
    assert as_json(answer) == {
        "filename": "report.bin",
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "note": "quarterly figures",
    }


def test_cookies_set_by_the_app_come_back_on_the_next_request(
    server: ServerProcess, site: str
) -> None:
    status, headers, _ = http(server, site, "GET", "/login")
    assert status == 200
    set_cookies = headers.get_list("set-cookie")
    assert len(set_cookies) == 2
    assert any(c.startswith("session=abc123") and "HttpOnly" in c for c in set_cookies)
    assert any(c.startswith("theme=dark") for c in set_cookies)
    cookie = "; ".join(c.split(";", 1)[0] for c in set_cookies)
    status, _, body = http(server, site, "GET", "/whoami", headers={"Cookie": cookie})
    assert as_json(body) == {"cookies": {"session": "abc123", "theme": "dark"}}


def test_redirect_keeps_status_and_location(server: ServerProcess, site: str) -> None:
    """The app knows where /fn/ mounts it (SCRIPT_NAME, root_path): its own redirects and
    links point under /fn/NAME, and following them works."""
    status, headers, _ = http(server, site, "GET", "/old")
    assert status == 302
    assert headers["location"] == f"/fn/{site}/new"
    with httpx.Client(base_url=server.url) as client:
        followed = client.get(headers["location"])
    assert (followed.status_code, followed.content) == (200, b"the new place")


def test_exception_in_a_view_is_the_apps_own_500_page(server: ServerProcess, site: str) -> None:
    status, headers, body = http(server, site, "GET", "/boom")
    assert status == 500
    assert headers["content-type"].startswith("text/html")
    assert b"own error page" in body


def test_binary_response_round_trips_base64(server: ServerProcess, site: str) -> None:
    status, headers, body = http(server, site, "GET", "/logo.png")
    assert status == 200
    assert headers["content-type"] == "image/png"
    assert body == bytes(range(256)) * 4


def test_head_has_the_get_headers_and_no_body(server: ServerProcess, site: str) -> None:
    _, got_headers, got_body = http(server, site, "GET", "/")
    status, headers, body = http(server, site, "HEAD", "/")
    assert status == 200
    assert body == b""
    assert headers["content-type"] == got_headers["content-type"]
    assert headers["content-length"] == str(len(got_body))


def test_app_sees_the_request_as_the_client_sent_it(server: ServerProcess, site: str) -> None:
    status, _, body = http(
        server,
        site,
        "GET",
        "/request-info?x=1",
        headers={"X-Custom": "forty-two", "User-Agent": "curl/8.0"},
    )
    assert status == 200
    info = as_json(body)
    assert isinstance(info, dict)
    # Werkzeug's path leaves out where the app is mounted, Starlette's includes it; both
    # build the full URL the client used.
    assert info["path"] in ("/request-info", f"/fn/{site}/request-info")
    assert info["url"] == f"{server.url}/fn/{site}/request-info?x=1"
    assert info.get("remote_addr", info.get("client")) == "127.0.0.1"
    assert (info["user_agent"], info["custom"]) == ("curl/8.0", "forty-two")
    uuid.UUID(info["request_id"])  # the Lambda context reaches the app


def test_percent_encoded_unicode_path(server: ServerProcess, flask_site: str) -> None:
    status, _, body = http(server, flask_site, "GET", "/caf%C3%A9")
    assert (status, body) == (200, b"unicode path ok")


def test_asgi_streaming_response_is_collected_from_every_body_message(
    server: ServerProcess, fastapi_site: str
) -> None:
    status, headers, body = http(server, fastapi_site, "GET", "/stream")
    assert status == 200
    assert headers["content-type"].startswith("text/plain")
    assert body == b"".join(f"line {i}\n".encode() for i in range(5))


def test_asgi_request_body_arrives_as_a_stream_of_chunks(
    server: ServerProcess, fastapi_site: str
) -> None:
    data = b"x" * 200_000
    status, _, body = http(
        server,
        fastapi_site,
        "POST",
        "/count-chunks",
        headers={"Content-Type": "application/octet-stream"},
        body=data,
    )
    assert status == 200
    assert as_json(body) == {"chunks": 4, "size": 200_000}  # 64 KiB chunks


def test_asgi_worker_keeps_one_event_loop_and_its_lifespan_state(
    server: ServerProcess, fastapi_site: str
) -> None:
    _, _, first = http(server, fastapi_site, "GET", "/worker")
    _, _, second = http(server, fastapi_site, "GET", "/worker")
    one, two = as_json(first), as_json(second)
    assert isinstance(one, dict) and isinstance(two, dict)
    assert one["pid"] == two["pid"], "expected the warm worker to serve both"
    assert one["loop"] == two["loop"]
    assert two["calls"] == one["calls"] + 1
    # Lifespan startup ran in this very worker, not in the template it was forked from.
    assert one["started_pid"] == one["pid"]


def test_lifespan_startup_counts_in_init_duration_and_shutdown_runs_at_stop(
    tmp_path: Path,
) -> None:
    log = tmp_path / "lifespan.log"
    srv = ServerProcess(tmp_path / "home").wait_ready()
    try:
        name = unique("lifespan")
        with srv.client() as client:
            created = deploy(
                client,
                name,
                bundle("fastapi_site"),
                asgi="main:app",
                environment={"LIFESPAN_LOG": str(log), "STARTUP_DELAY_S": "0.4"},
            )
        assert created.status_code == 201, created.text
        assert created.json()["init_duration_ms"] >= 400
        status, _, body = http(srv, name, "GET", "/worker")
        assert status == 200
        pid = as_json(body)["pid"]  # type: ignore[index]
        assert f"startup {pid}\n" in log.read_text()
        assert f"shutdown {pid}" not in log.read_text()
    finally:
        srv.stop()
    wait_for(lambda: f"shutdown {pid}\n" in log.read_text(), 5, "lifespan shutdown")


def test_mangum_handler_runs_unchanged_as_a_plain_handler(server: ServerProcess) -> None:
    name = deployed(server, "fastapi_site", "mangum", handler="lambda_handler.handler")
    status, _, body = http(server, name, "GET", "/items/7")
    assert (status, as_json(body)) == (200, {"id": 7, "kind": "item"})
    status, headers, _ = http(server, name, "GET", "/login")
    assert len(headers.get_list("set-cookie")) == 2
    status, _, body = http(server, name, "GET", "/logo.png")
    assert (status, body) == (200, bytes(range(256)) * 4)


def test_apig_wsgi_handler_runs_unchanged_as_a_plain_handler(server: ServerProcess) -> None:
    name = deployed(server, "flask_site", "apigwsgi", handler="lambda_handler.handler")
    status, _, body = http(server, name, "GET", "/search?q=x&tag=a&tag=b")
    assert (status, as_json(body)) == (200, {"q": "x", "tags": ["a", "b"]})
    status, _, body = http(
        server,
        name,
        "POST",
        "/form",
        headers=FORM,
        body="name=Ada&lang=en",
    )
    assert as_json(body) == {"name": "Ada", "langs": ["en"]}
    status, _, body = http(server, name, "GET", "/logo.png")
    assert (status, body) == (200, bytes(range(256)) * 4)


@pytest.mark.parametrize("config", [{"wsgi": "wsgi_apps:raises"}, {"asgi": "asgi_apps:raises"}])
def test_app_without_an_error_page_gets_a_500_and_the_traceback_is_logged(
    server: ServerProcess, api: httpx.Client, config: dict[str, str]
) -> None:
    name = deployed(server, "raw_apps", "raw", **config)
    status, headers, body = http(server, name, "GET", "/")
    assert (status, body) == (500, b"Internal Server Error")
    assert headers["content-type"].startswith("text/plain")
    logs = api.get(f"/v1/functions/{name}/logs").json()["records"]
    text = "".join(r["text"] for r in logs)
    assert "ValueError: no error page of its own" in text


def test_asgi_app_dying_mid_response_is_a_500_not_half_a_page(server: ServerProcess) -> None:
    name = deployed(server, "raw_apps", "half", asgi="asgi_apps:half_sent")
    status, _, body = http(server, name, "GET", "/")
    assert (status, body) == (500, b"Internal Server Error")


def test_wsgi_generator_app_and_repeated_headers(server: ServerProcess) -> None:
    name = deployed(server, "raw_apps", "lazy", wsgi="wsgi_apps:lazy")
    status, headers, body = http(server, name, "GET", "/")
    assert (status, body) == (201, b"made lazily")
    assert headers["x-twice"] == "a"


def test_non_http_event_is_a_function_error_saying_what_it_expects(
    api: httpx.Client, flask_site: str
) -> None:
    response = api.post(f"/v1/functions/{flask_site}/invoke", json={"name": "Ada"})
    assert response.headers["x-pyfaas-function-error"] == "Unhandled"
    error = response.json()
    assert error["errorType"] == "BadEvent"
    assert "payload format 2.0" in error["errorMessage"]


def test_web_app_is_stored_and_shown(
    server: ServerProcess, api: httpx.Client, flask_site: str
) -> None:
    info = api.get(f"/v1/functions/{flask_site}").json()
    assert (info["wsgi"], info["asgi"]) == ("app:app", None)
    shown = run_cli("show", flask_site, server=server)
    assert shown.returncode == 0, shown.stderr
    assert "app:app" in shown.stdout
    listed = run_cli("ls", server=server)
    assert "wsgi app:app" in listed.stdout


def test_cli_deploys_an_asgi_app(server: ServerProcess, api: httpx.Client) -> None:
    name = unique("cli-asgi")
    done = run_cli(
        "deploy", str(APPS / "fastapi_site"), "--name", name, "--asgi", "main:app", server=server
    )
    assert done.returncode == 0, done.stderr
    assert api.get(f"/v1/functions/{name}").json()["asgi"] == "main:app"
    status, _, body = http(server, name, "GET", "/items/1")
    assert (status, as_json(body)) == (200, {"id": 1, "kind": "item"})


@pytest.mark.parametrize(
    ("directory", "config", "code", "hint"),
    [
        ("flask_site", {"wsgi": "app"}, "invalid_web_app", "module:attribute"),
        ("flask_site", {"wsgi": "app:app", "asgi": "app:app"}, "invalid_web_app", "not both"),
        ("flask_site", {"wsgi": "nosuchmodule:app"}, "handler_module_not_found", "nosuchmodule"),
        ("flask_site", {"wsgi": "app:application"}, "web_app_not_found", "'application'"),
        ("flask_site", {"asgi": "app:app"}, "web_app_not_callable", "--wsgi app:app"),
        ("fastapi_site", {"wsgi": "main:app"}, "web_app_not_callable", "--asgi main:app"),
        ("raw_apps", {"wsgi": "wsgi_apps:not_an_app"}, "web_app_not_callable", "is a int"),
        ("raw_apps", {"asgi": "asgi_apps:failing_startup"}, "web_app_startup_failed", "database"),
    ],
)
def test_bad_web_app_is_a_clear_deploy_error_and_nothing_is_written(
    api: httpx.Client,
    directory: str,
    config: dict[str, str],
    code: str,
    hint: str,
) -> None:
    name = unique("badapp")
    response = deploy(api, name, bundle(directory), **config)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert hint in error["message"]
    assert api.get(f"/v1/functions/{name}").status_code == 404


def test_cli_deploy_of_a_missing_app_is_one_line_not_a_traceback(server: ServerProcess) -> None:
    done = run_cli(
        "deploy", str(APPS / "flask_site"), "--name", unique("cli-bad"), "--wsgi", "app:nope",
        server=server,
    )  # fmt: skip
    assert done.returncode == 1
    assert "web_app_not_found" in done.stderr
    assert "Traceback" not in done.stderr


def test_patch_switches_a_function_to_a_web_app_and_back(
    server: ServerProcess, api: httpx.Client
) -> None:
    name = deployed(server, "flask_site", "switch", handler="lambda_handler.handler")
    changed = api.patch(f"/v1/functions/{name}", json={"wsgi": "app:app"})
    assert changed.status_code == 200, changed.text
    status, _, body = http(server, name, "GET", "/new")
    assert (status, body) == (200, b"the new place")
    bad = api.patch(f"/v1/functions/{name}", json={"asgi": "app:app"})
    assert bad.json()["error"]["code"] == "invalid_web_app"
    back = api.patch(f"/v1/functions/{name}", json={"wsgi": None})
    assert back.status_code == 200
    assert http(server, name, "GET", "/new")[2] == b"the new place"  # apig-wsgi again


@pytest.mark.parametrize(
    ("kind", "directory", "spec"),
    [("wsgi", "flask_site", "app:app"), ("asgi", "fastapi_site", "main:app")],
)
def test_a_web_app_serves_several_requests_at_once_in_one_worker(
    server: ServerProcess, kind: str, directory: str, spec: str
) -> None:
    """concurrency_per_worker: a WSGI app on the worker's threads, an ASGI app as tasks on
    the worker's one event loop (its lifespan's loop)."""
    name = deployed(server, directory, kind, concurrency_per_worker=4, **{kind: spec})
    http(server, name, "GET", "/slow?s=0")  # the worker is up
    with ThreadPoolExecutor(4) as pool:
        started = time.monotonic()
        answers = list(pool.map(lambda _: http(server, name, "GET", "/slow?s=0.6"), range(4)))
        took = time.monotonic() - started
    assert [status for status, _, _ in answers] == [200] * 4
    pids = {json.loads(body)["pid"] for _, _, body in answers}
    assert len(pids) == 1, "one worker served all four"
    assert took < 4 * 0.6 * 0.75, f"four 0.6 s requests took {took:.2f} s: not at once"
