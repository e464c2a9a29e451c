"""Versions and aliases: publish immutable versions, invoke them by number or alias, shift
traffic between two versions and roll back, keep workers ready per alias, collect old code."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import (
    ServerProcess,
    deploy,
    post_many,
    postgres_database,
    run_cli,
    serving,
    tidy_client,
    unique,
    wait_for,
)

# Each bundle says which code ran, and what configuration its worker got.
SAYS = """
import os
def handler(event, context):
    if event.get("fail"):
        raise RuntimeError("asked to fail")
    return {{"code": "{label}", "memory": context.memory_limit_in_mb,
             "colour": os.environ.get("COLOUR"), "version": context.function_version,
             "arn": context.invoked_function_arn}}
"""
SLOW = """
import time
def handler(event, context):
    time.sleep(event.get("sleep", 0))
    return "{label}"
"""


def says(label: str) -> dict[str, str | bytes]:
    return {"handler.py": SAYS.format(label=label)}


@pytest.fixture(scope="module")
def versions_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server of its own: quick retries and scale to zero (1 s idle)."""
    env = {
        "PYFAAS_IDLE_TIMEOUT_S": "1",
        "PYFAAS_RETRY_BASE_S": "0.05",
        "PYFAAS_SCHEDULE_POLL_S": "0.1",
    }
    with serving(tmp_path_factory.mktemp("versions"), env) as server:
        yield server


@pytest.fixture()
def client(versions_server: ServerProcess) -> Iterator[httpx.Client]:
    with tidy_client(versions_server) as c:
        yield c


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json() if response.content else None


def error(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()["error"]
    assert body["code"] == code, body
    message: str = body["message"]
    return message


def publish(client: httpx.Client, name: str, **body: Any) -> dict[str, Any]:
    response = client.post(f"/v1/functions/{name}/versions", json=body)
    assert response.status_code in (200, 201), response.text
    published: dict[str, Any] = response.json()
    return published


def invoke(client: httpx.Client, target: str, event: Any = None, **params: str) -> httpx.Response:
    return client.post(f"/v1/functions/{target}/invoke", json=event or {}, params=params)


def log_of(client: httpx.Client, name: str, request_id: str | None) -> str:
    """The stored log text of one invocation of ``name``."""
    records = client.get(f"/v1/functions/{name}/logs", params={"request_id": request_id})
    return "".join(r["text"] for r in ok(records)["records"])


def two_versions(client: httpx.Client, name: str) -> None:
    """``name`` with version 1 saying "one" and version 2 (and $LATEST) saying "two"."""
    ok(deploy(client, name, says("one")), 201)
    assert publish(client, name)["version"] == "1"
    ok(deploy(client, name, says("two")))
    assert publish(client, name)["version"] == "2"


# --- publish and invoke by version --------------------------------------------------------


def test_a_published_version_keeps_its_code_and_config_while_latest_moves_on(
    client: httpx.Client,
) -> None:
    name = unique("pub")
    ok(deploy(client, name, says("one"), environment={"COLOUR": "red"}), 201)
    first = publish(client, name, description="first cut")
    assert (first["version"], first["description"], first["created"]) == ("1", "first cut", True)
    ok(deploy(client, name, says("two"), environment={"COLOUR": "blue"}))
    ok(client.patch(f"/v1/functions/{name}", json={"memory_mb": 256}))

    by_number = invoke(client, f"{name}:1")
    ran = ok(by_number)
    assert ran.pop("arn").endswith(f":function:{name}:1"), "the context names the qualifier"
    assert ran == {"code": "one", "memory": "128", "colour": "red", "version": "1"}
    assert by_number.headers["x-pyfaas-executed-version"] == "1"
    latest = invoke(client, name)
    ran = ok(latest)
    assert ran.pop("arn").endswith(f":function:{name}")
    assert ran == {"code": "two", "memory": "256", "colour": "blue", "version": "$LATEST"}
    assert latest.headers["x-pyfaas-executed-version"] == "$LATEST"
    assert ok(invoke(client, f"{name}:$LATEST"))["code"] == "two"
    assert ok(invoke(client, name, qualifier="1"))["code"] == "one"

    second = publish(client, name)
    assert (second["version"], second["memory_mb"], second["created"]) == ("2", 256, True)
    assert second["description"] == "", "defaults to the function's description"
    again = client.post(f"/v1/functions/{name}/versions")
    assert again.status_code == 200, "nothing changed: Lambda returns the newest version"
    assert (again.json()["version"], again.json()["created"]) == ("2", False)

    listed = ok(client.get(f"/v1/functions/{name}/versions"))["versions"]
    assert [v["version"] for v in listed] == ["1", "2"]
    assert listed[0]["code_sha256"] != listed[1]["code_sha256"]
    shown = ok(client.get(f"/v1/functions/{name}/versions/1"))
    assert (shown["environment"], shown["memory_mb"]) == ({"COLOUR": "red"}, 128)


def test_racing_publishes_of_the_same_code_make_one_version(
    client: httpx.Client, versions_server: ServerProcess
) -> None:
    name = unique("race")
    ok(deploy(client, name, says("one")), 201)
    results = post_many(
        versions_server.url, f"/v1/functions/{name}/versions", [b"{}"] * 8, {}, concurrency=8
    )
    assert sorted(status for status, _ in results) == [200] * 7 + [201]
    assert {json.loads(body)["version"] for _, body in results} == {"1"}
    assert len(ok(client.get(f"/v1/functions/{name}/versions"))["versions"]) == 1


def test_version_numbers_are_never_reused(client: httpx.Client) -> None:
    name = unique("numbers")
    two_versions(client, name)
    ok(client.delete(f"/v1/functions/{name}/versions/2"), 204)
    error(invoke(client, f"{name}:2"), 404, "version_not_found")
    ok(deploy(client, name, says("three")))
    assert publish(client, name)["version"] == "3"


# --- aliases: weighted routing, shifting, rollback ---------------------------------------


def test_a_ten_percent_canary_gets_about_ten_percent_and_rolls_back(
    client: httpx.Client, versions_server: ServerProcess
) -> None:
    name = unique("canary")
    two_versions(client, name)
    alias = ok(
        client.put(
            f"/v1/functions/{name}/aliases/live",
            json={"version": 1, "additional_version_weights": {"2": 0.1}},
        )
    )
    assert (alias["version"], alias["additional_version_weights"]) == ("1", {"2": 0.1})

    def ran(count: int) -> list[str]:
        results = post_many(
            versions_server.url, f"/v1/functions/{name}:live/invoke", [b"{}"] * count, {},
            concurrency=8,
        )  # fmt: skip
        assert {status for status, _ in results} == {200}, results[:3]
        return [json.loads(body)["code"] for _, body in results]

    codes = ran(1000)
    canary = codes.count("two")
    assert 60 <= canary <= 140, f"{canary} of 1000 went to the 10% canary"
    assert codes.count("one") == 1000 - canary

    shifted = client.patch(
        f"/v1/functions/{name}/aliases/live", json={"additional_version_weights": {"2": 0.5}}
    )
    assert ok(shifted)["additional_version_weights"] == {"2": 0.5}
    halves = ran(400).count("two")
    assert 140 <= halves <= 260, f"{halves} of 400 went to the 50% canary"

    rolled_back = client.patch(
        f"/v1/functions/{name}/aliases/live", json={"additional_version_weights": {}}
    )
    assert ok(rolled_back)["additional_version_weights"] == {}
    assert set(ran(100)) == {"one"}, "after a rollback everything runs version 1"
    promoted = client.put(f"/v1/functions/{name}/aliases/live", json={"version": "2"})
    assert ok(promoted)["version"] == "2"
    assert set(ran(50)) == {"two"}


def test_the_version_that_ran_is_in_the_headers_report_and_usage(client: httpx.Client) -> None:
    name = unique("ran")
    two_versions(client, name)
    ok(client.put(f"/v1/functions/{name}/aliases/live", json={"version": 1}))
    response = invoke(client, f"{name}:live")
    assert ok(response)["version"] == "1", "the handler's context names the version"
    assert response.headers["x-pyfaas-executed-version"] == "1"
    request_id = response.headers["x-pyfaas-request-id"]

    wait_for(lambda: "REPORT" in log_of(client, name, request_id), what="the invocation's log")
    assert f"START RequestId: {request_id} Version: 1\n" in log_of(client, name, request_id)
    usage = ok(client.get("/v1/usage", params={"group_by": "version", "function": name}))
    versions = {row["version"]: row["invocations"] for row in usage["rows"]}
    assert versions == {"1": 1}, usage["rows"]


def test_each_alias_keeps_its_own_provisioned_workers_and_they_scale_to_zero_after(
    client: httpx.Client,
) -> None:
    name = unique("warm")
    ok(deploy(client, name, {"handler.py": SLOW.format(label="one")}), 201)
    publish(client, name)
    ok(deploy(client, name, {"handler.py": SLOW.format(label="two")}))
    publish(client, name)
    ready = client.put(
        f"/v1/functions/{name}/aliases/ready", json={"version": 1, "provisioned_concurrency": 2}
    )
    assert ok(ready)["provisioned_concurrency"] == 2
    ok(client.put(f"/v1/functions/{name}/aliases/cold", json={"version": 2}))
    time.sleep(1.5)  # past the idle timeout: only provisioned workers are left

    starts: dict[str, list[bool]] = {"ready": [], "cold": []}

    def call(alias: str) -> None:
        with httpx.Client(base_url=client.base_url, timeout=30) as own:
            response = invoke(own, f"{name}:{alias}", {"sleep": 0.3})
            ok(response)
            starts[alias].append("x-pyfaas-init-duration-ms" in response.headers)

    threads = [threading.Thread(target=call, args=(a,)) for a in ("ready", "ready", "cold")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert starts == {"ready": [False, False], "cold": [True]}

    ok(client.patch(f"/v1/functions/{name}/aliases/ready", json={"provisioned_concurrency": 0}))

    def workers() -> int:
        stats = ok(client.get(f"/v1/functions/{name}"))["stats"]
        return int(stats["workers_idle"] + stats["workers_busy"])

    wait_for(lambda: workers() == 0, timeout=10, what="every version's workers scaled to zero")


def test_a_restarted_server_starts_the_provisioned_workers_of_aliases_again(
    tmp_path: Path,
) -> None:
    home, env = tmp_path / "restart", {"PYFAAS_IDLE_TIMEOUT_S": "1"}
    name = unique("restart")
    with serving(home, env) as first, first.client() as c:
        ok(deploy(c, name, says("one")), 201)
        publish(c, name)
        ok(c.put(f"/v1/functions/{name}/aliases/ready",
                 json={"version": 1, "provisioned_concurrency": 1}))  # fmt: skip
    with serving(home, env) as second, second.client() as c:

        def idle() -> int:
            return int(ok(c.get(f"/v1/functions/{name}"))["stats"]["workers_idle"])

        wait_for(lambda: idle() == 1, what="the alias's provisioned worker after a restart")
        warm = invoke(c, f"{name}:ready")
        assert ok(warm)["version"] == "1"
        assert "x-pyfaas-init-duration-ms" not in warm.headers, "it was started and ready"


# --- async events keep their qualifier -----------------------------------------------------


def test_an_async_event_runs_the_version_it_was_sent_to_on_every_retry(
    client: httpx.Client,
) -> None:
    name = unique("async")
    ok(deploy(client, name, says("one"), maximum_retry_attempts=1), 201)
    publish(client, name)
    ok(deploy(client, name, says("two"), maximum_retry_attempts=1))
    accepted = client.post(
        f"/v1/functions/{name}:1/invoke",
        json={"fail": True},
        headers={"X-Invocation-Type": "Event"},
    )
    request_id = ok(accepted, 202)["request_id"]
    wait_for(
        lambda: client.get(f"/v1/invocations/{request_id}").json()["status"] == "dead",
        what="the event's retries to run out",
    )
    event = ok(client.get(f"/v1/invocations/{request_id}"))
    assert (event["qualifier"], event["attempts"]) == ("1", 2)

    def starts() -> list[str]:
        text = log_of(client, name, request_id)
        return [line for line in text.splitlines() if line.startswith("START")]

    wait_for(lambda: len(starts()) == 2, what="both attempts' logs")
    assert all(line.endswith("Version: 1") for line in starts()), starts()

    done = client.post(
        f"/v1/functions/{name}/invoke",
        params={"qualifier": "1"},
        headers={"X-Invocation-Type": "Event"},
    )
    good_id = ok(done, 202)["request_id"]
    wait_for(
        lambda: client.get(f"/v1/invocations/{good_id}").json()["status"] == "succeeded",
        what="the qualified event to succeed",
    )


def test_a_schedule_can_invoke_an_alias(client: httpx.Client) -> None:
    name = unique("sched")
    two_versions(client, name)
    ok(client.put(f"/v1/functions/{name}/aliases/live", json={"version": 1}))
    schedules = f"/v1/functions/{name}/schedules"
    for bad, status, code in [
        ("nope", 404, "alias_not_found"),
        ("9", 404, "version_not_found"),
        ("a b", 400, "invalid_qualifier"),
        (5, 400, "invalid_qualifier"),
    ]:
        body = {"expression": "rate(1 second)", "qualifier": bad}
        error(client.post(schedules, json=body), status, code)
    assert ok(client.get(schedules))["schedules"] == [], "nothing was created"

    created = client.post(schedules, json={"expression": "rate(1 second)", "qualifier": "live"})
    schedule = ok(created, 201)
    assert schedule["qualifier"] == "live"

    def fired() -> str | None:
        found: str | None = ok(client.get(f"{schedules}/{schedule['id']}"))["last_request_id"]
        return found

    wait_for(lambda: fired() is not None, what="the schedule to fire")
    ok(client.patch(f"{schedules}/{schedule['id']}", json={"enabled": False}))
    request_id = fired()
    wait_for(
        lambda: client.get(f"/v1/invocations/{request_id}").json()["status"] == "succeeded",
        what="the scheduled event to run",
    )
    assert ok(client.get(f"/v1/invocations/{request_id}"))["qualifier"] == "live"
    wait_for(lambda: "REPORT" in log_of(client, name, request_id), what="the log")
    assert f"START RequestId: {request_id} Version: 1\n" in log_of(client, name, request_id)


# --- function URLs for an alias --------------------------------------------------------------


def test_a_function_url_can_serve_an_alias_and_goes_with_it(
    client: httpx.Client, versions_server: ServerProcess
) -> None:
    name = unique("url")
    two_versions(client, name)
    ok(client.put(f"/v1/functions/{name}/aliases/live", json={"version": 1}))
    created = client.post(
        f"/v1/functions/{name}/url", json={"auth_type": "NONE", "qualifier": "live"}
    )
    assert ok(created, 201)["url"].endswith(f"/fn/{name}/live/")
    served = httpx.get(f"{versions_server.url}/fn/{name}/live/hello")
    assert served.json()["code"] == "one"
    error(httpx.get(f"{versions_server.url}/fn/{name}/hello"), 404, "function_url_not_found")

    by_version = run_cli(
        "url", "create", f"{name}:2", "--auth-type", "NONE", server=versions_server
    )
    assert by_version.returncode == 0, by_version.stderr
    assert by_version.stdout.strip().endswith(f"/fn/{name}/2/")
    assert httpx.get(f"{versions_server.url}/fn/{name}/2/").json()["code"] == "two"

    url = f"/v1/functions/{name}/url"
    error(client.post(url, json={"auth_type": "NONE", "qualifier": "nope"}), 404, "alias_not_found")
    error(client.post(url, json={"auth_type": "NONE", "qualifier": "7"}), 404, "version_not_found")
    error(
        client.post(url, json={"auth_type": "NONE", "qualifier": "a b"}), 400, "invalid_qualifier"
    )
    error(client.post(url, json={"auth_type": "NONE", "qualifier": 3}), 400, "invalid_qualifier")

    ok(client.delete(f"/v1/functions/{name}/aliases/live"), 204)
    error(httpx.get(f"{versions_server.url}/fn/{name}/live/"), 404, "function_url_not_found")
    error(client.get(url, params={"qualifier": "live"}), 404, "function_url_not_found")
    removed = run_cli("url", "rm", f"{name}:2", server=versions_server)
    assert removed.returncode == 0, removed.stderr
    error(httpx.get(f"{versions_server.url}/fn/{name}/2/"), 404, "function_url_not_found")


# --- refusals and bad input -----------------------------------------------------------------


def test_deleting_a_version_an_alias_uses_or_latest_is_refused(client: httpx.Client) -> None:
    name = unique("refuse")
    two_versions(client, name)
    ok(
        client.put(
            f"/v1/functions/{name}/aliases/live",
            json={"version": 1, "additional_version_weights": {"2": 0.2}},
        )
    )
    for number in ("1", "2"):
        message = error(
            client.delete(f"/v1/functions/{name}/versions/{number}"), 409, "version_in_use"
        )
        assert "live" in message
    error(client.delete(f"/v1/functions/{name}/versions/$LATEST"), 400, "invalid_version")
    error(client.delete(f"/v1/functions/{name}/versions/x"), 400, "invalid_version")
    error(client.delete(f"/v1/functions/{name}/versions/9"), 404, "version_not_found")
    error(client.delete(f"/v1/functions/nobody-{name}/versions/1"), 404, "function_not_found")
    assert len(ok(client.get(f"/v1/functions/{name}/versions"))["versions"]) == 2

    ok(client.patch(f"/v1/functions/{name}/aliases/live", json={"additional_version_weights": {}}))
    ok(client.delete(f"/v1/functions/{name}/versions/2"), 204)
    ok(client.delete(f"/v1/functions/{name}/aliases/live"), 204)
    ok(client.delete(f"/v1/functions/{name}/versions/1"), 204)
    assert ok(client.get(f"/v1/functions/{name}/versions"))["versions"] == []


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"version": 9}, 404, "version_not_found"),
        ({"version": 1, "additional_version_weights": {"9": 0.1}}, 404, "version_not_found"),
        ({}, 400, "invalid_version"),
        ({"version": "$LATEST"}, 400, "invalid_version"),
        ({"version": 0}, 400, "invalid_version"),
        ({"version": True}, 400, "invalid_version"),
        ({"version": 1, "additional_version_weights": {"2": 0}}, 400, "invalid_routing"),
        ({"version": 1, "additional_version_weights": {"2": 1}}, 400, "invalid_routing"),
        ({"version": 1, "additional_version_weights": {"2": 1.5}}, 400, "invalid_routing"),
        ({"version": 1, "additional_version_weights": {"2": -0.1}}, 400, "invalid_routing"),
        ({"version": 1, "additional_version_weights": {"2": "10%"}}, 400, "invalid_routing"),
        ({"version": 1, "additional_version_weights": {"2": 0.1, "3": 0.1}}, 400,
         "invalid_routing"),
        ({"version": 1, "additional_version_weights": {"1": 0.1}}, 400, "invalid_routing"),
        ({"version": 1, "additional_version_weights": [2]}, 400, "invalid_routing"),
        ({"version": 1, "additional_version_weights": {"x": 0.1}}, 400, "invalid_version"),
        ({"version": 1, "weights": {}}, 400, "unknown_field"),
        ({"version": 1, "description": 5}, 400, "invalid_description"),
        ({"version": 1, "provisioned_concurrency": -1}, 400, "invalid_concurrency"),
        ({"version": 1, "provisioned_concurrency": 100000}, 400, "invalid_concurrency"),
    ],
)  # fmt: skip
def test_a_bad_alias_is_refused_and_nothing_is_written(
    client: httpx.Client, body: dict[str, Any], status: int, code: str
) -> None:
    name = unique("bad-alias")
    two_versions(client, name)
    message = error(client.put(f"/v1/functions/{name}/aliases/live", json=body), status, code)
    assert message
    assert ok(client.get(f"/v1/functions/{name}/aliases"))["aliases"] == []


def test_bad_alias_names_and_missing_aliases(client: httpx.Client) -> None:
    name = unique("names")
    two_versions(client, name)
    for bad in ("123", "a.b", "x" * 129, "$LATEST"):
        error(
            client.put(f"/v1/functions/{name}/aliases/{bad}", json={"version": 1}),
            400,
            "invalid_alias_name",
        )
    error(client.get(f"/v1/functions/{name}/aliases/nope"), 404, "alias_not_found")
    error(client.patch(f"/v1/functions/{name}/aliases/nope", json={"version": 1}), 404,
          "alias_not_found")  # fmt: skip
    error(client.delete(f"/v1/functions/{name}/aliases/nope"), 404, "alias_not_found")
    error(client.put(f"/v1/functions/nobody-{name}/aliases/live", json={"version": 1}), 404,
          "function_not_found")  # fmt: skip
    error(client.put(f"/v1/functions/{name}/aliases/live", content=b"[1]"), 400, "invalid_json")
    error(client.post(f"/v1/functions/{name}/versions", json={"x": 1}), 400, "unknown_field")
    error(client.post(f"/v1/functions/{name}/versions", json={"description": "d" * 257}), 400,
          "invalid_description")  # fmt: skip
    error(client.post(f"/v1/functions/nobody-{name}/versions"), 404, "function_not_found")
    assert len(ok(client.get(f"/v1/functions/{name}/versions"))["versions"]) == 2


def test_unknown_or_malformed_qualifiers_on_invoke(client: httpx.Client) -> None:
    name = unique("qual")
    two_versions(client, name)
    error(invoke(client, f"{name}:7"), 404, "version_not_found")
    error(invoke(client, f"{name}:nope"), 404, "alias_not_found")
    error(invoke(client, f"{name}:a.b"), 400, "invalid_qualifier")
    error(invoke(client, f"{name}:"), 400, "invalid_qualifier")
    error(invoke(client, f"{name}:1", qualifier="2"), 400, "invalid_qualifier")
    error(invoke(client, name, qualifier="nope"), 404, "alias_not_found")
    error(invoke(client, f"nobody-{name}:1"), 404, "function_not_found")
    event = client.post(
        f"/v1/functions/{name}:nope/invoke", json={}, headers={"X-Invocation-Type": "Event"}
    )
    error(event, 404, "alias_not_found")
    assert ok(client.get(f"/v1/functions/{name}"))["async_events"].get("queued", 0) == 0


# --- deleting, and collecting code -----------------------------------------------------------


def test_deleting_the_function_deletes_its_versions_and_aliases(client: httpx.Client) -> None:
    name = unique("gone")
    two_versions(client, name)
    ok(client.put(f"/v1/functions/{name}/aliases/live", json={"version": 2}))
    ok(client.delete(f"/v1/functions/{name}"), 204)
    ok(deploy(client, name, says("again")), 201)
    assert ok(client.get(f"/v1/functions/{name}/versions"))["versions"] == []
    assert ok(client.get(f"/v1/functions/{name}/aliases"))["aliases"] == []
    error(invoke(client, f"{name}:live"), 404, "alias_not_found")
    error(invoke(client, f"{name}:2"), 404, "version_not_found")
    assert publish(client, name)["version"] == "1", "a new function counts from 1"


def test_code_is_collected_once_no_version_references_it(
    client: httpx.Client, versions_server: ServerProcess
) -> None:
    name = unique("gc")
    code_root = versions_server.home / "code"

    def stored(sha: str) -> bool:
        return (code_root / sha).is_dir()

    a = ok(deploy(client, name, says("a-" + name)), 201)["code_sha256"]
    assert stored(a), f"code is stored under {code_root}"
    publish(client, name)
    b = ok(deploy(client, name, says("b-" + name)))["code_sha256"]
    assert stored(a) and stored(b), "version 1 still runs a"
    time.sleep(1.1)  # code stored in the last second is spared (a deploy may reuse it)
    ok(client.delete(f"/v1/functions/{name}/versions/1"), 204)
    assert not stored(a) and stored(b)

    publish(client, name)
    c = ok(deploy(client, name, says("c-" + name)))["code_sha256"]
    assert stored(b) and stored(c), "version 2 still runs b"
    time.sleep(1.1)
    ok(client.delete(f"/v1/functions/{name}"), 204)
    assert not stored(b) and not stored(c)


# --- the CLI ----------------------------------------------------------------------------------


def test_cli_publishes_lists_and_sets_a_canary_alias_then_rolls_back(
    client: httpx.Client, versions_server: ServerProcess
) -> None:
    name = unique("cli")
    ok(deploy(client, name, says("one")), 201)
    published = run_cli("publish", name, "-d", "first", server=versions_server)
    assert published.returncode == 0, published.stderr
    assert published.stdout.strip() == "1"
    ok(deploy(client, name, says("two")))
    assert run_cli("publish", name, server=versions_server).stdout.strip() == "2"
    again = run_cli("publish", name, server=versions_server)
    assert again.stdout.strip() == "2" and "nothing published" in again.stderr

    listed = run_cli("versions", name, server=versions_server)
    assert listed.returncode == 0 and "first" in listed.stdout, listed.stdout

    canary = run_cli("alias", "set", name, "live", "1", "--canary", "2=10%", server=versions_server)
    assert canary.returncode == 0, canary.stderr
    assert "1 (90%), 2 (10%)" in canary.stderr
    alias = ok(client.get(f"/v1/functions/{name}/aliases/live"))
    assert alias["additional_version_weights"] == {"2": 0.1}
    shown = run_cli("alias", "show", name, "live", "--json", server=versions_server)
    assert json.loads(shown.stdout)["additional_version_weights"] == {"2": 0.1}
    assert "live" in run_cli("alias", "ls", name, server=versions_server).stdout

    rolled = run_cli("alias", "set", name, "live", "1", server=versions_server)
    assert rolled.returncode == 0 and "1 (100%)" in rolled.stderr
    assert ok(client.get(f"/v1/functions/{name}/aliases/live"))["additional_version_weights"] == {}
    assert json.loads(run_cli("invoke", f"{name}:live", "-p", "{}", server=versions_server)
                      .stdout)["code"] == "one"  # fmt: skip

    for args, says_what in [
        (("alias", "set", name, "live", "1", "--canary", "2=lots"), "--canary takes"),
        (("alias", "set", name, "live", "9"), "no version 9"),
        (("alias", "set", name, "live", "1", "--canary", "2=150%"), "between 0 and 1"),
        (("versions", name, "--delete", "1"), "alias(es) live"),
        (("alias", "rm", name, "nope"), "no alias 'nope'"),
    ]:
        refused = run_cli(*args, server=versions_server)
        assert refused.returncode == 1, refused
        assert says_what in refused.stderr and "Traceback" not in refused.stderr, refused.stderr

    assert run_cli("alias", "rm", name, "live", server=versions_server).returncode == 0
    deleted = run_cli("versions", name, "--delete", "1", server=versions_server)
    assert deleted.returncode == 0, deleted.stderr


# --- on PostgreSQL -----------------------------------------------------------------------------


@pytest.mark.postgres
def test_versions_and_aliases_on_postgresql(tmp_path: Path) -> None:
    with postgres_database() as url:
        env = {"PYFAAS_DATABASE_URL": url, "PYFAAS_IDLE_TIMEOUT_S": "1"}
        with serving(tmp_path / "pg", env) as server, tidy_client(server) as pg:
            name = unique("pg")
            two_versions(pg, name)
            ok(pg.put(f"/v1/functions/{name}/aliases/live",
                      json={"version": 1, "additional_version_weights": {"2": 0.5}}))  # fmt: skip
            error(pg.delete(f"/v1/functions/{name}/versions/2"), 409, "version_in_use")
            error(pg.put(f"/v1/functions/{name}/aliases/x", json={"version": 9}), 404,
                  "version_not_found")  # fmt: skip
            codes = {ok(invoke(pg, f"{name}:live"))["code"] for _ in range(40)}
            assert codes == {"one", "two"}
            ok(pg.delete(f"/v1/functions/{name}"), 204)
            ok(deploy(pg, name, says("again")), 201)
            assert ok(pg.get(f"/v1/functions/{name}/aliases"))["aliases"] == []
            assert publish(pg, name)["version"] == "1"
