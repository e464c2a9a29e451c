"""Scaling on a real server: admission limits, 429s, provisioned workers, scale to zero."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import ServerProcess, deploy, run_cli, unique, wait_for

pytestmark = pytest.mark.slow

TOTAL = 6  # the server's max_concurrency in this module

SLEEPER = {
    "handler.py": (
        "import os, time\n"
        "def handler(event, context):\n"
        "    time.sleep(event.get('sleep', 0))\n"
        "    return {'pid': os.getpid(),\n"
        "            'init': os.environ['AWS_LAMBDA_INITIALIZATION_TYPE']}\n"
    )
}


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = ServerProcess(
        tmp_path_factory.mktemp("scaling"),
        env={
            "PYFAAS_LIMIT_MAX_CONCURRENCY": str(TOTAL),
            "PYFAAS_QUEUE_WAIT_S": "0.2",
            "PYFAAS_IDLE_TIMEOUT_S": "60",
        },
    ).wait_ready()
    yield server
    server.stop()


@pytest.fixture()
def api(srv: ServerProcess) -> Iterator[httpx.Client]:
    """A client; every function a test deploys is deleted after it, reservations with it."""
    with srv.client() as client:
        yield client
        for function in client.get("/v1/functions").json()["functions"]:
            client.delete(f"/v1/functions/{function['name']}")


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (workers, and whatever the server forks them from)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z":
            children.setdefault(int(fields[1]), []).append(int(entry))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def worker_processes(name: str) -> set[int]:
    """The live worker processes of function ``name``, seen in /proc (not the server's own
    count): those working in one of its scratch directories (``<name>-<worker id>``), but not
    its template (the parent of the others)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if not os.path.basename(os.readlink(f"/proc/{entry}/cwd")).startswith(f"{name}-"):
                continue
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z":
            parents[int(entry)] = int(fields[1])
    return set(parents) - set(parents.values())


class PeakWorkers:
    """Samples worker_processes(name) every 10 ms in a thread while in use; keeps the peak."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self.peak = 0

    def __enter__(self) -> PeakWorkers:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, len(worker_processes(self._name)))


def stats(api: httpx.Client, name: str) -> dict[str, Any]:
    response = api.get(f"/v1/functions/{name}")
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()["stats"]
    return result


def invoke_many(api: httpx.Client, name: str, events: list[dict[str, Any]]) -> list[httpx.Response]:
    with ThreadPoolExecutor(len(events)) as pool:
        return list(pool.map(lambda e: api.post(f"/v1/functions/{name}/invoke", json=e), events))


def test_reserved_concurrency_is_never_exceeded_and_the_rest_is_throttled(
    api: httpx.Client,
) -> None:
    name = unique("reserved")
    assert deploy(api, name, SLEEPER, reserved_concurrency=2).status_code == 201
    with PeakWorkers(name) as seen:
        responses = invoke_many(api, name, [{"sleep": 1.0}] * 5)
    assert seen.peak == 2, "never more worker processes than the reservation, in /proc"
    ok = [r for r in responses if r.status_code == 200]
    throttled = [r for r in responses if r.status_code == 429]
    assert len(ok) == 2 and len(throttled) == 3, [r.status_code for r in responses]
    assert len({r.json()["pid"] for r in ok}) == 2
    for r in throttled:
        error = r.json()["error"]
        assert error["code"] == "too_many_requests"
        assert error["reason"] == "ReservedFunctionConcurrentInvocationLimitExceeded"
        assert "reserved concurrency of 2" in error["message"]
        assert r.headers["Retry-After"] == "1"
    s = stats(api, name)
    assert s["throttles"] == 3 and s["reserved_concurrency"] == 2
    assert s["workers_busy"] + s["workers_idle"] <= 2
    assert s["in_flight"] == 0


def test_a_call_over_the_limit_waits_for_a_free_worker_within_the_queue_wait(
    api: httpx.Client,
) -> None:
    name = unique("queued")
    assert deploy(api, name, SLEEPER, reserved_concurrency=1).status_code == 201
    responses = invoke_many(api, name, [{"sleep": 0.05}] * 3)
    assert [r.status_code for r in responses] == [200, 200, 200]
    assert len({r.json()["pid"] for r in responses}) == 1, "one worker served all three"
    assert stats(api, name)["throttles"] == 0


def test_a_reservation_of_zero_throttles_every_call_at_once(api: httpx.Client) -> None:
    name = unique("zero")
    assert deploy(api, name, SLEEPER, reserved_concurrency=0).status_code == 201
    started = time.monotonic()
    response = api.post(f"/v1/functions/{name}/invoke", json={})
    assert response.status_code == 429
    assert time.monotonic() - started < 0.2, "no point waiting for a slot that never comes"
    changed = api.patch(f"/v1/functions/{name}", json={"reserved_concurrency": None})
    assert changed.status_code == 200, changed.text
    assert api.post(f"/v1/functions/{name}/invoke", json={}).status_code == 200


def test_unreserved_functions_share_what_reservations_leave_of_the_total(
    api: httpx.Client,
) -> None:
    big, small = unique("big"), unique("shared")
    assert deploy(api, big, SLEEPER, reserved_concurrency=TOTAL - 2).status_code == 201
    assert deploy(api, small, SLEEPER).status_code == 201
    responses = invoke_many(api, small, [{"sleep": 1.0}] * 4)
    codes = sorted(r.status_code for r in responses)
    assert codes == [200, 200, 429, 429], codes
    reason = next(r for r in responses if r.status_code == 429).json()["error"]["reason"]
    assert reason == "ConcurrentInvocationLimitExceeded"
    # The reservation is the big function's own: the shared calls did not eat into it.
    responses = invoke_many(api, big, [{"sleep": 0.2}] * (TOTAL - 2))
    assert {r.status_code for r in responses} == {200}


def test_reserving_more_than_is_left_is_refused_and_changes_nothing(api: httpx.Client) -> None:
    first, second = unique("first"), unique("second")
    assert deploy(api, first, SLEEPER, reserved_concurrency=TOTAL - 1).status_code == 201
    refused = deploy(api, second, SLEEPER, reserved_concurrency=2)
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "invalid_concurrency"
    assert "other functions reserve 5" in refused.json()["error"]["message"]
    assert api.get(f"/v1/functions/{second}").status_code == 404
    assert api.delete(f"/v1/functions/{first}").status_code == 204
    assert deploy(api, second, SLEEPER, reserved_concurrency=2).status_code == 201


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"reserved_concurrency": -1}, "invalid_concurrency"),
        ({"reserved_concurrency": TOTAL + 1}, "invalid_concurrency"),
        ({"reserved_concurrency": "2"}, "invalid_type"),
        ({"reserved_concurrency": True}, "invalid_type"),
        ({"provisioned_concurrency": 3, "reserved_concurrency": 2}, "invalid_concurrency"),
        ({"provisioned_concurrency": None}, "invalid_type"),
        ({"concurrency_per_worker": 0}, "invalid_concurrency"),
        ({"idle_timeout_s": 0}, "invalid_idle_timeout"),
        ({"memory_mb": 1}, "invalid_memory"),
        ({"name": "other"}, "invalid_name"),
        ({"colour": "blue"}, "unknown_field"),
    ],
)
def test_bad_configuration_changes_are_refused_and_change_nothing(
    api: httpx.Client, changes: dict[str, Any], code: str
) -> None:
    name = unique("patch")
    created = deploy(api, name, SLEEPER)
    assert created.status_code == 201
    response = api.patch(f"/v1/functions/{name}", json=changes)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == code
    after = api.get(f"/v1/functions/{name}").json()
    assert after["updated_at"] == created.json()["updated_at"]
    assert after["reserved_concurrency"] is None and after["provisioned_concurrency"] == 0


def test_a_patch_that_is_not_a_json_object_or_names_no_function_is_refused(
    api: httpx.Client,
) -> None:
    name = unique("patch")
    assert deploy(api, name, SLEEPER).status_code == 201
    for body in (b"not json", b"[1, 2]"):
        response = api.patch(f"/v1/functions/{name}", content=body)
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "invalid_json"
    missing = api.patch(f"/v1/functions/{unique('nobody')}", json={"memory_mb": 256})
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "function_not_found"


def test_provisioned_workers_are_up_before_the_first_call_and_replaced_when_killed(
    api: httpx.Client, srv: ServerProcess
) -> None:
    name = unique("provisioned")
    assert (
        deploy(api, name, SLEEPER, provisioned_concurrency=2, idle_timeout_s=1).status_code == 201
    )
    s = stats(api, name)
    assert (s["workers_idle"], s["workers_busy"], s["cold_starts"]) == (2, 0, 0)
    first = api.post(f"/v1/functions/{name}/invoke", json={})
    assert first.status_code == 200
    assert first.json()["init"] == "provisioned-concurrency"
    assert stats(api, name)["cold_starts"] == 0
    # Past the idle timeout the provisioned workers stay.
    time.sleep(1.6)
    assert stats(api, name)["workers_idle"] == 2
    os.kill(first.json()["pid"], signal.SIGKILL)
    wait_for(lambda: first.json()["pid"] not in descendants(srv.proc.pid))
    wait_for(lambda: stats(api, name)["workers_idle"] == 2)
    pids = {api.post(f"/v1/functions/{name}/invoke", json={}).json()["pid"] for _ in range(4)}
    assert first.json()["pid"] not in pids
    # Dropping the provisioning lets them scale to zero like any other worker.
    assert api.patch(f"/v1/functions/{name}", json={"provisioned_concurrency": 0}).is_success
    wait_for(lambda: stats(api, name)["workers_idle"] == 0, timeout=10)


def test_a_function_scales_up_under_load_and_down_to_zero_processes(
    api: httpx.Client, srv: ServerProcess
) -> None:
    name = unique("elastic")
    assert deploy(api, name, SLEEPER, idle_timeout_s=1).status_code == 201
    responses = invoke_many(api, name, [{"sleep": 0.5}] * 4)
    assert {r.status_code for r in responses} == {200}
    pids = {r.json()["pid"] for r in responses}
    assert len(pids) == 4, "four calls at once ran in four workers"
    assert pids <= descendants(srv.proc.pid)
    s = stats(api, name)
    assert s["workers_idle"] == 4 and s["invocations"] == 4
    wait_for(lambda: stats(api, name)["workers_idle"] == 0, timeout=10)
    wait_for(lambda: not pids & descendants(srv.proc.pid))


def test_a_busy_worker_killed_from_outside_costs_one_call_and_is_replaced(
    api: httpx.Client, srv: ServerProcess
) -> None:
    """Three callers keep three workers busy; one worker is SIGKILLed mid-call (the OOM
    killer, an operator): its caller gets the one error, every other call succeeds, and a new
    worker takes its place within the reservation."""
    name = unique("killed")
    assert deploy(api, name, SLEEPER, reserved_concurrency=3).status_code == 201
    responses: list[httpx.Response] = []
    stop = threading.Event()

    def caller() -> None:
        with srv.client() as client:
            while not stop.is_set():
                responses.append(
                    client.post(f"/v1/functions/{name}/invoke", json={"sleep": 0.5}, timeout=30)
                )

    with PeakWorkers(name) as seen, ThreadPoolExecutor(3) as pool:
        callers = [pool.submit(caller) for _ in range(3)]
        wait_for(lambda: len(responses) >= 3 and stats(api, name)["workers_busy"] == 3)
        victim = responses[-1].json()["pid"]
        os.kill(victim, signal.SIGKILL)
        killed_at = len(responses)
        wait_for(lambda: len(responses) >= killed_at + 6)
        stop.set()
        for done in callers:
            done.result()
    assert {r.status_code for r in responses} == {200}, "no 429: the dead worker's slot is free"
    errors = [r for r in responses if "x-pyfaas-function-error" in r.headers]
    assert len(errors) == 1, [r.json() for r in errors]
    assert errors[0].json()["errorType"] == "Runtime.ExitError"
    assert "signal: killed" in errors[0].json()["errorMessage"]
    later = {r.json()["pid"] for r in responses[killed_at + 3 :]}
    assert victim not in later and len(later) == 3, "a new worker serves in its place"
    assert seen.peak <= 3
    assert stats(api, name)["crashes"] == 1


def test_provisioned_workers_start_again_when_the_server_restarts(tmp_path: Path) -> None:
    home = tmp_path / "home"
    first = ServerProcess(home).wait_ready()
    try:
        with first.client() as api:
            assert deploy(api, "warm", SLEEPER, provisioned_concurrency=1).status_code == 201
    finally:
        first.stop()
    second = ServerProcess(home).wait_ready()
    try:
        with second.client() as api:
            wait_for(lambda: stats(api, "warm")["workers_idle"] == 1)
            response = api.post("/v1/functions/warm/invoke", json={})
            assert response.json()["init"] == "provisioned-concurrency"
    finally:
        second.stop()


def test_the_cli_sets_concurrency_and_shows_the_counters(srv: ServerProcess) -> None:
    name = unique("cli")
    with srv.client() as api:
        assert deploy(api, name, SLEEPER).status_code == 201
    done = run_cli(
        "config", name, "--reserved-concurrency", "3", "--idle-timeout", "30", server=srv
    )
    assert done.returncode == 0, done.stderr
    assert "Updated" in done.stderr
    shown = run_cli("show", name, "--json", server=srv)
    info = json.loads(shown.stdout)
    assert info["reserved_concurrency"] == 3 and info["idle_timeout_s"] == 30
    assert info["stats"]["throttles"] == 0 and "in_flight" in info["stats"]
    bad = run_cli("config", name, "--reserved-concurrency", "-4", server=srv)
    assert bad.returncode == 1
    assert "reserved_concurrency -4 is outside" in bad.stderr and "Traceback" not in bad.stderr
    cleared = run_cli("config", name, "--no-reserved-concurrency", server=srv)
    assert cleared.returncode == 0, cleared.stderr
    with srv.client() as api:
        assert api.get(f"/v1/functions/{name}").json()["reserved_concurrency"] is None
