"""concurrency_per_worker on a real server: one worker process serving N invocations at once
(asyncio for async def handlers, a thread pool for sync ones), with per-invocation context,
logs, timeouts and crashes, under the same admission limits."""

from __future__ import annotations

import base64
import json
import os
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import (
    ServerProcess,
    deploy,
    post_many,
    run_cli,
    serving,
    tidy_client,
    unique,
    wait_for,
)

pytestmark = pytest.mark.slow

ASYNC_SLEEPER = {
    "handler.py": (
        "import asyncio, logging, os, threading\n"
        "active = peak = 0\n"
        "def ancestors():\n"
        "    pids, pid = [], os.getpid()\n"
        "    for _ in range(3):\n"
        "        stat = open(f'/proc/{pid}/stat').read()\n"
        "        pid = int(stat.rsplit(')', 1)[1].split()[1])\n"
        "        pids.append(pid)\n"
        "    return pids\n"
        "async def handler(event, context):\n"
        "    global active, peak\n"
        "    active += 1\n"
        "    peak = max(peak, active)\n"
        "    tag = event.get('tag', '')\n"
        "    print('before', tag, context.aws_request_id)\n"
        "    logging.info('logged %s', tag)\n"
        "    remaining = context.get_remaining_time_in_millis()\n"
        "    await asyncio.sleep(event.get('sleep', 0))\n"
        "    print('after', tag)\n"
        "    active -= 1\n"
        "    return {'pid': os.getpid(), 'id': context.aws_request_id, 'tag': tag,\n"
        "            'thread': threading.get_ident(), 'remaining': remaining, 'peak': peak,\n"
        "            'ancestors': ancestors()}\n"
    )
}

SYNC_SLEEPER = {
    "handler.py": (
        "import logging, os, threading, time\n"
        "lock = threading.Lock()\n"
        "active = peak = 0\n"
        "def handler(event, context):\n"
        "    global active, peak\n"
        "    with lock:\n"
        "        active += 1\n"
        "        peak = max(peak, active)\n"
        "    tag = event.get('tag', '')\n"
        "    if event.get('pid_file'):\n"
        "        open(event['pid_file'], 'w').write(str(os.getpid()))\n"
        "    try:\n"
        "        remaining = context.get_remaining_time_in_millis()\n"
        "        print('before', tag, context.aws_request_id)\n"
        "        logging.info('logged %s', tag)\n"
        "        time.sleep(event.get('sleep', 0))\n"
        "        print('after', tag)\n"
        "        return {'pid': os.getpid(), 'id': context.aws_request_id, 'tag': tag,\n"
        "                'thread': threading.get_ident(), 'remaining': remaining,\n"
        "                'peak': peak}\n"
        "    finally:\n"
        "        with lock:\n"
        "            active -= 1\n"
    )
}


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    env = {
        "PYFAAS_QUEUE_WAIT_S": "0.2",
        "PYFAAS_IDLE_TIMEOUT_S": "60",
        "PYFAAS_LIMIT_MAX_CONCURRENCY": "100",
    }
    with serving(tmp_path_factory.mktemp("per-worker"), env) as server:
        yield server


@pytest.fixture()
def api(srv: ServerProcess) -> Iterator[httpx.Client]:
    with tidy_client(srv) as client:
        yield client


def invoke_many(api: httpx.Client, name: str, events: list[dict[str, Any]]) -> list[httpx.Response]:
    """Invoke ``name`` once per event, all at once; the responses in order."""
    with ThreadPoolExecutor(len(events)) as pool:
        return list(
            pool.map(
                lambda e: api.post(
                    f"/v1/functions/{name}/invoke", json=e, headers={"X-Pyfaas-Log-Type": "Tail"}
                ),
                events,
            )
        )


def tail(response: httpx.Response) -> str:
    return base64.b64decode(response.headers["x-pyfaas-log-result"]).decode()


def stats(api: httpx.Client, name: str) -> dict[str, Any]:
    response = api.get(f"/v1/functions/{name}")
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()["stats"]
    return result


@pytest.mark.parametrize(
    ("code", "per_worker", "threads"),
    [(ASYNC_SLEEPER, 8, 1), (SYNC_SLEEPER, 4, 4)],
    ids=["async-8-on-one-loop", "sync-4-on-4-threads"],
)
def test_one_worker_serves_n_sleeps_at_once(
    api: httpx.Client, code: dict[str, str], per_worker: int, threads: int
) -> None:
    name = unique("n-at-once")
    assert deploy(api, name, code, concurrency_per_worker=per_worker).status_code == 201
    started = time.monotonic()
    responses = invoke_many(api, name, [{"sleep": 0.5, "tag": f"t{i}"} for i in range(per_worker)])
    elapsed = time.monotonic() - started
    assert [r.status_code for r in responses] == [200] * per_worker, [r.text for r in responses]
    bodies = [r.json() for r in responses]
    assert len({b["pid"] for b in bodies}) == 1, "one worker served them all"
    assert len({b["thread"] for b in bodies}) == threads
    assert max(b["peak"] for b in bodies) == per_worker, "all at once"
    one_at_a_time = 0.5 * per_worker
    assert elapsed < 0.8 * one_at_a_time, f"{per_worker} x 0.5 s at once took {elapsed:.2f} s"
    ids = [b["id"] for b in bodies]
    assert len(set(ids)) == per_worker, "each has its own context"
    assert ids == [r.headers["x-pyfaas-request-id"] for r in responses]
    assert all(2000 < b["remaining"] <= 3000 for b in bodies), "each has its own deadline"
    s = stats(api, name)
    assert (s["workers_busy"], s["workers_idle"], s["in_flight"]) == (0, 1, 0)


def test_a_sync_worker_with_many_threads_fits_its_memory_limit(
    api: httpx.Client, srv: ServerProcess
) -> None:
    # Each thread reserves a stack (8 MB of address space): 80 of them are more than the
    # 128 MB function's address-space headroom alone would allow.
    name = unique("threads80")
    assert deploy(api, name, SYNC_SLEEPER, concurrency_per_worker=80).status_code == 201
    bodies = [json.dumps({"sleep": 0.5}).encode()] * 80
    replies = post_many(srv.url, f"/v1/functions/{name}/invoke", bodies, {}, concurrency=80)
    assert [status for status, _ in replies] == [200] * 80, {b for _, b in replies}
    results = [json.loads(body) for _, body in replies]
    assert len({r["pid"] for r in results}) == 1
    assert max(r["peak"] for r in results) > 40, "most of them at once"


def test_a_worker_takes_n_invocations_before_another_worker_starts(api: httpx.Client) -> None:
    name = unique("packed")
    assert deploy(api, name, SYNC_SLEEPER, concurrency_per_worker=4).status_code == 201
    responses = invoke_many(api, name, [{"sleep": 0.5}] * 8)
    assert [r.status_code for r in responses] == [200] * 8
    pids = [r.json()["pid"] for r in responses]
    assert sorted(pids.count(p) for p in set(pids)) == [4, 4], pids
    assert stats(api, name)["cold_starts"] == 1, "the deploy's worker and one more"


def test_a_cold_burst_starts_one_worker_per_n_calls_forked_from_a_template(
    api: httpx.Client, srv: ServerProcess
) -> None:
    name = unique("burst")
    response = deploy(api, name, ASYNC_SLEEPER, concurrency_per_worker=4, idle_timeout_s=1)
    assert response.status_code == 201, response.text
    wait_for(lambda: stats(api, name)["workers_idle"] == 0, what="scaled to zero")
    responses = invoke_many(api, name, [{"sleep": 0.3}] * 8)
    assert [r.status_code for r in responses] == [200] * 8, [r.text for r in responses]
    pids = [r.json()["pid"] for r in responses]
    assert sorted(pids.count(p) for p in set(pids)) == [4, 4], pids
    cold = [r for r in responses if "x-pyfaas-init-duration-ms" in r.headers]
    assert len(cold) == 2, "one cold start per worker"
    # worker <- the version's template <- the zygote <- the server: the template stayed
    # single-threaded (the loop and the threads come after the fork) and forked both.
    lineages = {tuple(r.json()["ancestors"]) for r in responses}
    assert len(lineages) == 1, lineages
    template, _, server = lineages.pop()
    assert server == srv.proc.pid and template not in pids


@pytest.mark.parametrize("code", [ASYNC_SLEEPER, SYNC_SLEEPER], ids=["async", "sync"])
def test_concurrent_invocations_each_log_their_own_lines(
    api: httpx.Client, code: dict[str, str]
) -> None:
    name = unique("logs")
    assert deploy(api, name, code, concurrency_per_worker=4).status_code == 201
    responses = invoke_many(api, name, [{"sleep": 0.3, "tag": f"tag{i}"} for i in range(4)])
    assert [r.status_code for r in responses] == [200] * 4
    assert len({r.json()["pid"] for r in responses}) == 1
    for i, response in enumerate(responses):
        request_id = response.headers["x-pyfaas-request-id"]
        text = tail(response)
        assert f"before tag{i} {request_id}" in text
        assert f"after tag{i}" in text
        assert f"\t{request_id}\tlogged tag{i}" in text, "logging carries its own request id"
        others = [f"tag{j}" for j in range(4) if j != i]
        assert not any(other in text for other in others), text
        assert f"REPORT RequestId: {request_id}" in text
    # The stored log, per request id, holds the same.
    request_id = responses[2].headers["x-pyfaas-request-id"]

    def stored() -> str:
        page = api.get(f"/v1/functions/{name}/logs", params={"request_id": request_id}).json()
        return "".join(r["text"] for r in page["records"])

    wait_for(lambda: "REPORT" in stored(), what="the log written")
    text = stored()
    assert "before tag2" in text and "after tag2" in text
    assert not any(f"tag{j}" in text for j in (0, 1, 3))


def test_a_huge_print_is_truncated_per_invocation(api: httpx.Client) -> None:
    name = unique("loud")
    code = {
        "handler.py": (
            "import time\n"
            "def handler(event, context):\n"
            "    print('x' * event['size'])\n"
            "    time.sleep(0.2)\n"
            "    print('done', event['size'])\n"
            "    return event['size']\n"
        )
    }
    assert deploy(api, name, code, concurrency_per_worker=2).status_code == 201
    loud, quiet = invoke_many(api, name, [{"size": 3_000_000}, {"size": 10}])
    assert (loud.json(), quiet.json()) == (3_000_000, 10)
    assert "bytes of log output truncated" in tail(loud)
    assert "done 10" in tail(quiet) and "truncated" not in tail(quiet)
    assert "x" * 20 not in tail(quiet)


@pytest.mark.parametrize("code", [ASYNC_SLEEPER, SYNC_SLEEPER], ids=["async", "sync"])
def test_a_timeout_fails_only_its_invocation_and_the_worker_is_replaced_after_the_others(
    api: httpx.Client, code: dict[str, str]
) -> None:
    name = unique("timeout")
    assert deploy(api, name, code, concurrency_per_worker=4, timeout_s=2).status_code == 201
    warm = api.post(f"/v1/functions/{name}/invoke", json={}).json()["pid"]

    def late(event: dict[str, Any]) -> httpx.Response:
        # Starts 1 s after the slow one and ends 0.5 s after its deadline: a second of slack
        # on a busy machine on either side (its own 2 s timeout, reaching the same worker).
        time.sleep(1.0)
        return api.post(f"/v1/functions/{name}/invoke", json=event)

    with ThreadPoolExecutor(3) as pool:
        slow = pool.submit(
            api.post,
            f"/v1/functions/{name}/invoke",
            json={"sleep": 5, "tag": "slow"},
            headers={"X-Pyfaas-Log-Type": "Tail"},
        )
        siblings = [pool.submit(late, {"sleep": 1.5, "tag": f"s{i}"}) for i in range(2)]
        timed_out = slow.result()
        # While the siblings still run, a new call goes to a new worker.
        fresh = api.post(f"/v1/functions/{name}/invoke", json={})
        finished = [s.result() for s in siblings]
    assert timed_out.status_code == 200
    assert timed_out.headers["x-pyfaas-function-error"] == "Unhandled"
    assert timed_out.json()["errorType"] == "Sandbox.Timedout"
    assert "Task timed out after 2.00 seconds" in timed_out.json()["errorMessage"]
    assert "before slow" in tail(timed_out), "what it logged before the deadline is kept"
    for response in finished:
        assert "x-pyfaas-function-error" not in response.headers, response.text
        assert response.json()["pid"] == warm, "the siblings finished on the same worker"
    assert fresh.status_code == 200 and fresh.json()["pid"] != warm
    # Once its siblings ended, the worker that ran the timed-out call is gone.
    wait_for(lambda: not Path(f"/proc/{warm}").exists(), timeout=5, what="worker stopped")
    again = api.post(f"/v1/functions/{name}/invoke", json={}).json()["pid"]
    assert again != warm
    assert stats(api, name)["timeouts"] == 1


def test_a_killed_worker_fails_only_its_own_invocations_and_is_replaced(
    api: httpx.Client, tmp_path: Path
) -> None:
    name = unique("killed")
    assert deploy(api, name, SYNC_SLEEPER, concurrency_per_worker=2).status_code == 201
    events = [
        {"sleep": 2, "tag": f"k{i}", "pid_file": str(tmp_path / f"{i}.pid")} for i in range(4)
    ]
    with ThreadPoolExecutor(4) as pool:
        futures = [
            pool.submit(api.post, f"/v1/functions/{name}/invoke", json=event) for event in events
        ]
        wait_for(
            lambda: len(list(tmp_path.glob("*.pid"))) == 4, timeout=10, what="all four started"
        )
        pids = {int(p.read_text()) for p in tmp_path.glob("*.pid")}
        assert len(pids) == 2, "two workers, two invocations each"
        victim = min(pids)
        os.kill(victim, signal.SIGKILL)
        responses = [f.result() for f in futures]
    failed = [r for r in responses if "x-pyfaas-function-error" in r.headers]
    ok = [r for r in responses if "x-pyfaas-function-error" not in r.headers]
    assert len(failed) == 2 and len(ok) == 2, [r.text for r in responses]
    for response in failed:
        assert response.json()["errorType"] == "Runtime.ExitError"
        assert "signal: killed" in response.json()["errorMessage"]
    assert {r.json()["pid"] for r in ok} == pids - {victim}
    after = api.post(f"/v1/functions/{name}/invoke", json={})
    assert "x-pyfaas-function-error" not in after.headers
    assert after.json()["pid"] != victim
    assert stats(api, name)["crashes"] == 2


def test_reserved_concurrency_counts_invocations_not_workers(
    api: httpx.Client, srv: ServerProcess
) -> None:
    name = unique("reserved")
    assert (
        deploy(
            api, name, SYNC_SLEEPER, concurrency_per_worker=4, reserved_concurrency=3, timeout_s=10
        ).status_code
        == 201
    )
    with ThreadPoolExecutor(1) as pool:
        watcher = pool.submit(
            lambda: (
                wait_for(lambda: stats(api, name)["in_flight"] == 3, what="3 in flight"),
                stats(api, name),
                run_cli("show", name, server=srv),
            )
        )
        # Long enough for the CLI to start and ask on a busy machine (2.5 s was not, at times).
        responses = invoke_many(api, name, [{"sleep": 6}] * 6)
        _, during, shown = watcher.result()
    ok = [r for r in responses if r.status_code == 200]
    throttled = [r for r in responses if r.status_code == 429]
    assert len(ok) == 3 and len(throttled) == 3, [r.status_code for r in responses]
    assert {r.json()["error"]["reason"] for r in throttled} == {
        "ReservedFunctionConcurrentInvocationLimitExceeded"
    }
    assert len({r.json()["pid"] for r in ok}) == 1, "three invocations fit one worker"
    assert max(r.json()["peak"] for r in ok) == 3, "never more than 3 at once"
    assert (during["workers_busy"], during["in_flight"]) == (1, 3)
    assert shown.returncode == 0, shown.stderr
    assert "in_flight=3" in shown.stdout and "workers_busy=1" in shown.stdout
    assert "concurrency_per_worker" in shown.stdout
    s = stats(api, name)
    assert s["throttles"] == 3 and s["in_flight"] == 0


def test_provisioned_concurrency_counts_invocations_too(api: httpx.Client) -> None:
    name = unique("provisioned")
    response = deploy(api, name, SYNC_SLEEPER, concurrency_per_worker=4, provisioned_concurrency=6)
    assert response.status_code == 201, response.text
    wait_for(lambda: stats(api, name)["workers_idle"] == 2, what="two workers for 6 invocations")
    responses = invoke_many(api, name, [{"sleep": 0.3}] * 6)
    assert not any("x-pyfaas-init-duration-ms" in r.headers for r in responses)
    assert len({r.json()["pid"] for r in responses}) == 2


def test_n_1_still_runs_one_invocation_per_worker(api: httpx.Client) -> None:
    name = unique("single")
    assert deploy(api, name, SYNC_SLEEPER).status_code == 201
    responses = invoke_many(api, name, [{"sleep": 0.3}] * 3)
    bodies = [r.json() for r in responses]
    assert len({b["pid"] for b in bodies}) == 3
    assert max(b["peak"] for b in bodies) == 1


def test_a_sys_exit_answers_its_call_and_lets_the_others_finish(api: httpx.Client) -> None:
    name = unique("exits")
    code = {
        "handler.py": (
            "import os, sys, time\n"
            "def handler(event, context):\n"
            "    if event.get('exit'):\n"
            "        time.sleep(0.1)\n"
            "        sys.exit(3)\n"
            "    time.sleep(0.5)\n"
            "    return os.getpid()\n"
        )
    }
    assert deploy(api, name, code, concurrency_per_worker=4).status_code == 201
    warm = api.post(f"/v1/functions/{name}/invoke", json={}).json()
    responses = invoke_many(api, name, [{"exit": True}, {}, {}])
    assert responses[0].json()["errorType"] == "Runtime.ExitError"
    assert [r.json() for r in responses[1:]] == [warm, warm]
    assert api.post(f"/v1/functions/{name}/invoke", json={}).json() != warm


def test_a_bad_concurrency_per_worker_is_refused_by_api_and_cli(
    api: httpx.Client, srv: ServerProcess
) -> None:
    name = unique("badn")
    for bad in (0, 1001, "4"):
        response = deploy(api, name, SYNC_SLEEPER, concurrency_per_worker=bad)
        assert response.status_code == 400, response.text
        assert response.json()["error"]["code"] in ("invalid_concurrency", "invalid_type")
        assert "concurrency_per_worker" in response.json()["error"]["message"]
    assert api.get(f"/v1/functions/{name}").status_code == 404, "nothing half-written"
    assert deploy(api, name, SYNC_SLEEPER).status_code == 201
    result = run_cli("config", name, "--concurrency-per-worker", "0", server=srv)
    assert result.returncode != 0
    assert "concurrency_per_worker" in result.stderr and "Traceback" not in result.stderr
    info = api.get(f"/v1/functions/{name}").json()
    assert info["concurrency_per_worker"] == 1
    result = run_cli("config", name, "--concurrency-per-worker", "8", server=srv)
    assert result.returncode == 0, result.stderr
    assert api.get(f"/v1/functions/{name}").json()["concurrency_per_worker"] == 8
    body = json.loads(api.post(f"/v1/functions/{name}/invoke", json={}).text)
    assert body["peak"] == 1
