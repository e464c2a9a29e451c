"""W3C trace context into handlers, and OpenTelemetry spans per invocation (tracing=console)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from conftest import ServerProcess, deploy, run_cli, unique

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"
ECHO = {"handler.py": "def handler(event, context):\n    return context.traceparent\n"}


def echo_function(client: httpx.Client) -> str:
    name = unique("trace")
    assert deploy(client, name, ECHO).status_code == 201
    return name


def test_the_callers_traceparent_reaches_the_handler_as_it_came(api: httpx.Client) -> None:
    name = echo_function(api)
    given = api.post(f"/v1/functions/{name}/invoke", headers={"traceparent": TRACEPARENT})
    assert given.json() == TRACEPARENT
    assert api.post(f"/v1/functions/{name}/invoke").json() is None


@pytest.mark.parametrize(
    "bad",
    [
        "00-not-hex-at-all",
        f"00-{TRACE_ID}-{PARENT_ID}",  # no flags
        f"ff-{TRACE_ID}-{PARENT_ID}-01",  # version ff is invalid
        f"00-{TRACE_ID[:-1]}-{PARENT_ID}-01",
    ],
)
def test_a_malformed_traceparent_is_ignored_not_refused(api: httpx.Client, bad: str) -> None:
    name = echo_function(api)
    answer = api.post(f"/v1/functions/{name}/invoke", headers={"traceparent": bad})
    assert answer.status_code == 200
    assert answer.json() is None


@pytest.fixture(scope="module")
def traced(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = ServerProcess(
        tmp_path_factory.mktemp("traced"), env={"PYFAAS_TRACING": "console"}
    ).wait_ready()
    try:
        yield server
    finally:
        server.stop()


def spans(server: ServerProcess) -> list[dict[str, object]]:
    """The spans ConsoleSpanExporter printed: one JSON object each, pretty-printed."""
    found = []
    decoder = json.JSONDecoder()
    text = server.output()
    for start in (m.start() for m in re.finditer(r'^\{\n\s+"name"', text, re.M)):
        span, _ = decoder.raw_decode(text[start:])
        found.append(span)
    return found


def test_an_invocation_is_a_span_child_of_the_callers_and_the_handler_continues_it(
    traced: ServerProcess,
) -> None:
    with traced.client() as client:
        name = echo_function(client)
        answer = client.post(f"/v1/functions/{name}/invoke", headers={"traceparent": TRACEPARENT})
    assert answer.status_code == 200
    handed = answer.json()
    version, trace_id, span_id, _flags = handed.split("-")
    assert (version, trace_id) == ("00", TRACE_ID), "the handler's context continues the trace"
    assert span_id != PARENT_ID, "its parent is pyfaas's invocation span, not the caller's"
    request_id = answer.headers["x-pyfaas-request-id"]
    mine = [s for s in spans(traced) if s["name"] == f"invoke {name}"]
    assert len(mine) == 1, traced.output()[-3000:]
    span = mine[0]
    assert span["parent_id"] == f"0x{PARENT_ID}"
    assert span["context"] == {
        "trace_id": f"0x{TRACE_ID}",
        "span_id": f"0x{span_id}",
        "trace_state": "[]",
    }
    attributes = span["attributes"]
    assert isinstance(attributes, dict)
    assert attributes["faas.invocation_id"] == request_id
    assert attributes["faas.name"] == name
    assert attributes["faas.trigger"] == "http"
    assert attributes["faas.coldstart"] is False  # deploy left a warm worker


def test_a_failing_invocation_marks_its_span_as_an_error(traced: ServerProcess) -> None:
    name = unique("trace-err")
    with traced.client() as client:
        failing = {"handler.py": "def handler(event, context):\n    raise ValueError('no')\n"}
        assert deploy(client, name, failing).status_code == 201
        answer = client.post(f"/v1/functions/{name}/invoke")
    assert answer.headers["x-pyfaas-function-error"] == "Unhandled"
    (span,) = [s for s in spans(traced) if s["name"] == f"invoke {name}"]
    assert span["parent_id"] is None, "no caller trace: a root span"
    assert span["status"] == {"status_code": "ERROR", "description": "Unhandled"}


def test_a_function_url_request_is_traced_too(traced: ServerProcess) -> None:
    with traced.client() as client:
        name = echo_function(client)
        made = client.post(f"/v1/functions/{name}/url", json={"auth_type": "NONE"})
        assert made.status_code == 201, made.text
        answer = client.get(f"/fn/{name}/", headers={"traceparent": TRACEPARENT})
    assert answer.status_code == 200
    assert answer.json().split("-")[1] == TRACE_ID
    (span,) = [s for s in spans(traced) if s["name"] == f"invoke {name}" and s["parent_id"]]
    assert span["parent_id"] == f"0x{PARENT_ID}"


def test_an_unknown_exporter_stops_the_server_with_one_line(tmp_path: Path) -> None:
    result = run_cli("serve", "--home", str(tmp_path), env={"PYFAAS_TRACING": "jaeger"}, timeout=60)
    assert result.returncode == 1
    assert "tracing must be one of none, console, otlp" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
