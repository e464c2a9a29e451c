"""schemathesis over /v1/openapi.json: every documented operation of a real server (with a
token, real functions, schedules, versions, secrets, tokens and a Redis event source behind
the path parameters) answers without a 5xx, with a status code the document lists, and with
a body and headers that match what the document declares for that status."""

from __future__ import annotations

import collections
import contextlib
import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import jsonschema
import pytest
import schemathesis
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

# OpenAPI 3.0's schema as schemathesis ships it (the test extra has no other validator).
from schemathesis.specs.openapi.definitions import OPENAPI_30

from conftest import ServerProcess, deploy, postgres_database, serving, unique, wait_for

TOKEN = "openapi-fuzz-admin-token"
REDIS_URL = "redis://127.0.0.1:6379/0"
ECHO = "def handler(event, context):\n    return {'event': event}\n"
FAIL = "def handler(event, context):\n    raise ValueError('failing on purpose')\n"
# Examples per operation and phase, and the seed: a deeper local run sets them higher and
# varies the seed (PYFAAS_FUZZ_EXAMPLES=200 PYFAAS_FUZZ_SEED=7); CI runs the defaults.
EXAMPLES = int(os.environ.get("PYFAAS_FUZZ_EXAMPLES", "15"))
SEED = int(os.environ.get("PYFAAS_FUZZ_SEED", "20261125"))
# The status codes each server's operations answered, for the check that the real fixtures
# were hit: (server URL, "METHOD /path") -> codes.
ANSWERED: dict[tuple[str, str], set[int]] = collections.defaultdict(set)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    ignored_auth,
]


@dataclass
class Fixtures:
    """What a path parameter can name on the server: ``kept`` for every operation but
    DELETE, ``doomed`` for DELETE (so that deleting never removes what the rest probe)."""

    kept: dict[str, dict[str, str]] = field(default_factory=dict)
    doomed: dict[str, dict[str, str]] = field(default_factory=dict)
    # Deleting a function takes its URL, schedules, versions and aliases with it:
    # DELETE /v1/functions/{name} gets a function of its own.
    gone: str = ""

    def real_parameters(self, method: str, path: str) -> dict[str, str]:
        if method.upper() == "DELETE" and path == "/v1/functions/{name}":
            return {"name": self.gone}
        table = self.doomed if method.upper() == "DELETE" else self.kept
        # The longest template prefix that the table knows decides (secrets' {name} is a
        # secret, functions' {name} a function).
        for prefix in sorted(table, key=len, reverse=True):
            if path.startswith(prefix):
                return table[prefix]
        return {}


def _ok(response: httpx.Response, status: int = 201) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    return body


def _function_family(api: httpx.Client, prefix: str) -> dict[str, str]:
    """A function with a URL, a schedule, a published version and an alias on it."""
    name = unique(prefix)
    _ok(deploy(api, name, {"handler.py": ECHO}))
    _ok(api.post(f"/v1/functions/{name}/url", json={"auth_type": "NONE"}))
    schedule = _ok(api.post(f"/v1/functions/{name}/schedules", json={"expression": "rate(1 day)"}))
    version = _ok(api.post(f"/v1/functions/{name}/versions", json={}))
    _ok(
        api.put(f"/v1/functions/{name}/aliases/live", json={"version": str(version["version"])}),
        200,
    )
    return {"name": name, "id": schedule["id"], "version": str(version["version"]), "alias": "live"}


def _mapping(api: httpx.Client, function: str) -> str:
    body = {"function": function, "type": "redis", "url": REDIS_URL}
    body["stream"] = f"pyfaas-fuzz-{uuid.uuid4().hex[:10]}"
    return str(_ok(api.post("/v1/event-source-mappings", json=body))["uuid"])


def _dead_letter(api: httpx.Client) -> str:
    name = unique("fuzz-fail")
    _ok(deploy(api, name, {"handler.py": FAIL}, maximum_retry_attempts=0))
    request_id = str(
        _ok(
            api.post(
                f"/v1/functions/{name}/invoke", json={}, headers={"X-Invocation-Type": "Event"}
            ),
            202,
        )["request_id"]
    )
    wait_for(
        lambda: api.get(f"/v1/invocations/{request_id}").json()["status"] == "dead",
        what="the failing event reaches the dead-letter queue",
    )
    return request_id


# Both stores: PostgreSQL refuses what SQLite stores (NUL characters, for one).
@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def fuzzed(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    env = {
        "PYFAAS_TOKEN": TOKEN,
        "PYFAAS_IDLE_TIMEOUT_S": "30",
        # The fuzzer sends wrong tokens on purpose (ignored_auth) many times a second.
        "PYFAAS_AUTH_FAILURE_LIMIT": "100000",
    }
    with contextlib.ExitStack() as stack:
        if request.param == "postgresql":
            env["PYFAAS_DATABASE_URL"] = stack.enter_context(postgres_database())
        yield stack.enter_context(serving(tmp_path_factory.mktemp("openapi-fuzz"), env))


@pytest.fixture(scope="module")
def fixtures(fuzzed: ServerProcess) -> Fixtures:
    with fuzzed.client() as api:
        kept = _function_family(api, "fuzz-kept")
        doomed = _function_family(api, "fuzz-doomed")
        gone = unique("fuzz-gone")
        _ok(deploy(api, gone, {"handler.py": ECHO}))
        request_id = str(
            _ok(
                api.post(
                    f"/v1/functions/{kept['name']}/invoke",
                    json={},
                    headers={"X-Invocation-Type": "Event"},
                ),
                202,
            )["request_id"]
        )
        dead = _dead_letter(api)
        _ok(api.put("/v1/secrets/FUZZ_KEPT", json={"value": "kept"}))
        _ok(api.put("/v1/secrets/FUZZ_DOOMED", json={"value": "doomed"}))
        kept_token = _ok(api.post("/v1/tokens", json={"name": "kept", "scopes": ["read"]}))
        doomed_token = _ok(api.post("/v1/tokens", json={"name": "doomed", "scopes": ["read"]}))
        kept_mapping = _mapping(api, kept["name"])
        doomed_mapping = _mapping(api, doomed["name"])
    return Fixtures(
        gone=gone,
        kept={
            "/v1/functions/": kept,
            "/v1/secrets/": {"name": "FUZZ_KEPT"},
            "/v1/tokens/": {"id": kept_token["id"]},
            "/v1/event-source-mappings/": {"uuid": kept_mapping},
            "/v1/invocations/": {"request_id": request_id},
            "/v1/dlq/": {"request_id": dead},
        },
        doomed={
            "/v1/functions/": doomed,
            "/v1/secrets/": {"name": "FUZZ_DOOMED"},
            "/v1/tokens/": {"id": doomed_token["id"]},
            "/v1/event-source-mappings/": {"uuid": doomed_mapping},
        },
    )


# Text that random generation seldom makes and that a store or a file system may refuse:
# PostgreSQL's text cannot hold NUL, for one.
HOSTILE_TEXT = st.sampled_from(["\x00", "a\x00b", "%00", "\ufffd", " ", "\u00e9" * 300])


def _named(generated: Any, real: dict[str, str]) -> Any:
    return {**generated, **real} if isinstance(generated, dict) else generated


def _sometimes_hostile(strategy: Any) -> Any:
    """Generated parameters, or the same with their text values made hostile."""

    def spoil(values: Any) -> Any:
        # Negative cases come wrapped with what schemathesis made invalid: left as they are.
        if not isinstance(values, dict):
            return st.just(values)
        texts = sorted(key for key, value in values.items() if isinstance(value, str))
        if not texts:
            return st.just(values)
        hostile = st.fixed_dictionaries({key: HOSTILE_TEXT for key in texts})
        return hostile.map(lambda replaced: {**values, **replaced})

    return st.one_of(strategy, strategy.flatmap(spoil))


@pytest.fixture(scope="module")
def api_schema(fuzzed: ServerProcess, fixtures: Fixtures) -> Any:
    config = schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "request-timeout": 30,
            # Failures found in one run are not replayed in the next: each run stands alone.
            "cache": {"enabled": False},
            "generation": {
                "max-examples": EXAMPLES,
                "deterministic": True,
                "database": "none",
                # The token is sent by the test (below), not made up by the generator.
                "with-security-parameters": False,
            },
            "suppress-health-check": ["too_slow", "filter_too_much", "data_too_large"],
        }
    )
    loaded = schemathesis.openapi.from_url(
        f"{fuzzed.url}/v1/openapi.json",
        config=config,
        headers={"Authorization": f"Bearer {TOKEN}"},
    )

    @loaded.hook
    def before_generate_path_parameters(context: Any, strategy: Any) -> Any:
        operation = context.operation
        real = fixtures.real_parameters(operation.method, operation.path)
        wanted = {p.name for p in operation.path_parameters}
        real = {key: value for key, value in real.items() if key in wanted}
        spoiled = _sometimes_hostile(strategy)
        if not real:
            return spoiled
        # Names of what exists (to reach the code behind the lookup), or what the schema
        # allows, or text that no name can hold.
        return st.one_of(strategy.map(lambda generated: _named(generated, real)), spoiled)

    @loaded.hook
    def before_generate_query(context: Any, strategy: Any) -> Any:
        return _sometimes_hostile(strategy)

    return loaded


@schemathesis.serializer("application/x-ndjson")
def _ndjson(context: Any, value: Any) -> bytes:
    """invoke-batch's body: the generated events, one JSON value per line."""
    events = value if isinstance(value, list) else [value]
    return b"\n".join(json.dumps(event).encode() for event in events)


schema = schemathesis.pytest.from_fixture("api_schema").exclude(
    # A server-sent event stream that never ends by itself: a request would wait for the
    # timeout. tests/test_logs.py follows it with a real client.
    path="/v1/functions/{name}/logs/stream"
)


@pytest.fixture(autouse=True)
def _node_id_for_schemathesis(request: pytest.FixtureRequest) -> None:
    """schemathesis 4.32's fixture-loaded schemas read and rename ``node._nodeid``, which
    pytest 9.2 no longer has (the id lives in ``node._id``): give it the attribute to read.
    Each operation still runs and fails as a subtest named ``METHOD /path``."""
    request.node._nodeid = request.node.nodeid


@schema.parametrize()
@pytest.mark.timeout(360)  # every operation, EXAMPLES cases each
def test_every_operation_answers_as_documented(case: Any, fuzzed: ServerProcess) -> None:
    # Headers given here count as the caller's own credentials: ignored_auth then sends the
    # same request again without the token and with a wrong one, and expects 401.
    response = case.call_and_validate(headers={"Authorization": f"Bearer {TOKEN}"}, checks=CHECKS)
    ANSWERED[fuzzed.url, case.operation.label].add(response.status_code)


def test_the_fuzzer_reached_what_the_path_parameters_name(
    api_schema: Any, fuzzed: ServerProcess
) -> None:
    """Each operation with path parameters got at least one answer other than 404: the
    fixtures are real, so the fuzz above tested the code behind the lookup too."""
    operations = [result.ok() for result in api_schema.get_all_operations()]
    answered = {op.label: ANSWERED.get((fuzzed.url, op.label), set()) for op in operations}
    assert any(answered.values()), "runs after the fuzz test above, in the same session"
    missed = [op.label for op in operations if op.path_parameters and answered[op.label] == {404}]
    assert missed == []


def test_the_document_is_valid_openapi_3_0(fuzzed: ServerProcess) -> None:
    """The document comes from route docstrings: a YAML slip there (an unquoted comma in a
    flow mapping makes a stray key) is caught by OpenAPI 3.0's own JSON Schema."""
    with fuzzed.client() as api:
        document = api.get("/v1/openapi.json").json()
    errors = [
        f"{'/'.join(map(str, error.path))}: {error.message[:200]}"
        for error in jsonschema.Draft4Validator(OPENAPI_30).iter_errors(document)
    ]
    assert errors == []
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            assert {"401", "403"} <= set(operation["responses"]), (method, path)
