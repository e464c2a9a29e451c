"""Function URLs: an HTTP endpoint per function that speaks Lambda's payload format 2.0."""

from __future__ import annotations

import base64
import json
import os
import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from conftest import ServerProcess, deploy, postgres_database, run_cli, unique, wait_for
from pyfaas.control.url_payloads import http_response, request_event
from pyfaas.control.urls import route
from pyfaas.model import InvalidRequest
from pyfaas.model.urls import CorsConfig, FunctionUrlConfig, HttpRequest, InvalidFunctionResponse

TOKEN = "url-test-token"

# One handler that answers by the first segment of the path it is given.
WEB = """
import base64, json, time

def handler(event, context):
    head = event["rawPath"].split("/")[1]
    if head == "bare-dict":
        return {"hello": "world", "n": 1}
    if head == "bare-string":
        return "hello"
    if head == "bare-list":
        return [1, "two"]
    if head == "round-trip":
        return {
            "statusCode": 200,
            "headers": {"content-type": event["headers"].get("content-type", "text/plain")},
            "body": event.get("body", ""),
            "isBase64Encoded": event["isBase64Encoded"],
        }
    if head == "binary":
        return {
            "statusCode": 200,
            "headers": {"Content-Type": "application/octet-stream"},
            "body": base64.b64encode(bytes(range(256))).decode(),
            "isBase64Encoded": True,
        }
    if head == "mapped":
        return {
            "statusCode": 201,
            "headers": {"X-One": "1", "X-Both": "single", "X-Number": 7},
            "multiValueHeaders": {"X-Both": ["m1", "m2"], "X-Many": ["a", "b"]},
            "cookies": ["session=abc; Path=/; HttpOnly", "theme=dark"],
            "body": "created",
        }
    if head == "no-body":
        return {"statusCode": 204}
    if head == "own-cors":
        return {"statusCode": 200, "headers": {"Access-Control-Allow-Origin": "https://evil.example"}}
    if head == "raise":
        raise ValueError("the handler failed on purpose")
    if head == "sleep":
        time.sleep(5)
    if head == "bad-status":
        return {"statusCode": 42, "body": "?"}
    if head == "bad-header":
        return {"statusCode": 200, "headers": {"X-Split": "a\\r\\nInjected: yes"}}
    if head == "bad-base64":
        return {"statusCode": 200, "body": "***", "isBase64Encoded": True}
    return {"statusCode": 200, "headers": {"content-type": "application/json"},
            "body": json.dumps(event)}
"""


def deploy_web(api: httpx.Client, prefix: str = "web", **config: Any) -> str:
    name = unique(prefix)
    response = deploy(api, name, {"handler.py": WEB}, timeout_s=1, **config)
    assert response.status_code in (200, 201), response.text
    return name


def make_url(api: httpx.Client, name: str, **fields: Any) -> dict[str, Any]:
    response = api.post(f"/v1/functions/{name}/url", json={"auth_type": "NONE", **fields})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def error_code(response: httpx.Response) -> str:
    code: str = response.json()["error"]["code"]
    return code


@pytest.fixture(scope="module")
def web(api: httpx.Client) -> tuple[str, dict[str, Any]]:
    """A deployed function with a public URL and no CORS: (name, its URL configuration)."""
    name = deploy_web(api)
    return name, make_url(api, name)


@pytest.fixture(scope="module")
def no_url(api: httpx.Client) -> str:
    """A deployed function that has no URL (tests that fail to give it one share it)."""
    return deploy_web(api, "no-url")


def event_of(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    event: dict[str, Any] = response.json()
    return event


@pytest.fixture(scope="module")
def api(server: ServerProcess) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


# --- the request event --------------------------------------------------------------------


def test_a_get_with_a_query_string_arrives_as_a_payload_2_0_event(
    api: httpx.Client, web: tuple[str, dict[str, Any]]
) -> None:
    name, config = web
    before = time.time()
    response = api.get(
        f"/fn/{name}/users/1?a=1&a=2&b=x%20y&empty=",
        headers=[("X-Repeated", "one"), ("X-Repeated", "two"), ("User-Agent", "url-tests/1")],
    )
    event = event_of(response)
    assert event["version"] == "2.0" and event["routeKey"] == "$default"
    assert event["rawPath"] == "/users/1"
    assert event["rawQueryString"] == "a=1&a=2&b=x%20y&empty="
    assert event["queryStringParameters"] == {"a": "1,2", "b": "x y", "empty": ""}
    assert event["headers"]["x-repeated"] == "one,two"
    assert all(key == key.lower() for key in event["headers"])
    assert event["headers"]["x-forwarded-prefix"] == f"/fn/{name}"
    assert event["headers"]["x-forwarded-proto"] == "http"
    assert "body" not in event and event["isBase64Encoded"] is False
    assert "cookies" not in event
    context = event["requestContext"]
    assert context["http"] == {
        "method": "GET",
        "path": "/users/1",
        "protocol": "HTTP/1.1",
        "sourceIp": "127.0.0.1",
        "userAgent": "url-tests/1",
    }
    assert context["requestId"] == response.headers["x-pyfaas-request-id"]
    assert context["apiId"] == config["url_id"]
    assert context["accountId"] == "000000000000"
    assert context["domainName"] == "127.0.0.1" and context["domainPrefix"] == "127"
    assert context["stage"] == "$default" and context["routeKey"] == "$default"
    assert re.fullmatch(r"\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d \+0000", context["time"])
    assert before * 1000 - 1000 <= context["timeEpoch"] <= time.time() * 1000 + 1000


def test_the_function_sees_the_path_after_its_name_still_percent_encoded(
    api: httpx.Client, web: tuple[str, dict[str, Any]]
) -> None:
    name, _ = web
    assert event_of(api.get(f"/fn/{name}"))["rawPath"] == "/"
    assert event_of(api.get(f"/fn/{name}/"))["rawPath"] == "/"
    deep = event_of(api.get(f"/fn/{name}/files/a%2Fb%20c/"))
    assert deep["rawPath"] == "/files/a%2Fb%20c/"
    assert deep["requestContext"]["http"]["path"] == "/files/a%2Fb%20c/"


def test_cookies_come_in_as_a_list_and_go_out_as_set_cookie_headers(
    api: httpx.Client, web: tuple[str, dict[str, Any]]
) -> None:
    name, _ = web
    event = event_of(api.get(f"/fn/{name}/", headers={"Cookie": "a=1; b=two"}))
    assert event["cookies"] == ["a=1", "b=two"]
    assert "cookie" not in event["headers"]
    response = api.get(f"/fn/{name}/mapped")
    assert response.headers.get_list("set-cookie") == [
        "session=abc; Path=/; HttpOnly",
        "theme=dark",
    ]


def test_a_json_body_arrives_as_text_and_round_trips(
    api: httpx.Client, web: tuple[str, dict[str, Any]]
) -> None:
    name, _ = web
    document = {"name": "Ada", "langs": ["en", "fr"], "note": "naïve ✓"}
    event = event_of(api.post(f"/fn/{name}/", json=document))
    assert event["isBase64Encoded"] is False
    assert json.loads(event["body"]) == document
    echoed = api.post(f"/fn/{name}/round-trip", json=document)
    assert echoed.status_code == 200
    assert echoed.headers["content-type"] == "application/json"
    assert echoed.json() == document


def test_a_binary_body_arrives_base64_and_round_trips_byte_for_byte(
    api: httpx.Client, web: tuple[str, dict[str, Any]]
) -> None:
    name, _ = web
    blob = os.urandom(100_000) + b"\xff\x00"
    headers = {"content-type": "application/octet-stream"}
    event = event_of(api.post(f"/fn/{name}/", content=blob, headers=headers))
    assert event["isBase64Encoded"] is True
    echoed = api.post(f"/fn/{name}/round-trip", content=blob, headers=headers)
    assert echoed.status_code == 200 and echoed.content == blob
    # Text that is not UTF-8 is binary too.
    latin = "café".encode("latin-1")
    text_event = event_of(
        api.post(f"/fn/{name}/", content=latin, headers={"content-type": "text/plain"})
    )
    assert text_event["isBase64Encoded"] is True
    binary = api.get(f"/fn/{name}/binary")
    assert binary.content == bytes(range(256))
    assert binary.headers["content-type"] == "application/octet-stream"


def test_status_headers_multi_value_headers_and_body_are_mapped_back(
    api: httpx.Client, web: tuple[str, dict[str, Any]]
) -> None:
    name, _ = web
    response = api.get(f"/fn/{name}/mapped")
    assert response.status_code == 201
    assert response.text == "created"
    assert response.headers["x-one"] == "1"
    assert response.headers["x-number"] == "7"
    assert response.headers.get_list("x-both") == ["m1", "m2"]  # multiValueHeaders win
    assert response.headers.get_list("x-many") == ["a", "b"]
    assert response.headers["content-type"] == "application/json"  # Lambda's default
    empty = api.get(f"/fn/{name}/no-body")
    assert empty.status_code == 204 and empty.content == b""


def test_a_result_without_status_code_is_a_200_json_response_of_that_result(
    api: httpx.Client, web: tuple[str, dict[str, Any]]
) -> None:
    name, _ = web
    for path, expected in (
        ("bare-dict", {"hello": "world", "n": 1}),
        ("bare-string", "hello"),
        ("bare-list", [1, "two"]),
    ):
        response = api.get(f"/fn/{name}/{path}")
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        assert response.json() == expected
    assert api.get(f"/fn/{name}/bare-string").text == '"hello"'


def test_every_method_lambda_knows_reaches_the_function(
    api: httpx.Client, web: tuple[str, dict[str, Any]]
) -> None:
    name, _ = web
    for method in ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"):
        event = event_of(api.request(method, f"/fn/{name}/things"))
        assert event["requestContext"]["http"]["method"] == method
    head = api.head(f"/fn/{name}/bare-dict")
    assert head.status_code == 200 and head.content == b""


# --- failures of the function ---------------------------------------------------------------


def test_a_function_error_is_a_502_with_lambdas_error_object_and_the_trace_in_the_logs(
    api: httpx.Client, web: tuple[str, dict[str, Any]]
) -> None:
    name, _ = web
    response = api.get(f"/fn/{name}/raise")
    assert response.status_code == 502
    assert response.headers["x-pyfaas-function-error"] == "Unhandled"
    assert response.json() == {
        "errorMessage": "the handler failed on purpose",
        "errorType": "ValueError",
    }
    request_id = response.headers["x-pyfaas-request-id"]

    def logged() -> str:
        records = api.get(f"/v1/functions/{name}/logs", params={"request_id": request_id})
        return "".join(r["text"] for r in records.json()["records"])

    wait_for(lambda: "REPORT RequestId: " + request_id in logged(), what="the REPORT line")
    assert "Traceback" in logged() and "the handler failed on purpose" in logged()


def test_a_timeout_is_a_504(api: httpx.Client, web: tuple[str, dict[str, Any]]) -> None:
    name, _ = web
    response = api.get(f"/fn/{name}/sleep")
    assert response.status_code == 504
    assert response.json()["errorType"] == "Sandbox.Timedout"
    assert api.get(f"/fn/{name}/bare-string").status_code == 200, "a fresh worker serves next"


@pytest.mark.parametrize(
    ("path", "complaint"),
    [
        ("bad-status", "statusCode must be a whole number 100-599"),
        ("bad-header", "line break"),
        ("bad-base64", "not base64"),
    ],
)
def test_a_result_that_is_no_http_response_is_a_502_saying_why(
    api: httpx.Client, web: tuple[str, dict[str, Any]], path: str, complaint: str
) -> None:
    name, _ = web
    response = api.get(f"/fn/{name}/{path}")
    assert response.status_code == 502
    assert error_code(response) == "invalid_function_response"
    assert complaint in response.json()["error"]["message"]
    assert "injected" not in response.headers


def test_a_throttled_function_url_answers_429_with_retry_after_and_cors(
    api: httpx.Client,
) -> None:
    name = deploy_web(api, "throttled")
    make_url(api, name, cors={"allow_origins": ["https://app.example"]})
    assert api.patch(f"/v1/functions/{name}", json={"reserved_concurrency": 0}).status_code == 200
    response = api.get(f"/fn/{name}/bare-dict", headers={"Origin": "https://app.example"})
    assert response.status_code == 429
    assert error_code(response) == "too_many_requests"
    assert int(response.headers["retry-after"]) >= 1
    # A browser page can read the refusal.
    assert response.headers["access-control-allow-origin"] == "https://app.example"


# --- bad input ------------------------------------------------------------------------------


def test_a_body_over_6_mb_is_a_413_before_the_function_runs(
    api: httpx.Client, web: tuple[str, dict[str, Any]]
) -> None:
    name, _ = web
    too_big = api.post(f"/fn/{name}/", content=b"x" * (6 * 1024 * 1024 + 1))
    assert too_big.status_code == 413 and error_code(too_big) == "payload_too_large"
    # 5 MB of binary is 6.7 MB once base64-encoded in the event: too large as well.
    binary = api.post(
        f"/fn/{name}/",
        content=b"\xff" * (5 * 1024 * 1024),
        headers={"content-type": "application/octet-stream"},
    )
    assert binary.status_code == 413 and "base64" in binary.json()["error"]["message"]


def test_unknown_functions_and_functions_without_a_url_are_404s_with_stable_codes(
    api: httpx.Client,
) -> None:
    missing = api.get(f"/fn/{unique('nobody')}/")
    assert missing.status_code == 404 and error_code(missing) == "function_not_found"
    name = deploy_web(api, "url-removed")
    no_url = api.post(f"/fn/{name}/anything", json={})
    assert no_url.status_code == 404 and error_code(no_url) == "function_url_not_found"
    assert f"pyfaas url create {name}" in no_url.json()["error"]["message"]
    make_url(api, name)
    assert api.get(f"/fn/{name}/bare-dict").status_code == 200
    assert api.delete(f"/v1/functions/{name}/url").status_code == 204
    gone = api.get(f"/fn/{name}/bare-dict")
    assert gone.status_code == 404 and error_code(gone) == "function_url_not_found"


def test_deleting_a_function_deletes_its_url(api: httpx.Client) -> None:
    name = deploy_web(api, "deleted")
    make_url(api, name)
    assert api.get(f"/fn/{name}/bare-dict").status_code == 200
    assert api.delete(f"/v1/functions/{name}").status_code == 204
    assert error_code(api.get(f"/fn/{name}/")) == "function_not_found"
    assert deploy(api, name, {"handler.py": WEB}).status_code == 201
    again = api.get(f"/fn/{name}/bare-dict")
    assert again.status_code == 404 and error_code(again) == "function_url_not_found"


@pytest.mark.parametrize(
    ("fields", "code", "hint"),
    [
        ({"auth_type": "AWS_IAM"}, "invalid_auth_type", "NONE (public) or TOKEN"),
        ({}, "invalid_auth_type", "auth_type is required"),
        ({"auth_type": "TOKEN"}, "invalid_auth_type", "PYFAAS_TOKEN"),
        ({"auth_type": "NONE", "cors": ["*"]}, "invalid_cors", "cors must be an object"),
        (
            {"auth_type": "NONE", "cors": {"allow_origins": ["example.com/path"]}},
            "invalid_cors",
            "'https://example.com'",
        ),
        (
            {"auth_type": "NONE", "cors": {"allow_methods": ["FETCH"]}},
            "invalid_cors",
            "not one of GET",
        ),
        ({"auth_type": "NONE", "cors": {"max_age": 90000}}, "invalid_cors", "0-86400"),
        (
            {"auth_type": "NONE", "cors": {"allow_headers": ["bad header"]}},
            "invalid_cors",
            "not an HTTP header name",
        ),
        ({"auth_type": "NONE", "cors": {"origins": ["*"]}}, "invalid_cors", "unknown cors"),
        (
            {"auth_type": "NONE", "cors": {"allow_credentials": "yes"}},
            "invalid_cors",
            "true or false",
        ),
        ({"auth_type": "NONE", "invoke_mode": "STREAM"}, "unknown_field", "invoke_mode"),
        ({"auth_type": "NONE", "qualifier": "a b"}, "invalid_qualifier", "neither a version"),
    ],
)
def test_a_bad_url_configuration_is_a_400_and_creates_nothing(
    api: httpx.Client, no_url: str, fields: dict[str, Any], code: str, hint: str
) -> None:
    name = no_url
    response = api.post(f"/v1/functions/{name}/url", json=fields)
    assert response.status_code == 400, response.text
    assert error_code(response) == code
    assert hint in response.json()["error"]["message"]
    assert error_code(api.get(f"/v1/functions/{name}/url")) == "function_url_not_found"
    assert error_code(api.get(f"/fn/{name}/")) == "function_url_not_found"


def test_bad_requests_to_the_url_api_name_what_to_fix(
    api: httpx.Client, web: tuple[str, dict[str, Any]], no_url: str
) -> None:
    name, config = web
    not_json = api.post(f"/v1/functions/{name}/url", content=b"{auth")
    assert not_json.status_code == 400 and error_code(not_json) == "invalid_json"
    twice = api.post(f"/v1/functions/{name}/url", json={"auth_type": "NONE"})
    assert twice.status_code == 409 and error_code(twice) == "function_url_exists"
    nobody = unique("nobody")
    for method in ("POST", "GET", "PATCH", "DELETE"):
        response = api.request(method, f"/v1/functions/{nobody}/url", json={"auth_type": "NONE"})
        assert response.status_code == 404 and error_code(response) == "function_not_found"
    empty = api.patch(f"/v1/functions/{name}/url", json={})
    assert empty.status_code == 400 and "nothing to change" in empty.json()["error"]["message"]
    bad = api.patch(f"/v1/functions/{name}/url", json={"cors": {"allow_origins": ["nope"]}})
    assert bad.status_code == 400 and error_code(bad) == "invalid_cors"
    unchanged = api.get(f"/v1/functions/{name}/url").json()
    assert unchanged["cors"] is None and unchanged["updated_at"] == config["updated_at"]
    for method in ("GET", "PATCH", "DELETE"):
        response = api.request(method, f"/v1/functions/{no_url}/url", json={"cors": None})
        assert response.status_code == 404 and error_code(response) == "function_url_not_found"


def test_the_url_configuration_reads_back_and_patches(
    server: ServerProcess, api: httpx.Client
) -> None:
    name = deploy_web(api, "patched")
    created = make_url(api, name, cors={"allow_origins": ["https://A.example"]})
    assert created["url"] == f"{server.url}/fn/{name}/"
    assert len(created["url_id"]) == 32 and created["qualifier"] is None
    assert created["cors"]["allow_origins"] == ["https://a.example"]
    shown = api.get(f"/v1/functions/{name}/url").json()
    assert shown == created
    patched = api.patch(f"/v1/functions/{name}/url", json={"cors": None}).json()
    assert patched["cors"] is None and patched["auth_type"] == "NONE"
    assert patched["url_id"] == created["url_id"]
    assert patched["updated_at"] >= created["updated_at"]


# --- CORS -------------------------------------------------------------------------------------

CORS = {
    "allow_origins": ["https://app.example"],
    "allow_methods": ["GET", "POST"],
    "allow_headers": ["x-custom", "content-type"],
    "expose_headers": ["x-one"],
    "max_age": 300,
    "allow_credentials": True,
}


def test_the_platform_answers_cors_preflight_requests(api: httpx.Client) -> None:
    name = deploy_web(api, "cors")
    make_url(api, name, cors=CORS)
    preflight = api.options(
        f"/fn/{name}/things",
        headers={
            "Origin": "https://app.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "x-custom",
        },
    )
    assert preflight.status_code == 200 and preflight.content == b""
    assert preflight.headers["access-control-allow-origin"] == "https://app.example"
    assert preflight.headers["access-control-allow-methods"] == "GET, POST"
    assert preflight.headers["access-control-allow-headers"] == "x-custom, content-type"
    assert preflight.headers["access-control-max-age"] == "300"
    assert preflight.headers["access-control-allow-credentials"] == "true"
    assert "x-pyfaas-request-id" not in preflight.headers, "the function did not run"
    for origin, method in (("https://other.example", "POST"), ("https://app.example", "PUT")):
        refused = api.options(
            f"/fn/{name}/",
            headers={"Origin": origin, "Access-Control-Request-Method": method},
        )
        assert refused.status_code == 200
        assert "access-control-allow-origin" not in refused.headers


def test_cors_headers_go_on_every_response_and_win_over_the_functions(
    api: httpx.Client,
) -> None:
    name = deploy_web(api, "cors-resp")
    make_url(api, name, cors=CORS)
    response = api.get(f"/fn/{name}/mapped", headers={"Origin": "https://app.example"})
    assert response.status_code == 201
    assert response.headers["access-control-allow-origin"] == "https://app.example"
    assert response.headers["access-control-expose-headers"] == "x-one"
    assert response.headers["access-control-allow-credentials"] == "true"
    assert "Origin" in response.headers["vary"]
    own = api.get(f"/fn/{name}/own-cors", headers={"Origin": "https://other.example"})
    assert "access-control-allow-origin" not in own.headers
    star = deploy_web(api, "cors-star")
    make_url(api, star, cors={"allow_origins": ["*"], "allow_methods": ["*"]})
    anyone = api.get(f"/fn/{star}/bare-dict", headers={"Origin": "https://x.example"})
    assert anyone.headers["access-control-allow-origin"] == "*"


def test_without_cors_settings_options_goes_to_the_function_untouched(
    api: httpx.Client, web: tuple[str, dict[str, Any]]
) -> None:
    name, _ = web
    response = api.options(
        f"/fn/{name}/",
        headers={"Origin": "https://a.example", "Access-Control-Request-Method": "GET"},
    )
    assert event_of(response)["requestContext"]["http"]["method"] == "OPTIONS"
    assert "access-control-allow-origin" not in response.headers
    own = api.get(f"/fn/{name}/own-cors")
    assert own.headers["access-control-allow-origin"] == "https://evil.example"


# --- auth -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    srv = ServerProcess(tmp_path_factory.mktemp("url-guarded"), env={"PYFAAS_TOKEN": TOKEN})
    yield srv.wait_ready()
    srv.stop()


def test_public_urls_answer_anyone_while_the_api_and_token_urls_need_the_token(
    guarded: ServerProcess,
) -> None:
    with guarded.client() as admin:
        public, private, bare = (deploy_web(admin, p) for p in ("public", "private", "bare"))
        make_url(admin, public)
        token_url = admin.post(
            f"/v1/functions/{private}/url",
            json={"auth_type": "TOKEN", "cors": {"allow_origins": ["*"], "allow_methods": ["*"]}},
        )
        assert token_url.status_code == 201 and token_url.json()["auth_type"] == "TOKEN"
    with httpx.Client(base_url=guarded.url, timeout=60) as stranger:
        assert stranger.get(f"/fn/{public}/bare-dict").json() == {"hello": "world", "n": 1}
        assert stranger.get(f"/v1/functions/{public}/url").status_code == 401
        assert stranger.get("/v1/functions").status_code == 401
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
            refused = stranger.get(
                f"/fn/{private}/bare-dict", headers={**headers, "Origin": "https://a.example"}
            )
            assert refused.status_code == 401 and error_code(refused) == "unauthorized"
            assert "access-control-allow-origin" not in refused.headers
        # Without the token nobody learns which names exist.
        for name in (unique("nobody"), bare):
            probe = stranger.get(f"/fn/{name}/")
            assert probe.status_code == 401 and error_code(probe) == "unauthorized"
        # A browser's preflight carries no token: CORS still answers it.
        preflight = stranger.options(
            f"/fn/{private}/",
            headers={"Origin": "https://a.example", "Access-Control-Request-Method": "GET"},
        )
        assert preflight.headers["access-control-allow-origin"] == "*"
    with guarded.client() as admin:
        event = event_of(admin.get(f"/fn/{private}/"))
        assert "authorization" not in event["headers"], "the server's token stays out of events"
        assert error_code(admin.get(f"/fn/{bare}/")) == "function_url_not_found"
        assert error_code(admin.get(f"/fn/{unique('nobody')}/")) == "function_not_found"
        public_event = event_of(
            admin.get(f"/fn/{public}/", headers={"Authorization": "Bearer app-token"})
        )
        assert public_event["headers"]["authorization"] == "Bearer app-token"


# --- CLI --------------------------------------------------------------------------------------


def test_the_cli_creates_shows_updates_and_removes_urls(
    server: ServerProcess, api: httpx.Client
) -> None:
    name = deploy_web(api, "cli")
    created = run_cli(
        "url",
        "create",
        name,
        "--auth-type",
        "NONE",
        "--allow-origin",
        "https://app.example",
        "--allow-method",
        "GET",
        "--max-age",
        "60",
        server=server,
    )
    assert created.returncode == 0, created.stderr
    url = created.stdout.strip()
    assert url == f"{server.url}/fn/{name}/"
    assert httpx.get(url + "bare-dict").json() == {"hello": "world", "n": 1}
    shown = run_cli("url", "show", name, server=server)
    assert shown.returncode == 0 and url in shown.stdout and "https://app.example" in shown.stdout
    as_json = json.loads(run_cli("url", "show", name, "--json", server=server).stdout)
    assert as_json["cors"]["max_age"] == 60
    updated = run_cli("url", "update", name, "--no-cors", server=server)
    assert updated.returncode == 0 and updated.stdout.strip() == url
    assert api.get(f"/v1/functions/{name}/url").json()["cors"] is None
    removed = run_cli("url", "rm", name, server=server)
    assert removed.returncode == 0
    assert error_code(httpx.get(url)) == "function_url_not_found"


def test_cli_mistakes_are_one_line_errors(server: ServerProcess, api: httpx.Client) -> None:
    name = deploy_web(api, "cli-bad")
    for args, message in (
        (("url", "create", name), "--auth-type is required"),
        (("url", "create", name, "--auth-type", "IAM"), "[invalid_auth_type]"),
        (
            ("url", "create", name, "--auth-type", "NONE", "--allow-origin", "x"),
            "[invalid_cors]",
        ),
        (("url", "update", name), "nothing to change"),
        (("url", "show", name), "[function_url_not_found]"),
        (("url", "rm", name), "[function_url_not_found]"),
        (("url", "show", unique("nobody")), "[function_not_found]"),
    ):
        result = run_cli(*args, server=server)
        assert result.returncode == 1, args
        assert message in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr


# --- PostgreSQL, and routing of qualifiers -------------------------------------------------


@pytest.mark.postgres
def test_function_urls_on_postgresql(tmp_path_factory: pytest.TempPathFactory) -> None:
    with postgres_database() as url:
        srv = ServerProcess(tmp_path_factory.mktemp("pg-urls"), env={"PYFAAS_DATABASE_URL": url})
        try:
            with srv.wait_ready().client() as api:
                name = deploy_web(api, "pg")
                make_url(api, name, cors={"allow_origins": ["https://app.example"]})
                twice = api.post(f"/v1/functions/{name}/url", json={"auth_type": "NONE"})
                assert error_code(twice) == "function_url_exists"
                event = event_of(api.get(f"/fn/{name}/x?q=1"))
                assert event["rawPath"] == "/x" and event["queryStringParameters"] == {"q": "1"}
                assert api.delete(f"/v1/functions/{name}").status_code == 204
                assert deploy(api, name, {"handler.py": WEB}).status_code == 201
                assert error_code(api.get(f"/fn/{name}/")) == "function_url_not_found"
        finally:
            srv.stop()


def _config(qualifier: str | None) -> FunctionUrlConfig:
    return FunctionUrlConfig("f", qualifier, "id", "NONE", None, 0.0, 0.0)


def test_a_first_segment_naming_a_qualified_url_selects_it_and_anything_else_is_a_path() -> None:
    plain, live = _config(None), _config("live")
    both = [plain, live]
    assert route(both, "") == (plain, "/")
    assert route(both, "/") == (plain, "/")
    assert route(both, "/users/1") == (plain, "/users/1")
    assert route(both, "/live") == (live, "/")
    assert route(both, "/live/users/1") == (live, "/users/1")
    assert route(both, "/lively") == (plain, "/lively")
    assert route([live], "/other") == (None, "/other")
    assert route([plain], "/live/x") == (plain, "/live/x")


# --- the payload parsers, on any input -------------------------------------------------------

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
CONTENT_TYPES = st.sampled_from(
    [
        None,
        "application/json",
        "text/plain; charset=utf-8",
        "image/png",
        "application/x-www-form-urlencoded",
    ]
)


@given(body=st.binary(max_size=300), content_type=CONTENT_TYPES)
def test_any_body_can_be_recovered_from_the_event(body: bytes, content_type: str | None) -> None:
    headers = (("content-type", content_type),) if content_type else ()
    request = HttpRequest("POST", "/", "", headers, body, "10.0.0.1")
    event = request_event(request, config=_config(None), request_id="r", account_id="1")
    if not body:
        assert "body" not in event and event["isBase64Encoded"] is False
        return
    sent = event["body"]
    recovered = base64.b64decode(sent) if event["isBase64Encoded"] else sent.encode()
    assert recovered == body


@given(value=JSON, status=st.integers(-5, 700) | st.text(max_size=4), extra=JSON)
@example(value=None, status="\u00b2", extra=None)  # a digit to str.isdigit(), not to int()
def test_any_result_maps_to_a_response_or_a_502_saying_why(
    value: object, status: object, extra: object
) -> None:
    for result in (value, {"statusCode": status, "headers": extra, "body": value}):
        try:
            response = http_response(orjson.dumps(result))
        except InvalidFunctionResponse as exc:
            assert exc.status == 502 and exc.message
            continue
        assert 100 <= response.status <= 599
        for name, text in response.headers:
            assert name == name.lower() and not any(c in text for c in "\r\n\0")
            text.encode("latin-1")


@given(data=JSON)
def test_any_cors_settings_are_accepted_or_refused_with_invalid_cors(data: object) -> None:
    try:
        cors = CorsConfig.from_dict(data)
    except InvalidRequest as exc:
        assert exc.code == "invalid_cors"
    else:
        assert CorsConfig.from_dict(cors.to_dict()) == cors


def test_the_url_api_is_in_the_openapi_document_and_the_endpoints_are_not(
    api: httpx.Client,
) -> None:
    paths = api.get("/v1/openapi.json").json()["paths"]
    assert set(paths["/v1/functions/{name}/url"]) == {"post", "get", "patch", "delete"}
    assert not any(path.startswith("/fn") for path in paths)
