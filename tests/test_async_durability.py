"""Nothing accepted is lost: kill -9 the server mid-delivery (SQLite and PostgreSQL), and
several servers sharing one PostgreSQL queue."""

from __future__ import annotations

import collections
import json
import signal
import time
from pathlib import Path

import pytest

from conftest import ServerProcess, deploy, post_many, postgres_database, wait_for

pytestmark = pytest.mark.slow

APPENDER = {
    "handler.py": (
        "import os\n"
        "def handler(event, context):\n"
        "    fd = os.open(os.environ['OUT'], os.O_WRONLY | os.O_APPEND | os.O_CREAT)\n"
        "    os.write(fd, (context.aws_request_id + '\\n').encode())\n"
        "    os.close(fd)\n"
        "    return {}\n"
    )
}


def seen(out: Path) -> list[str]:
    return out.read_text().split() if out.exists() else []


def enqueue(url: str, name: str, count: int, clients: int = 32) -> list[str]:
    """Submit ``count`` async events from ``clients`` concurrent connections; all must be
    accepted (202)."""
    bodies = [json.dumps({"i": i}).encode() for i in range(count)]
    answers = post_many(
        url, f"/v1/functions/{name}/invoke", bodies, {"X-Invocation-Type": "Event"}, clients
    )
    assert {status for status, _ in answers} == {202}, answers[:3]
    return [json.loads(body)["request_id"] for _, body in answers]


def counts(server: ServerProcess, name: str) -> dict[str, int]:
    with server.client() as api:
        result: dict[str, int] = api.get(f"/v1/functions/{name}").json()["async_events"]
        return result


IN_FLIGHT = 16


def crash_and_recover(home: Path, env: dict[str, str], events: int, tmp_path: Path) -> None:
    out = tmp_path / "seen.txt"
    env = {**env, "PYFAAS_LIMIT_MAX_CONCURRENCY": str(IN_FLIGHT)}
    first = ServerProcess(home, env=env).wait_ready()
    try:
        with first.client() as api:
            # Held back (reservation 0) while accepting, so the kill lands mid-delivery.
            created = deploy(
                api, "counted", APPENDER, environment={"OUT": str(out)}, reserved_concurrency=0
            )
            assert created.status_code == 201, created.text
        accepted = enqueue(first.url, "counted", events)
        assert len(set(accepted)) == events
        with first.client() as api:  # released: delivered IN_FLIGHT at a time
            released = api.patch("/v1/functions/counted", json={"reserved_concurrency": None})
            assert released.is_success, released.text
        wait_for(lambda: len(seen(out)) >= events // 10, 60, "deliveries under way")
        first.proc.send_signal(signal.SIGKILL)
        first.proc.wait()
        assert len(set(seen(out))) < events, "the kill landed after every delivery"
    finally:
        first.stop()
    second = ServerProcess(home, env=env).wait_ready()
    try:
        wait_for(lambda: set(seen(out)) >= set(accepted), 120, "every event delivered")
        wait_for(lambda: counts(second, "counted") == {"succeeded": events}, 30, "settled")
    finally:
        second.stop()
    delivered = seen(out)
    duplicates = len(delivered) - len(set(delivered))
    assert set(delivered) == set(accepted)
    # At-least-once: only events claimed when the server died may run twice, and the
    # dispatcher holds at most max_concurrency claimed at once.
    assert duplicates <= IN_FLIGHT, f"{duplicates} duplicate deliveries"
    print(f"{events} events, {duplicates} delivered twice after kill -9")


# Each delivers thousands of events: minutes, not seconds, on a loaded machine.
@pytest.mark.timeout(360)
def test_kill_9_mid_delivery_loses_no_event_on_sqlite(tmp_path: Path) -> None:
    crash_and_recover(tmp_path / "home", {}, 10_000, tmp_path)


@pytest.mark.postgres
@pytest.mark.timeout(360)
def test_kill_9_mid_delivery_loses_no_event_on_postgres(tmp_path: Path) -> None:
    with postgres_database() as url:
        # A new server cannot know the old one died: it waits for the leases to lapse.
        env = {"PYFAAS_DATABASE_URL": url, "PYFAAS_EVENT_LEASE_S": "2"}
        crash_and_recover(tmp_path / "home", env, 2_000, tmp_path)


@pytest.mark.postgres
def test_servers_sharing_a_postgres_queue_deliver_each_event_once(tmp_path: Path) -> None:
    out = tmp_path / "seen.txt"
    with postgres_database() as url:
        env = {"PYFAAS_DATABASE_URL": url}
        # A home each, as on two machines: the second one unpacks the code from the database.
        servers = [ServerProcess(tmp_path / f"home{i}", env=env).wait_ready() for i in range(2)]
        try:
            with servers[0].client() as api:
                assert deploy(api, "shared", APPENDER, environment={"OUT": str(out)}).is_success
            with servers[1].client() as api:  # the second server learns of it from the store
                assert api.get("/v1/functions/shared").status_code == 200
            halves = [enqueue(s.url, "shared", 1000, clients=16) for s in servers]
            accepted = halves[0] + halves[1]
            wait_for(lambda: len(seen(out)) >= len(accepted), 60, "every event delivered")
            time.sleep(0.5)
            delivered = collections.Counter(seen(out))
            assert set(delivered) == set(accepted)
            assert max(delivered.values()) == 1, "SKIP LOCKED: no event was claimed twice"
            assert counts(servers[0], "shared") == {"succeeded": 2000}
        finally:
            for server in servers:
                server.stop()
