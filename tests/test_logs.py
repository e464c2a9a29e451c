"""Logs: search by text, request id and time; follow over server-sent events with resume;
JSON lines; retention by age and size; a flood that is bounded and reported."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import sqlite3
import statistics
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.dialects.sqlite import dialect as sqlite_dialect

from conftest import ServerProcess, deploy, postgres_database, run_cli, unique, wait_for
from pyfaas.control import LogQueryService
from pyfaas.model import LogQuery, LogRecord
from pyfaas.model.logs import milliseconds_text
from pyfaas.store import Store, open_store
from pyfaas.store.logs import invocation_row, log_row, milliseconds_sql, record_of
from pyfaas.telemetry import LogFeed, LogSweeper, LogWriter, RetentionPolicy
from test_bad_input import assert_error

ECHO = (
    "import json\n"
    "def handler(event, context):\n"
    "    for line in event.get('lines', []):\n"
    "        print(line)\n"
    "    return event.get('n')\n"
)
LOG_CAP = 256 * 1024  # per invocation, in the worker
LOG_BUFFER = 128 * 1024  # the server's log writer, all functions together


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server with small log bounds, so that a flood hits both of them quickly."""
    srv = ServerProcess(
        tmp_path_factory.mktemp("logs"),
        env={
            "PYFAAS_IDLE_TIMEOUT_S": "30",
            "PYFAAS_LIMIT_LOG_BYTES_PER_INVOCATION": str(LOG_CAP),
            "PYFAAS_LOG_BUFFER_BYTES": str(LOG_BUFFER),
        },
    ).wait_ready()
    yield srv
    srv.stop()


def echo_function(api: httpx.Client, prefix: str) -> str:
    name = unique(prefix)
    deploy(api, name, {"handler.py": ECHO}).raise_for_status()
    return name


def invoke(api: httpx.Client, name: str, **event: Any) -> str:
    response = api.post(f"/v1/functions/{name}/invoke", json=event)
    response.raise_for_status()
    rid: str = response.headers["x-pyfaas-request-id"]
    return rid


def records(api: httpx.Client, name: str, **params: Any) -> list[dict[str, Any]]:
    response = api.get(f"/v1/functions/{name}/logs", params=params)
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["records"]
    return found


class Follower:
    """A client of the SSE endpoint, reading events in a thread with the time each came."""

    def __init__(self, server: ServerProcess, name: str, **params: Any) -> None:
        self.events: list[tuple[int, dict[str, Any], float]] = []
        self.connected = threading.Event()
        self._socket: socket.socket | None = None
        headers = {}
        if "last_event_id" in params:
            headers["Last-Event-ID"] = str(params.pop("last_event_id"))
        self._client = server.client()
        self._request = self._client.build_request(
            "GET",
            f"/v1/functions/{name}/logs/stream",
            params=params,
            headers=headers,
            timeout=httpx.Timeout(10, read=None),
        )
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        assert self.connected.wait(10), "the stream did not start"

    def _read(self) -> None:
        response = self._client.send(self._request, stream=True)
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        self._socket = response.extensions["network_stream"].get_extra_info("socket")
        event_id, data = 0, ""
        try:
            for line in response.iter_lines():
                if line.startswith(": following"):
                    self.connected.set()
                elif line.startswith("id: "):
                    event_id = int(line[4:])
                elif line.startswith("data: "):
                    data = line[6:]
                elif not line and data:
                    self.events.append((event_id, json.loads(data), time.monotonic()))
                    data = ""
        except httpx.HTTPError:
            return
        finally:
            response.close()

    def request_ids(self) -> list[str]:
        return [record["request_id"] for _, record, _ in self.events]

    def close(self) -> None:
        """Hang up, as a client that goes away does (the reader thread's recv returns)."""
        if self._socket is not None:
            with contextlib.suppress(OSError):
                self._socket.shutdown(socket.SHUT_RDWR)
        self._thread.join(10)
        assert not self._thread.is_alive()
        self._client.close()

    def __enter__(self) -> Follower:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- search -------------------------------------------------------------------------------


def test_filter_keeps_records_with_the_text_and_only_their_matching_lines(
    api: httpx.Client,
) -> None:
    name = echo_function(api, "filter")
    hit = invoke(api, name, lines=["a needle here", "nothing", "another needle"])
    invoke(api, name, lines=["hay", "Needle in capitals does not count"])
    found = records(api, name, filter="needle")
    assert [r["request_id"] for r in found] == [hit]
    assert found[0]["text"] == "a needle here\nanother needle\n"
    # Wildcards of SQL's LIKE are plain text here.
    invoke(api, name, lines=["100% sure"])
    assert [r["text"] for r in records(api, name, filter="0% s")] == ["100% sure\n"]
    assert records(api, name, filter="_") == []


def test_request_id_selects_one_invocation_from_the_api_and_the_cli(
    server: ServerProcess, api: httpx.Client
) -> None:
    name = echo_function(api, "byid")
    first = invoke(api, name, lines=["first call"])
    invoke(api, name, lines=["second call"])
    assert [r["request_id"] for r in records(api, name, request_id=first)] == [first]
    shown = run_cli("logs", name, "--request-id", first, server=server)
    assert shown.returncode == 0, shown.stderr
    assert "first call" in shown.stdout and "second call" not in shown.stdout
    assert shown.stdout.startswith(f"START RequestId: {first}")


def test_request_ids_are_uuids_ordered_by_time_so_their_index_grows_at_its_end(
    api: httpx.Client,
) -> None:
    name = echo_function(api, "uuid7")
    before_ms = int(time.time() * 1000)
    ids = []
    for i in range(3):
        ids.append(invoke(api, name, lines=[f"call {i}"]))
        time.sleep(0.002)  # ids of calls in one millisecond need not be ordered
    parsed = [uuid.UUID(rid) for rid in ids]
    assert [str(u) for u in parsed] == ids  # canonical UUID strings
    assert {u.version for u in parsed} == {7} and {u.variant for u in parsed} == {uuid.RFC_4122}
    assert ids == sorted(ids) and len(set(ids)) == 3
    assert before_ms <= parsed[0].int >> 80 <= int(time.time() * 1000)  # their time, in ms
    assert [r["request_id"] for r in records(api, name)] == ids


def test_since_and_until_select_a_time_range(server: ServerProcess, api: httpx.Client) -> None:
    name = echo_function(api, "range")
    invoke(api, name, lines=["before"])
    time.sleep(0.3)
    start = time.time()
    middle = invoke(api, name, lines=["during"])
    end = time.time()
    time.sleep(0.3)
    invoke(api, name, lines=["after"])
    assert [r["request_id"] for r in records(api, name, since=start, until=end)] == [middle]
    iso = datetime.fromtimestamp(start - 0.05, UTC).isoformat().replace("+00:00", "Z")
    assert len(records(api, name, since=iso)) == 2
    cli = run_cli("logs", name, "--since", str(start), "--until", str(end), server=server)
    assert cli.returncode == 0, cli.stderr
    assert "during" in cli.stdout and "before" not in cli.stdout and "after" not in cli.stdout
    recent = run_cli("logs", name, "--since", "1m", "--filter", "after", server=server)
    assert recent.stdout == "after\n"


def test_json_lines_come_back_structured_and_the_cli_prints_them_as_json(
    server: ServerProcess, api: httpx.Client
) -> None:
    name = echo_function(api, "json")
    obj = {"level": "info", "msg": "paid", "amount": 12.5, "tags": ["a"]}
    rid = invoke(api, name, lines=[json.dumps(obj), "plain text", "[1, 2]", "{broken"])
    (record,) = records(api, name)
    assert record["structured"] == [{"line": 1, "fields": obj}], "line 0 is START"
    assert record["text"].splitlines()[1] == json.dumps(obj), "stored verbatim"
    cli = run_cli("logs", name, "--json", server=server)
    assert cli.returncode == 0, cli.stderr
    lines = [json.loads(line) for line in cli.stdout.splitlines()]
    assert [line["message"] for line in lines[1:5]] == [
        json.dumps(obj),
        "plain text",
        "[1, 2]",
        "{broken",
    ]
    assert lines[1]["fields"] == obj and lines[1]["request_id"] == rid
    assert all("fields" not in line for line in lines if line is not lines[1])


# --- follow -------------------------------------------------------------------------------


def test_follow_delivers_every_new_record_in_order_within_a_short_delay(
    server: ServerProcess, api: httpx.Client
) -> None:
    name = echo_function(api, "follow")
    invoke(api, name, lines=["old"])
    with Follower(server, name) as follower:
        sent: list[tuple[str, float]] = []
        for n in range(20):
            rid = invoke(api, name, lines=[f"line {n}"], n=n)
            sent.append((rid, time.monotonic()))
        wait_for(lambda: len(follower.events) >= 20, what="20 followed records")
        time.sleep(0.2)
        assert follower.request_ids() == [rid for rid, _ in sent], "in order, no old, no extra"
        ids = [event_id for event_id, _, _ in follower.events]
        assert ids == sorted(ids) and len(set(ids)) == 20
        assert [r["text"].splitlines()[1] for _, r, _ in follower.events] == [
            f"line {n}" for n in range(20)
        ]
        delays = [got - at for (_, _, got), (_, at) in zip(follower.events, sent, strict=True)]
        print(
            f"follow delay after the invoke answered: p50 {statistics.median(delays) * 1000:.1f}"
            f" ms, max {max(delays) * 1000:.1f} ms"
        )
        assert statistics.median(delays) < 1.0, "generous: the target is under 100 ms"


def test_a_follower_resumes_from_its_last_event_id_without_gaps_or_repeats(
    server: ServerProcess, api: httpx.Client
) -> None:
    name = echo_function(api, "resume")
    with Follower(server, name) as first:
        before = [invoke(api, name, n=n) for n in range(3)]
        wait_for(lambda: len(first.events) == 3, what="3 records")
    last_id = first.events[-1][0]
    missed = [invoke(api, name, n=n) for n in range(3, 6)]  # while nobody follows
    with Follower(server, name, last_event_id=last_id) as second:
        later = [invoke(api, name, n=n) for n in range(6, 8)]
        wait_for(lambda: len(second.events) >= 5, what="5 records after resuming")
        time.sleep(0.2)
        assert first.request_ids() == before
        assert second.request_ids() == missed + later
    # The cursor works as a query parameter too, with the filters.
    with Follower(server, name, after=last_id, request_id=missed[1]) as again:
        wait_for(lambda: len(again.events) == 1, what="the one matching record")
        assert again.request_ids() == [missed[1]]


def test_follow_with_filter_and_since_starts_in_the_past_and_keeps_only_matches(
    server: ServerProcess, api: httpx.Client
) -> None:
    name = echo_function(api, "followfilter")
    start = time.time()
    old_hit = invoke(api, name, lines=["ERROR disk full"])
    invoke(api, name, lines=["all good"])
    with Follower(server, name, filter="ERROR", since=start) as follower:
        new_hit = invoke(api, name, lines=["fine", "ERROR again"])
        invoke(api, name, lines=["fine again"])
        wait_for(lambda: len(follower.events) >= 2, what="both errors")
        time.sleep(0.2)
        assert follower.request_ids() == [old_hit, new_hit]
        assert follower.events[1][1]["text"] == "ERROR again\n"


def test_the_cli_follows_with_the_event_stream(server: ServerProcess, api: httpx.Client) -> None:
    import os
    import select
    import subprocess

    from conftest import PYFAAS

    name = echo_function(api, "clifollow")
    proc = subprocess.Popen(
        [PYFAAS, "logs", name, "--follow", "--json"],
        stdout=subprocess.PIPE,
        env={**os.environ, "PYFAAS_URL": server.url},
    )
    try:
        time.sleep(1.0)  # the CLI connects
        rids = [invoke(api, name, lines=[json.dumps({"n": n})]) for n in range(3)]
        seen = b""
        deadline = time.monotonic() + 20
        assert proc.stdout is not None
        while seen.count(b"REPORT RequestId") < 3 and time.monotonic() < deadline:
            ready, _, _ = select.select([proc.stdout], [], [], 0.5)
            if ready:
                seen += os.read(proc.stdout.fileno(), 65536)
        lines = [json.loads(line) for line in seen.decode().splitlines()]
        structured = [(line["request_id"], line["fields"]) for line in lines if "fields" in line]
        assert structured == [(rid, {"n": n}) for n, rid in enumerate(rids)]
    finally:
        proc.kill()
        proc.wait()


def test_stopping_the_server_ends_open_follows_at_once(tmp_path: Path) -> None:
    srv = ServerProcess(tmp_path / "home").wait_ready()
    try:
        with srv.client() as api:
            name = echo_function(api, "stopping")
            follower = Follower(srv, name)
            invoke(api, name, lines=["before the stop"])
            wait_for(lambda: len(follower.events) == 1, what="one record")
    finally:
        began = time.monotonic()
        srv.stop()
        took = time.monotonic() - began
    follower.close()
    assert srv.proc.returncode == 0
    assert took < 8, f"stopping took {took:.1f} s: the open stream held it up"
    assert "timeout graceful shutdown exceeded" not in srv.log_path.read_text()


def test_with_invocation_logs_off_calls_run_and_are_metered_but_store_no_log(
    tmp_path: Path,
) -> None:
    srv = ServerProcess(tmp_path / "home", env={"PYFAAS_INVOCATION_LOGS": "false"}).wait_ready()
    try:
        with srv.client() as api:
            name = echo_function(api, "unlogged")
            response = api.post(f"/v1/functions/{name}/invoke", json={"lines": ["hi"], "n": 7})
            assert response.status_code == 200 and response.json() == 7
            rid = response.headers["x-pyfaas-request-id"]
            assert records(api, name) == []
    finally:
        srv.stop()
    with sqlite3.connect(tmp_path / "home" / "pyfaas.db") as db:
        assert db.execute("SELECT count(*) FROM invocation_logs").fetchone() == (0,)
        assert db.execute("SELECT request_id FROM usage_records").fetchall() == [(rid,)]


def test_a_bad_invocation_logs_setting_stops_serve_with_one_line(tmp_path: Path) -> None:
    result = run_cli(
        "serve", "--home", str(tmp_path / "home"), env={"PYFAAS_INVOCATION_LOGS": "sometimes"}
    )
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "pyfaas: invocation_logs must be true or false, got 'sometimes'"
    ]


def test_a_follower_that_falls_behind_catches_up_from_the_store(tmp_path: Path) -> None:
    """The per-follower queue holds 3 records; 50 arrive while the follower does not read."""

    async def main() -> None:
        store = await open_store(f"sqlite:///{tmp_path / 'pyfaas.db'}")
        writer = LogWriter(store, feed=LogFeed(max_records=3))
        service = LogQueryService(store, writer, heartbeat_s=0.05)
        try:
            stream = service.follow(LogQuery("f"), after_id=0)
            got: list[LogRecord] = []
            first = asyncio.ensure_future(anext(stream))
            await asyncio.sleep(0.1)  # subscribed, waiting
            for i in range(50):
                writer.submit(LogRecord("f", f"r{i}", time.time(), f"line {i}\n"))
                if i % 10 == 9:
                    await writer.flush()
            await writer.flush()
            item = await first
            while len(got) < 50:
                if item is not None:
                    got.append(item)
                if len(got) < 50:
                    item = await anext(stream)
            assert [r.request_id for r in got] == [f"r{i}" for i in range(50)]
            ids = [r.id for r in got]
            assert ids == sorted(set(ids))
            await stream.aclose()
        finally:
            await writer.close()
            await store.close()

    asyncio.run(main())


def test_the_log_writer_writes_often_only_while_someone_follows(tmp_path: Path) -> None:
    """Without followers a batch waits for the long interval (an hour here); a follower makes
    the writer store and hand over what waits within its short one; once it leaves, records
    wait again."""

    async def main() -> None:
        store = await open_store(f"sqlite:///{tmp_path / 'pyfaas.db'}")
        writer = LogWriter(store, interval_s=3600, followed_interval_s=0.02)
        await writer.start()
        try:
            writer.submit(LogRecord("f", "r0", time.time(), "before\n"))
            await asyncio.sleep(0.3)
            assert await store.logs.search(LogQuery("f")) == []
            with writer.feed.subscribe("f") as follower:
                batch = await follower.next_batch(5)
                assert batch is not None and [r.request_id for r in batch] == ["r0"]
                writer.submit(LogRecord("f", "r1", time.time(), "during\n"))
                batch = await follower.next_batch(5)
                assert batch is not None and [r.request_id for r in batch] == ["r1"]
            writer.submit(LogRecord("f", "r2", time.time(), "after\n"))
            await asyncio.sleep(0.3)
            stored = await store.logs.search(LogQuery("f"))
            assert [r.request_id for r in stored] == ["r0", "r1"]
            await writer.flush()
            assert len(await store.logs.search(LogQuery("f"))) == 3
        finally:
            await writer.close()
            await store.close()

    asyncio.run(main())


def test_past_max_pending_records_whole_invocation_logs_are_dropped_and_counted(
    tmp_path: Path,
) -> None:
    """The pending batch holds at most 3 records: the 4th and 5th invocation logs of one tick
    are dropped (silent or not), counted per function, and the first 3 are stored whole."""
    from pyfaas.model import FunctionVersion, InvocationResult

    async def main() -> None:
        store = await open_store(f"sqlite:///{tmp_path / 'pyfaas.db'}")
        writer = LogWriter(store, max_pending_records=3, interval_s=3600)
        fv = FunctionVersion(
            name="f", version="$LATEST", handler="app.handler", runtime="python3.11",
            memory_mb=128, timeout_s=3, environment=(), code_sha256="0" * 64,
            code_dir=str(tmp_path),
        )  # fmt: skip
        try:
            for i, output in enumerate(["", "hello\n", "", "lost\n", ""]):
                result = InvocationResult(request_id=f"r{i}", body=b"{}", logs=output)
                writer.submit_invocation(fv, result, time.time())
            assert writer.stats("f").dropped_records == 2
            assert writer.stats("f").dropped_bytes == len("lost\n")
            assert writer.stats("g").dropped_records == 0
            await writer.flush()
            stored = await store.logs.search(LogQuery("f"))
            assert [r.request_id for r in stored] == ["r0", "r1", "r2"]
            assert "hello\nEND RequestId: r1" in stored[1].text
            # The batch is written: there is room again.
            writer.submit_invocation(fv, InvocationResult(request_id="r5", body=b"{}"), 0.0)
            await writer.flush()
            assert [r.request_id for r in await store.logs.search(LogQuery("f"))][-1] == "r5"
        finally:
            await writer.close()
            await store.close()

    asyncio.run(main())


# --- bad input ----------------------------------------------------------------------------


def test_bad_time_ranges_cursors_and_unknown_functions_are_4xx_with_stable_codes(
    server: ServerProcess, api: httpx.Client
) -> None:
    name = echo_function(api, "badlogs")
    invoke(api, name)
    logs, stream = f"/v1/functions/{name}/logs", f"/v1/functions/{name}/logs/stream"
    assert "ISO 8601" in assert_error(
        api.get(logs, params={"since": "yesterday"}), 400, "invalid_time_range"
    )
    assert "swap" in assert_error(
        api.get(logs, params={"since": 200, "until": 100}), 400, "invalid_time_range"
    )
    assert_error(api.get(logs, params={"until": "nan"}), 400, "invalid_time_range")
    assert_error(api.get(stream, params={"until": 100}), 400, "invalid_time_range")
    assert_error(api.get(logs, params={"after": "abc"}), 400, "invalid_cursor")
    assert_error(api.get(logs, params={"after": -1}), 400, "invalid_cursor")
    assert_error(api.get(stream, headers={"Last-Event-ID": "x"}), 400, "invalid_cursor")
    assert "newest" in assert_error(
        api.get(stream, headers={"Last-Event-ID": str(10**12)}), 400, "invalid_cursor"
    )
    assert_error(api.get(logs, params={"after": 10**12}), 400, "invalid_cursor")
    assert_error(api.get(logs, params={"filter": "x" * 2000}), 400, "invalid_query")
    for path in ("/v1/functions/nobody-here/logs", "/v1/functions/nobody-here/logs/stream"):
        assert_error(api.get(path), 404, "function_not_found")
    assert len(records(api, name)) == 1, "nothing changed"

    cli = run_cli("logs", name, "--since", "last tuesday", server=server)
    assert cli.returncode == 1 and "Traceback" not in cli.stderr
    assert "--since takes a time such as 10m" in cli.stderr
    swapped = run_cli("logs", name, "--since", "1m", "--until", "2h", server=server)
    assert swapped.returncode == 1 and "swap them" in swapped.stderr
    follow_until = run_cli("logs", name, "--follow", "--until", "1m", server=server)
    assert follow_until.returncode == 1 and "leave out --until" in follow_until.stderr
    missing = run_cli("logs", "nobody-here", "--follow", server=server)
    assert missing.returncode == 1 and "[function_not_found]" in missing.stderr


# --- a flood ------------------------------------------------------------------------------

FLOOD = (
    "import sys\n"
    "def handler(event, context):\n"
    "    chunk = 'x' * 65535 + '\\n'\n"
    "    for _ in range(event['mb'] * 16):\n"
    "        sys.stdout.write(chunk)\n"
    "    return 'flooded'\n"
)


@pytest.mark.slow
def test_a_flood_of_output_is_bounded_reported_and_does_not_slow_other_functions(
    server: ServerProcess, api: httpx.Client
) -> None:
    flood = unique("flood")
    deploy(
        api, flood, {"handler.py": FLOOD}, timeout_s=60, reserved_concurrency=2
    ).raise_for_status()
    quick = echo_function(api, "bystander")
    invoke(api, quick, lines=["warm"])
    stop = threading.Event()

    def flooding() -> int:
        count = 0
        with server.client() as client:
            while not stop.is_set():
                response = client.post(f"/v1/functions/{flood}/invoke", json={"mb": 16})
                assert response.json() == "flooded", response.text
                count += 1
        return count

    with ThreadPoolExecutor(2) as pool:
        floods = [pool.submit(flooding) for _ in range(2)]
        time.sleep(0.5)
        latencies = []
        for n in range(30):
            began = time.monotonic()
            invoke(api, quick, lines=[f"still here {n}"])
            latencies.append(time.monotonic() - began)
        stop.set()
        flooded = sum(f.result() for f in floods)
    print(
        f"{flooded} floods of 16 MB; bystander p50 {statistics.median(latencies) * 1000:.1f} ms,"
        f" max {max(latencies) * 1000:.1f} ms"
    )
    assert flooded >= 2
    assert statistics.median(latencies) < 0.5 and max(latencies) < 3.0

    stats = api.get(f"/v1/functions/{flood}").json()["stats"]
    assert stats["log_invocations_with_loss"] == flooded
    assert stats["log_truncated_bytes"] == flooded * (16 * 1024 * 1024 - LOG_CAP)
    assert stats["log_dropped_bytes"] >= flooded * LOG_CAP
    flood_logs = records(api, flood, limit=1000)
    assert len(flood_logs) == flooded, "every invocation keeps its START/END/REPORT"
    for record in flood_logs:
        lines = record["text"].splitlines()
        assert lines[1].endswith("of log output dropped: the server's log buffer was full]")
        assert lines[-1].startswith(f"REPORT RequestId: {record['request_id']}")
    bystander = api.get(f"/v1/functions/{quick}").json()["stats"]
    assert bystander["log_invocations_with_loss"] == 0
    assert len(records(api, quick, filter="still here", limit=100)) == 30


def test_output_under_the_cap_but_over_the_buffer_is_dropped_with_a_marker(
    api: httpx.Client,
) -> None:
    name = echo_function(api, "overbuffer")
    big = "y" * (LOG_BUFFER + 10)
    rid = invoke(api, name, lines=[big])
    (record,) = records(api, name)
    assert big not in record["text"]
    size = len(big) + 1
    assert f"[pyfaas: {size} bytes of log output dropped" in record["text"]
    stats = api.get(f"/v1/functions/{name}").json()["stats"]
    assert stats["log_dropped_bytes"] == size and stats["log_truncated_bytes"] == 0
    small = invoke(api, name, lines=["small enough"])
    assert "small enough" in records(api, name, request_id=small)[0]["text"]
    assert rid != small


# --- retention ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def short_retention(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    srv = ServerProcess(
        tmp_path_factory.mktemp("retention"),
        env={
            "PYFAAS_LOG_RETENTION_S": "4",
            "PYFAAS_LOG_RETENTION_BYTES": "3000",
            "PYFAAS_LOG_SWEEP_INTERVAL_S": "0.2",
        },
    ).wait_ready()
    yield srv
    srv.stop()


def test_retention_keeps_the_newest_bytes_of_each_function_and_deletes_old_records(
    short_retention: ServerProcess,
) -> None:
    with short_retention.client() as api:
        chatty, quiet = echo_function(api, "chatty"), echo_function(api, "quiet")
        kept_quiet = invoke(api, quiet, lines=["q" * 100])
        rids = [invoke(api, chatty, lines=["z" * 200]) for _ in range(20)]

        def chatty_within_budget() -> bool:
            found = records(api, chatty, limit=100)
            return sum(len(r["text"].encode()) for r in found) <= 3000

        wait_for(chatty_within_budget, timeout=3, what="chatty trimmed to 3000 bytes")
        kept = [r["request_id"] for r in records(api, chatty, limit=100)]
        assert 3 <= len(kept) < 20
        assert kept == rids[-len(kept) :], "the newest stay"
        assert [r["request_id"] for r in records(api, quiet)] == [kept_quiet], "others untouched"

        wait_for(lambda: records(api, quiet) == [], timeout=10, what="quiet's log aged out")
        wait_for(lambda: records(api, chatty) == [], timeout=10, what="chatty's log aged out")


@pytest.fixture(
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)], scope="module"
)
def store_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('store') / 'pyfaas.db'}"
        return
    with postgres_database() as url:
        yield url


def test_the_store_searches_and_sweeps_the_same_on_sqlite_and_postgresql(store_url: str) -> None:
    async def main() -> None:
        store: Store = await open_store(store_url)
        try:
            now = time.time()
            stored = await store.append_logs(
                [
                    LogRecord("a", "r1", now - 100, "old line\n"),
                    LogRecord("a", "r2", now - 10, 'ERROR: naïve café\n{"k": 1}\n'),
                    LogRecord("a", "r3", now, "error lower case\n"),
                    LogRecord("b", "r4", now, "ERROR elsewhere\n"),
                ]
            )
            ids = [r.id for r in stored]
            assert ids == sorted(ids) and len(set(ids)) == 4
            search = store.logs.search
            assert [r.request_id for r in await search(LogQuery("a", contains="ERROR"))] == ["r2"]
            assert [r.request_id for r in await search(LogQuery("a", contains="café"))] == ["r2"]
            between = LogQuery("a", since=now - 50, until=now - 5)
            assert [r.request_id for r in await search(between)] == ["r2"]
            assert await store.logs.last_id("a") == ids[2]
            assert await store.logs.last_id() == ids[3]

            policy = RetentionPolicy(max_age_s=50, max_bytes_per_function=0)
            assert await LogSweeper(store.logs, policy).sweep() == 1
            assert [r.request_id for r in await search(LogQuery("a"))] == ["r2", "r3"]
            # r2's text is 29 bytes in UTF-8 (é and ï take two), r3's 17: r3 alone fits.
            trim = RetentionPolicy(max_age_s=0, max_bytes_per_function=20)
            assert await LogSweeper(store.logs, trim).sweep() == 1
            assert [r.request_id for r in await search(LogQuery("a"))] == ["r3"]
            assert [r.request_id for r in await search(LogQuery("b"))] == ["r4"]
        finally:
            await store.close()

    asyncio.run(main())


def test_an_invocation_record_reads_as_its_whole_log_and_is_searched_and_trimmed_as_one(
    store_url: str,
) -> None:
    """An invocation's record stores its output and REPORT figures; its START/END/REPORT
    lines are made when read, in Python for the text and in SQL for a search, alike."""

    async def main() -> None:
        store: Store = await open_store(store_url)
        try:
            fn, now = unique("report"), time.time()
            rows = [
                # 1.125 ms: half a hundredth, shown rounded up; a cold start of 0.995 ms.
                invocation_row(fn, "cold", now, "", "3", 1.125, 256, 41, 0.995),
                invocation_row(
                    fn, "warm", now, "café\nno newline", "$LATEST", 12.3456, 128, 20, None
                ),
                log_row(fn, "plain", now, "a plain line\n"),
            ]
            ids = await store.append_log_rows(rows)
            texts = {r.request_id: r.text for r in await store.logs.search(LogQuery(fn))}
            assert texts["cold"] == (
                "START RequestId: cold Version: 3\nEND RequestId: cold\n"
                "REPORT RequestId: cold\tDuration: 1.13 ms\tBilled Duration: 2 ms\t"
                "Memory Size: 256 MB\tMax Memory Used: 41 MB\tInit Duration: 1.00 ms\n"
            )
            assert texts["warm"] == (
                "START RequestId: warm Version: $LATEST\ncafé\nno newline\nEND RequestId: warm\n"
                "REPORT RequestId: warm\tDuration: 12.35 ms\tBilled Duration: 13 ms\t"
                "Memory Size: 128 MB\tMax Memory Used: 20 MB\n"
            )
            assert texts["plain"] == "a plain line\n"
            # What the feed hands followers is the same text.
            assert [record_of(row, id_).text for row, id_ in zip(rows, ids, strict=True)] == list(
                texts.values()
            )
            # Every piece of every made line is found by the SQL search, and only there.
            for rid, text in texts.items():
                for piece in text.splitlines():
                    found = await store.logs.search(LogQuery(fn, contains=piece))
                    assert rid in [r.request_id for r in found], piece
            for absent in ("Init Duration: 0.00", "Duration: 1.12 ms", "plain line\nEND"):
                assert await store.logs.search(LogQuery(fn, contains=absent)) == []
            # Retention by size counts the made lines: the budget of the two newest's whole
            # text keeps them and drops the oldest, however little it stored.
            budget = len(texts["warm"].encode()) + len(texts["plain"].encode())
            policy = RetentionPolicy(max_age_s=0, max_bytes_per_function=budget)
            assert await LogSweeper(store.logs, policy).sweep() == 1
            assert [r.request_id for r in await store.logs.search(LogQuery(fn))] == [
                "warm",
                "plain",
            ]
            policy = RetentionPolicy(max_age_s=0, max_bytes_per_function=budget - 1)
            assert await LogSweeper(store.logs, policy).sweep() == 1
            assert [r.request_id for r in await store.logs.search(LogQuery(fn))] == ["plain"]
        finally:
            await store.close()

    asyncio.run(main())


@given(us=st.integers(0, 10**12))
@settings(deadline=None)  # pure arithmetic; a busy machine's pauses are not its failures
def test_a_duration_reads_alike_in_python_and_in_the_sql_of_searches(us: int) -> None:
    with sqlite3.connect(":memory:") as conn:
        sql = milliseconds_sql(sa.literal(us, sa.BigInteger)).compile(
            dialect=sqlite_dialect(), compile_kwargs={"literal_binds": True}
        )
        (shown,) = conn.execute(f"SELECT {sql}").fetchone()
    assert shown == milliseconds_text(us)
    whole, _, hundredths = shown.partition(".")
    assert len(hundredths) == 2 and abs(int(whole + hundredths) * 10 - us) <= 5
