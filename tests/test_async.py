"""Asynchronous invocations on a real server: durable accept, retries, destinations, DLQ."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import ServerProcess, deploy, post_many, run_cli, unique, wait_for

pytestmark = pytest.mark.slow

EVENT = {"X-Invocation-Type": "Event"}

# Appends one JSON line per attempt to the file named by $OUT; fails while $FAIL_FLAG exists,
# or (with $FAIL_ONCE) on its first attempt only.
RECORDER = {
    "handler.py": (
        "import json, os, time\n"
        "def handler(event, context):\n"
        "    line = {'id': context.aws_request_id, 'event': event, 'at': time.time()}\n"
        "    with open(os.environ['OUT'], 'a') as f:\n"
        "        f.write(json.dumps(line) + '\\n')\n"
        "    time.sleep(event.get('sleep', 0))\n"
        "    flag = os.environ.get('FAIL_FLAG')\n"
        "    if flag and os.path.exists(flag):\n"
        "        raise ValueError('failing on purpose')\n"
        "    once = os.environ.get('FAIL_ONCE')\n"
        "    if once and not os.path.exists(once):\n"
        "        open(once, 'w').close()\n"
        "        raise RuntimeError('first attempt fails')\n"
        "    return {'seen': event}\n"
    )
}


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = ServerProcess(
        tmp_path_factory.mktemp("async"),
        env={
            "PYFAAS_RETRY_BASE_S": "0.2",
            "PYFAAS_LIMIT_MAXIMUM_EVENT_AGE_MIN_S": "1",
            "PYFAAS_QUEUE_WAIT_S": "0.05",
        },
    ).wait_ready()
    yield server
    server.stop()


@pytest.fixture()
def api(srv: ServerProcess) -> Iterator[httpx.Client]:
    with srv.client() as client:
        yield client


def lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def status(api: httpx.Client, request_id: str) -> dict[str, Any]:
    response = api.get(f"/v1/invocations/{request_id}")
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def submit(api: httpx.Client, name: str, event: Any, **headers: str) -> str:
    response = api.post(f"/v1/functions/{name}/invoke", json=event, headers={**EVENT, **headers})
    assert response.status_code == 202, response.text
    request_id: str = response.json()["request_id"]
    assert response.headers["x-pyfaas-request-id"] == request_id
    return request_id


def recorder(api: httpx.Client, tmp_path: Path, name: str, **config: Any) -> Path:
    out = tmp_path / f"{name}.jsonl"
    env = {"OUT": str(out), **config.pop("environment", {})}
    assert deploy(api, name, RECORDER, environment=env, **config).status_code in (200, 201)
    return out


def test_an_accepted_event_runs_once_with_its_request_id_and_is_logged(
    api: httpx.Client, tmp_path: Path
) -> None:
    name = unique("async")
    out = recorder(api, tmp_path, name)
    request_id = submit(api, name, {"n": 1})
    wait_for(lambda: status(api, request_id)["status"] == "succeeded")
    assert [(x["id"], x["event"]) for x in lines(out)] == [(request_id, {"n": 1})]
    info = status(api, request_id)
    assert (info["attempts"], info["failures"], info["function"]) == (1, 0, name)
    wait_for(
        lambda: any(
            f"REPORT RequestId: {request_id}" in r["text"]
            for r in api.get(f"/v1/functions/{name}/logs").json()["records"]
        )
    )
    assert api.get(f"/v1/functions/{name}").json()["async_events"] == {"succeeded": 1}


def test_a_failing_event_is_retried_with_backoff_then_dead_lettered_with_a_record(
    api: httpx.Client, tmp_path: Path
) -> None:
    name, sink = unique("always-fails"), unique("on-failure")
    flag = tmp_path / "fail"
    flag.touch()
    sink_out = recorder(api, tmp_path, sink)
    out = recorder(
        api, tmp_path, name, environment={"FAIL_FLAG": str(flag)}, on_failure=sink,
        maximum_retry_attempts=2,
    )  # fmt: skip
    request_id = submit(api, name, {"n": 2})
    wait_for(lambda: status(api, request_id)["status"] == "dead")
    info = status(api, request_id)
    assert (info["attempts"], info["failures"], info["condition"]) == (3, 3, "RetriesExhausted")
    assert json.loads(info["last_error"])["errorType"] == "ValueError"
    attempts = lines(out)
    assert [a["id"] for a in attempts] == [request_id] * 3, "1 + 2 retries, same request id"
    gaps = [b["at"] - a["at"] for a, b in itertools.pairwise(attempts)]
    assert gaps[0] >= 0.09 and gaps[1] >= 0.19, f"retries back off exponentially: {gaps}"
    wait_for(lambda: len(lines(sink_out)) == 1)
    record = lines(sink_out)[0]["event"]
    assert record["requestContext"]["condition"] == "RetriesExhausted"
    assert record["requestContext"]["requestId"] == request_id
    assert record["requestContext"]["approximateInvokeCount"] == 3
    assert record["requestContext"]["functionArn"].endswith(f":function:{name}:$LATEST")
    assert record["requestPayload"] == {"n": 2}
    assert record["responseContext"]["functionError"] == "Unhandled"
    assert record["responsePayload"]["errorMessage"] == "failing on purpose"
    time.sleep(0.5)
    assert len(lines(out)) == 3, "nothing runs after the event is dead"


def test_an_event_that_fails_once_succeeds_on_retry_and_reaches_on_success(
    api: httpx.Client, tmp_path: Path
) -> None:
    name, sink = unique("flaky"), unique("on-success")
    sink_out = recorder(api, tmp_path, sink)
    out = recorder(
        api, tmp_path, name, environment={"FAIL_ONCE": str(tmp_path / "once")}, on_success=sink
    )
    request_id = submit(api, name, {"n": 3})
    wait_for(lambda: status(api, request_id)["status"] == "succeeded")
    info = status(api, request_id)
    assert (info["attempts"], info["failures"]) == (2, 1)
    assert len(lines(out)) == 2
    wait_for(lambda: len(lines(sink_out)) == 1)
    record = lines(sink_out)[0]["event"]
    assert record["requestContext"]["condition"] == "Success"
    assert record["requestPayload"] == {"n": 3}
    assert record["responsePayload"] == {"seen": {"n": 3}}
    assert "functionError" not in record["responseContext"]


def test_an_event_older_than_its_maximum_age_goes_to_failure_not_to_the_function(
    api: httpx.Client, tmp_path: Path
) -> None:
    name, sink = unique("too-old"), unique("aged-out")
    sink_out = recorder(api, tmp_path, sink)
    # Reserved concurrency 0 holds the event back (throttled, retried) until it is too old.
    out = recorder(
        api, tmp_path, name, maximum_event_age_s=1, reserved_concurrency=0, on_failure=sink
    )
    request_id = submit(api, name, {"n": 4})
    wait_for(lambda: status(api, request_id)["status"] == "dead")
    # Once dead it stays out of the function's way, even when the function could run it.
    assert api.patch(f"/v1/functions/{name}", json={"reserved_concurrency": None}).is_success
    time.sleep(0.5)
    info = status(api, request_id)
    assert info["condition"] == "EventAgeExceeded" and info["failures"] == 0
    assert lines(out) == []
    wait_for(lambda: len(lines(sink_out)) == 1)
    record = lines(sink_out)[0]["event"]
    assert record["requestContext"]["condition"] == "EventAgeExceeded"
    assert "responsePayload" not in record


def test_deliveries_respect_the_functions_reserved_concurrency(
    api: httpx.Client, tmp_path: Path
) -> None:
    name = unique("one-at-a-time")
    out = recorder(api, tmp_path, name, reserved_concurrency=1)
    ids = [submit(api, name, {"sleep": 0.2, "i": i}) for i in range(4)]
    wait_for(lambda: all(status(api, i)["status"] == "succeeded" for i in ids))
    starts = sorted(line["at"] for line in lines(out))
    assert len(starts) == 4
    assert all(b - a >= 0.19 for a, b in itertools.pairwise(starts)), starts
    assert all(status(api, i)["failures"] == 0 for i in ids)


def test_a_stopped_functions_deep_queue_does_not_hold_up_other_functions(
    api: httpx.Client, srv: ServerProcess, tmp_path: Path
) -> None:
    stopped, running = unique("stopped"), unique("running")
    recorder(api, tmp_path, stopped, reserved_concurrency=0)
    out = recorder(api, tmp_path, running)
    answers = post_many(
        srv.url, f"/v1/functions/{stopped}/invoke", [b"{}"] * 2000, EVENT, concurrency=16
    )
    assert {code for code, _ in answers} == {202}
    started = time.monotonic()
    ids = [submit(api, running, {"i": i}) for i in range(20)]
    wait_for(lambda: all(status(api, i)["status"] == "succeeded" for i in ids), timeout=10)
    assert time.monotonic() - started < 5
    assert len(lines(out)) == 20
    counts = api.get(f"/v1/functions/{stopped}").json()["async_events"]
    assert sum(counts.values()) == 2000 and "succeeded" not in counts
    api.delete(f"/v1/functions/{stopped}")


def test_a_repeated_idempotency_key_is_accepted_once(api: httpx.Client, tmp_path: Path) -> None:
    name = unique("idempotent")
    out = recorder(api, tmp_path, name)
    first = api.post(
        f"/v1/functions/{name}/invoke", json={"n": 5}, headers={**EVENT, "X-Idempotency-Key": "k1"}
    )
    again = api.post(
        f"/v1/functions/{name}/invoke", json={"n": 6}, headers={**EVENT, "X-Idempotency-Key": "k1"}
    )
    assert first.status_code == again.status_code == 202
    assert first.json()["request_id"] == again.json()["request_id"]
    assert "x-pyfaas-duplicate" not in first.headers
    assert again.headers["x-pyfaas-duplicate"] == "true"
    wait_for(lambda: status(api, first.json()["request_id"])["status"] == "succeeded")
    time.sleep(0.3)
    assert [line["event"] for line in lines(out)] == [{"n": 5}]


@pytest.mark.parametrize(
    ("body", "headers", "status_code", "code"),
    [
        (b'{"x": "' + b"a" * 300_000 + b'"}', {}, 413, "payload_too_large"),
        (b"{not json", {}, 400, "invalid_payload"),
        (b"{}", {"X-Idempotency-Key": "k" * 300}, 400, "invalid_idempotency_key"),
        (b"{}", {"X-Invocation-Type": "Sometimes"}, 400, "invalid_invocation_type"),
    ],
)
def test_bad_async_requests_are_refused_and_enqueue_nothing(
    api: httpx.Client,
    tmp_path: Path,
    body: bytes,
    headers: dict[str, str],
    status_code: int,
    code: str,
) -> None:
    name = unique("refuses")
    recorder(api, tmp_path, name)
    response = api.post(f"/v1/functions/{name}/invoke", content=body, headers={**EVENT, **headers})
    assert response.status_code == status_code, response.text
    assert response.json()["error"]["code"] == code
    assert api.get("/v1/invocations", params={"function": name}).json()["invocations"] == []


def test_an_async_request_for_an_unknown_function_is_a_404(api: httpx.Client) -> None:
    name = unique("nobody")
    response = api.post(f"/v1/functions/{name}/invoke", json={}, headers=EVENT)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "function_not_found"
    assert api.get("/v1/invocations", params={"function": name}).json()["invocations"] == []
    missing = api.get(f"/v1/invocations/{unique('no-such-id')}")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "invocation_not_found"


def test_the_dlq_is_listed_shown_and_redriven_from_the_cli(
    api: httpx.Client, srv: ServerProcess, tmp_path: Path
) -> None:
    name = unique("dlq")
    flag = tmp_path / "fail"
    flag.touch()
    out = recorder(
        api, tmp_path, name, environment={"FAIL_FLAG": str(flag)}, maximum_retry_attempts=0
    )
    submitted = run_cli("invoke", name, "--async", "-p", '{"n": 7}', server=srv)
    assert submitted.returncode == 0, submitted.stderr
    request_id = submitted.stdout.strip()
    wait_for(lambda: status(api, request_id)["status"] == "dead")
    listed = run_cli("dlq", "ls", "--function", name, server=srv)
    assert request_id in listed.stdout and "RetriesExhausted" in listed.stdout
    assert "ValueError: failing on purpose" in listed.stdout
    shown = json.loads(run_cli("dlq", "show", request_id, server=srv).stdout)
    assert json.loads(shown["payload"]) == {"n": 7}
    flag.unlink()
    redriven = run_cli("dlq", "redrive", request_id, server=srv)
    assert redriven.returncode == 0, redriven.stderr
    assert redriven.stdout.split() == [request_id]
    wait_for(lambda: status(api, request_id)["status"] == "succeeded")
    assert [line["id"] for line in lines(out)] == [request_id, request_id]
    shown_status = json.loads(run_cli("status", request_id, server=srv).stdout)
    assert shown_status["status"] == "succeeded" and shown_status["attempts"] == 1
    nothing = run_cli("dlq", "redrive", server=srv)
    assert nothing.returncode == 1 and "--all" in nothing.stderr
    not_dead = api.get(f"/v1/dlq/{request_id}")
    assert not_dead.status_code == 404


@pytest.mark.parametrize(
    "body",
    [{}, {"request_ids": []}, {"request_ids": "x"}, {"function": 3}, {"everything": True}],
)
def test_a_redrive_must_name_what_it_redrives(api: httpx.Client, body: dict[str, Any]) -> None:
    response = api.post("/v1/dlq/redrive", json=body)
    assert response.status_code == 400
    assert response.json()["error"]["code"] in ("invalid_request", "unknown_field")


def test_a_destination_may_not_be_the_function_itself(api: httpx.Client) -> None:
    name = unique("loop")
    response = deploy(api, name, RECORDER, on_success=name)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_destination"
    assert api.get(f"/v1/functions/{name}").status_code == 404
