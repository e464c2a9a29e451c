"""Several pyfaas servers on one PostgreSQL: separate processes, separate PYFAAS_HOME (as on
separate machines: no disk is shared), one fresh database. Any server accepts any request."""

from __future__ import annotations

import base64
import collections
import json
import shutil
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from conftest import ServerProcess, deploy, post_many, postgres_database, unique, wait_for

pytestmark = pytest.mark.postgres

TOKEN = "multi-server-root-token"
ENV = {
    "PYFAAS_TOKEN": TOKEN,
    # Secrets are encrypted with it: every server sharing the database has the same.
    "PYFAAS_SECRET_KEY": base64.urlsafe_b64encode(bytes(range(32))).decode(),
    # A killed server's claimed events go to the others once their lease lapses.
    "PYFAAS_EVENT_LEASE_S": "2",
    "PYFAAS_SCHEDULE_POLL_S": "0.1",
    "PYFAAS_RETRY_BASE_S": "0.2",
}
# One line per run, a single O_APPEND write: workers of several servers share the file.
APPENDER = (
    "import json, os\n"
    "def handler(event, context):\n"
    "    line = json.dumps({'id': context.aws_request_id, 'event': event})\n"
    "    fd = os.open(os.environ['OUT'], os.O_WRONLY | os.O_APPEND | os.O_CREAT)\n"
    "    os.write(fd, (line + '\\n').encode())\n"
    "    os.close(fd)\n"
    "    return {}\n"
)


@dataclass(frozen=True)
class Cluster:
    url: str  # the database
    a: ServerProcess
    b: ServerProcess
    c: ServerProcess  # the one a test kills


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    tmp = tmp_path_factory.mktemp("multi")
    with postgres_database() as url:
        env = {**ENV, "PYFAAS_DATABASE_URL": url}
        # Started together: on a busy machine each start takes a while.
        a, b, c = (ServerProcess(tmp / name, env=env) for name in "abc")
        for server in (a, b, c):
            server.wait_ready(120)
        yield Cluster(url, a, b, c)
        for server in (a, b, c):
            server.stop()
        for server in (a, b):
            log = server.log_path.read_text(errors="replace")
            assert "Traceback" not in log, log


@pytest.fixture(scope="module")
def a(cluster: Cluster) -> Iterator[httpx.Client]:
    with cluster.a.client() as client:
        yield client


@pytest.fixture(scope="module")
def b(cluster: Cluster) -> Iterator[httpx.Client]:
    with cluster.b.client() as client:
        yield client


def returns(value: str) -> dict[str, str]:
    return {"handler.py": f"def handler(event, context):\n    return {value!r}\n"}


def invoke(client: httpx.Client, target: str) -> Any:
    response = client.post(f"/v1/functions/{target}/invoke", json={})
    assert response.status_code == 200, response.text
    return response.json()


def error_of(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, response.json()["error"]["code"]


def stored_bundles(url: str) -> set[str]:
    """The code bundles the database holds."""
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        return {row[0] for row in conn.execute("SELECT sha256 FROM code_blobs")}


def runs(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []


def test_a_deploy_through_one_server_runs_on_the_other_at_once(
    cluster: Cluster, a: httpx.Client, b: httpx.Client
) -> None:
    name = unique("hello")
    assert deploy(a, name, returns("one")).status_code == 201
    assert invoke(b, name) == "one"
    first = b.get(f"/v1/functions/{name}").json()["code_sha256"]
    # B never saw the upload: it unpacked the code the deploy kept in the database.
    assert (cluster.b.home / "code" / first / "handler.py").is_file()
    assert (
        b.get(f"/v1/functions/{name}/code").content == a.get(f"/v1/functions/{name}/code").content
    )
    # B has a warm worker of the old code and the version cached: a redeploy replaces both.
    assert deploy(a, name, returns("two")).status_code == 200
    assert invoke(b, name) == "two"
    second = b.get(f"/v1/functions/{name}").json()["code_sha256"]
    assert stored_bundles(cluster.url) >= {second}
    assert first not in stored_bundles(cluster.url), "the replaced code left the database"
    assert a.patch(f"/v1/functions/{name}", json={"environment": {"X": "1"}}).is_success
    assert b.get(f"/v1/functions/{name}").json()["environment"] == {"X": "1"}
    assert a.delete(f"/v1/functions/{name}").status_code == 204
    gone = b.post(f"/v1/functions/{name}/invoke", json={})
    assert error_of(gone) == (404, "function_not_found")
    assert second not in stored_bundles(cluster.url), "nothing runs the code any more"


def test_code_missing_from_the_database_is_a_clear_503_until_deployed_again(
    cluster: Cluster, a: httpx.Client, b: httpx.Client
) -> None:
    name = unique("lost")
    assert deploy(a, name, returns("here")).status_code == 201
    sha = a.get(f"/v1/functions/{name}").json()["code_sha256"]
    # B unpacked the code when it heard of the deploy; both copies go.
    wait_for(lambda: (cluster.b.home / "code" / sha).is_dir(), 10, "B has the code")
    shutil.rmtree(cluster.b.home / "code" / sha)
    with psycopg.connect(cluster.url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        conn.execute("DELETE FROM code_blobs WHERE sha256 = %s", (sha,))
    # A config change makes B read the function again.
    assert a.patch(f"/v1/functions/{name}", json={"description": "moved"}).is_success
    # B reads it again when the change reaches it (at once; a busy machine may take longer).
    wait_for(
        lambda: b.post(f"/v1/functions/{name}/invoke", json={}).status_code == 503,
        10,
        "B to hear of the change",
    )
    missing = b.post(f"/v1/functions/{name}/invoke", json={})
    assert error_of(missing) == (503, "code_unavailable")
    assert "deploy it again" in missing.json()["error"]["message"]
    assert deploy(a, name, returns("here")).status_code == 200  # puts the bundle back
    assert invoke(b, name) == "here"


def test_aliases_urls_and_revoked_tokens_change_everywhere_at_once(
    cluster: Cluster, a: httpx.Client, b: httpx.Client
) -> None:
    name = unique("aliased")
    assert deploy(a, name, returns("v1")).status_code == 201
    assert a.post(f"/v1/functions/{name}/versions", json={}).status_code == 201
    assert deploy(a, name, returns("v2")).status_code == 200
    assert a.post(f"/v1/functions/{name}/versions", json={}).status_code == 201
    assert a.put(f"/v1/functions/{name}/aliases/live", json={"version": 1}).is_success
    assert invoke(b, f"{name}:live") == "v1"
    assert a.patch(f"/v1/functions/{name}/aliases/live", json={"version": 2}).is_success
    assert invoke(b, f"{name}:live") == "v2"  # well within the alias cache's second

    assert a.post(f"/v1/functions/{name}/url", json={"auth_type": "NONE"}).status_code == 201
    public = httpx.Client(base_url=str(b.base_url))
    assert public.get(f"/fn/{name}").json() == "v2"
    assert a.delete(f"/v1/functions/{name}/url").status_code == 204
    wait_for(lambda: public.get(f"/fn/{name}").status_code != 200, 10, "B to drop the URL")
    gone = public.get(f"/fn/{name}")
    # What A answers for a function without a URL (on a server with a token: 401).
    assert gone.status_code == httpx.get(f"{cluster.a.url}/fn/{name}").status_code != 200

    created = a.post("/v1/tokens", json={"name": "multi", "scopes": ["read"]})
    assert created.status_code == 201, created.text
    reader = {"Authorization": f"Bearer {created.json()['token']}"}
    assert public.get("/v1/functions", headers=reader).status_code == 200
    assert a.delete(f"/v1/tokens/{created.json()['id']}").status_code == 200
    assert error_of(public.get("/v1/functions", headers=reader)) == (401, "token_revoked")

    # A secret set anew through A: B's workers of the function using it get the new value.
    assert a.put("/v1/secrets/multi-secret", json={"value": "first"}).is_success
    secretive = unique("secretive")
    code = {"handler.py": "import os\ndef handler(event, context):\n    return os.environ['S']\n"}
    assert deploy(a, secretive, code, secrets={"S": "multi-secret"}).status_code == 201
    assert invoke(b, secretive) == "first"
    assert a.put("/v1/secrets/multi-secret", json={"value": "second"}).is_success
    wait_for(lambda: invoke(b, secretive) == "second", 10, "B to hear of the new value")
    public.close()


def test_a_secret_changed_while_a_server_was_not_listening_is_read_when_it_listens_again(
    cluster: Cluster, a: httpx.Client, b: httpx.Client
) -> None:
    assert a.put("/v1/secrets/missed-secret", json={"value": "before"}).is_success
    name = unique("missed")
    code = {"handler.py": "import os\ndef handler(event, context):\n    return os.environ['S']\n"}
    assert deploy(a, name, code, secrets={"S": "missed-secret"}).status_code == 201
    assert invoke(b, name) == "before"
    # Every server's feed connection dropped: the change below is sent while nobody listens
    # (they reconnect a second later).
    with psycopg.connect(cluster.url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        dropped = conn.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND query = 'LISTEN pyfaas_changes'"
        ).fetchone()
    assert dropped is not None and dropped[0] >= 2
    assert a.put("/v1/secrets/missed-secret", json={"value": "after"}).is_success
    wait_for(lambda: invoke(b, name) == "after", timeout=20, what="B to read the secret again")


def test_usage_is_counted_once_whichever_server_ran_it(a: httpx.Client, b: httpx.Client) -> None:
    name = unique("metered")
    assert deploy(a, name, returns("x")).status_code == 201
    for client, count in ((a, 5), (b, 7)):
        for _ in range(count):
            invoke(client, name)

    def counted(client: httpx.Client) -> int:
        rows = client.get("/v1/usage", params={"function": name}).json()["rows"]
        return sum(int(row["invocations"]) for row in rows)

    wait_for(lambda: counted(a) >= 12, 20, "usage written by both servers")
    time.sleep(1.0)  # a double count would have been written by now
    assert counted(a) == counted(b) == 12


def test_each_schedule_slot_fires_once_across_servers(
    tmp_path: Path, a: httpx.Client, b: httpx.Client
) -> None:
    name = unique("ticking")
    out = tmp_path / "runs.jsonl"
    assert deploy(a, name, {"handler.py": APPENDER}, environment={"OUT": str(out)}).is_success
    created = b.post(f"/v1/functions/{name}/schedules", json={"expression": "rate(1 second)"})
    assert created.status_code == 201, created.text
    wait_for(lambda: len(runs(out)) >= 4, 30, "four slots")
    schedule = f"/v1/functions/{name}/schedules/{created.json()['id']}"
    assert a.patch(schedule, json={"enabled": False}).is_success
    time.sleep(1.0)
    fired = sorted(r["event"]["time"] for r in runs(out))
    assert len(fired) == len(set(fired)), f"a slot ran twice: {fired}"
    events = b.get("/v1/invocations", params={"function": name}).json()["invocations"]
    keys = [e["idempotency_key"] for e in events]
    assert len(keys) == len(set(keys)) == len(fired)


def test_a_server_killed_mid_load_loses_no_accepted_event(
    cluster: Cluster, tmp_path: Path, a: httpx.Client, b: httpx.Client
) -> None:
    name = unique("durable")
    out = tmp_path / "seen.jsonl"
    # Held back (reservation 0, on every server) while accepting: the kill lands mid-delivery.
    created = deploy(
        a, name, {"handler.py": APPENDER}, environment={"OUT": str(out)}, reserved_concurrency=0
    )
    assert created.status_code == 201, created.text
    doomed = cluster.c
    try:
        bodies = [json.dumps({"i": i}).encode() for i in range(300)]
        accepted = []
        for server in (doomed, cluster.b):
            answers = post_many(
                server.url,
                f"/v1/functions/{name}/invoke",
                bodies,
                {"X-Invocation-Type": "Event", "Authorization": f"Bearer {TOKEN}"},
                16,
            )
            assert {status for status, _ in answers} == {202}, answers[:3]
            accepted += [json.loads(body)["request_id"] for _, body in answers]
        assert a.patch(f"/v1/functions/{name}", json={"reserved_concurrency": 4}).is_success
        wait_for(lambda: len(runs(out)) >= 30, 60, "deliveries under way")
        doomed.proc.send_signal(signal.SIGKILL)
        doomed.proc.wait()
    finally:
        doomed.stop()
    assert len(runs(out)) < len(accepted), "the kill landed after every delivery"
    assert invoke(b, name) == {}, "the others keep serving"
    wait_for(lambda: {r["id"] for r in runs(out)} >= set(accepted), 90, "every event delivered")
    wait_for(
        lambda: a.get(f"/v1/functions/{name}").json()["async_events"] == {"succeeded": 600},
        30,
        "every event settled",
    )
    delivered = collections.Counter(r["id"] for r in runs(out) if "i" in r["event"])
    assert set(delivered) == set(accepted)
    # At-least-once: only what the killed server had claimed may run twice.
    assert sum(delivered.values()) - len(delivered) <= 64
