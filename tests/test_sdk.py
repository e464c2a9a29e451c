"""The Python SDK against a real server: define functions with App, deploy, call them
(remote, spawn, map, aio, local), serializers, shipping by value and as source, remote
exceptions, the pyfaas.Client, `pyfaas deploy app.py`, the IPython magics and the notebook."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import textwrap
import threading
import time
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import ServerProcess, deploy, free_port, run_cli, unique, wait_for
from pyfaas import App, Client, RemoteError
from pyfaas.model import InvalidFunctionConfig
from pyfaas.sdk import ApiError, SerializationError, ServerUnreachable, ShippingError
from pyfaas.sdk.client import InvokeResponse
from pyfaas.sdk.errors import RemoteTraceback
from sdk_units import InsufficientFunds, Reading

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture()
def app(server: ServerProcess) -> Iterator[App]:
    """An App of its own on the session's server; its functions are deleted afterwards."""
    application = App(unique("sdk"), url=server.url)
    yield application
    for name in application.functions:
        with httpx.Client(base_url=server.url) as http:
            http.delete(f"/v1/functions/{name}")


# --- remote, local, closures -----------------------------------------------------------------


def test_remote_runs_the_function_on_the_server_and_local_runs_it_here(app: App) -> None:
    pid_here = os.getpid()

    @app.function(memory=256, timeout=10)
    def where(features: list[float], scale: float = 1.0) -> dict[str, object]:
        return {"pid": os.getpid(), "total": sum(features) * scale}

    assert where.local([1.0, 2.0]) == {"pid": pid_here, "total": 3.0}  # no server needed
    app.deploy(quiet=True)
    remote = where.remote([1.0, 2.0], scale=10)
    assert remote["total"] == 30.0
    assert remote["pid"] != pid_here

    info = app.client.function(where.name)
    assert (info["memory_mb"], info["timeout_s"], info["handler"]) == (
        256,
        10,
        "pyfaas_entry.handler",
    )


def test_a_closure_is_shipped_by_value_with_what_it_captured(app: App) -> None:
    rates = {"EUR": 0.5, "GBP": 0.25}
    rounding = 2

    def convert(amount: float, currency: str) -> float:
        return round(amount * rates[currency], rounding)

    @app.function
    def price(amount: float, currency: str) -> float:
        return convert(amount, currency)

    bundle = price.bundle()
    assert bundle.shipped == "value"
    assert "pyfaas_function.pkl" in bundle.files
    app.deploy(quiet=True)
    assert price.remote(10.0, "GBP") == 2.5
    # Redefining the captured state locally changes nothing already deployed.
    rates["GBP"] = 99.0
    assert price.remote(10.0, "GBP") == 2.5


def test_module_functions_are_shipped_as_source_with_the_local_modules_they_import(
    server: ServerProcess,
) -> None:
    from sdk_apps import geometry
    from sdk_units import Box

    geometry.app.connect(Client(server.url))
    bundle = geometry.area.bundle()
    assert bundle.shipped == "source"
    assert {"sdk_apps/__init__.py", "sdk_apps/geometry.py", "sdk_units.py"} <= set(bundle.files)
    assert "pyfaas_function.pkl" not in bundle.files
    assert not any(name.startswith(("pyfaas/", "httpx")) for name in bundle.files)
    spec = json.loads(bundle.files["pyfaas_function.json"])
    assert (spec["module"], spec["qualname"]) == ("sdk_apps.geometry", "area")

    geometry.app.deploy(quiet=True)
    try:
        assert geometry.area.remote(3, 4, unit="cm") == "12 cm²"
        assert geometry.bounding_box.remote([(1, 5), (3, 2)]) == Box(1, 2, 3, 5)
        assert geometry.area.local(2, 2) == "4 m²"
    finally:
        for name in geometry.app.functions:
            geometry.app.client.delete(name)


def test_an_unchanged_function_deploys_as_unchanged(app: App) -> None:
    @app.function
    def same(x: int) -> int:
        return x

    first, second = app.deploy(quiet=True)[0], app.deploy(quiet=True)[0]
    assert first["created"] and not second["changed"]


def test_requirements_go_into_the_bundles_requirements_txt(app: App) -> None:
    @app.function(requirements=["humanize>=4", "attrs"])
    def needs(x: int) -> int:
        return x

    assert needs.bundle().files["requirements.txt"] == b"humanize>=4\nattrs\n"
    assert "requirements.txt" not in app.function(lambda x: x, name=unique("bare")).bundle().files


# --- spawn -------------------------------------------------------------------------------


def test_spawn_queues_durably_and_get_returns_the_stored_result(
    app: App, server: ServerProcess
) -> None:
    @app.function(timeout=10)
    def slow_square(x: int, delay: float) -> int:
        time.sleep(delay)
        return x * x

    app.deploy(quiet=True)
    call = slow_square.spawn(7, delay=0.3)
    assert call.status in ("queued", "running")
    assert call.get(timeout=20) == 49
    assert call.status == "succeeded"
    with httpx.Client(base_url=server.url) as http:
        state = http.get(f"/v1/invocations/{call.request_id}").json()
    assert state["result"] == 49

    pending = slow_square.spawn(2, delay=1.5)
    with pytest.raises(TimeoutError, match="call get\\(\\) again"):
        pending.get(timeout=0.2)
    assert asyncio.run(pending.get_async(timeout=20)) == 4


def test_spawn_get_raises_the_error_once_retries_ran_out(app: App) -> None:
    @app.function
    def withdraw(amount: int) -> int:
        raise InsufficientFunds(f"cannot withdraw {amount}")

    app.deploy(quiet=True)
    app.client.request(
        "PATCH", f"/v1/functions/{withdraw.name}", json={"maximum_retry_attempts": 0}
    )
    call = withdraw.spawn(500)
    with pytest.raises(InsufficientFunds, match="cannot withdraw 500") as raised:
        call.get(timeout=20)
    assert call.status == "dead"
    assert "in withdraw" in raised.value.remote_traceback  # type: ignore[attr-defined]


# --- map and aio ---------------------------------------------------------------------------


def test_map_fans_out_and_yields_results_in_the_order_of_the_items(
    app: App, capsys: pytest.CaptureFixture[str]
) -> None:
    @app.function
    def late_for_small(x: int, y: int) -> int:
        time.sleep(0.02 * (5 - x % 5))  # small x finish last
        return x + y

    app.deploy(quiet=True)
    xs = list(range(40))
    results = list(late_for_small.map(xs, [100] * 40, concurrency=8))
    assert results == [x + 100 for x in xs]  # concurrency itself: the overlap test below
    assert "late_for_small" not in capsys.readouterr().out  # the bar goes to stderr

    # A lazy iterable of unknown length, and starmap.
    assert list(late_for_small.starmap(((i, i) for i in range(5)), progress=False)) == [
        0,
        2,
        4,
        6,
        8,
    ]
    assert list(late_for_small.map([], progress=False)) == []
    with pytest.raises(ValueError, match="concurrency must be a positive integer"):
        late_for_small.map([1], concurrency=0)


def test_map_raises_the_first_failure_in_order_or_yields_it_with_return_exceptions(
    app: App,
) -> None:
    @app.function
    def invert(x: float) -> float:
        return 1 / x

    app.deploy(quiet=True)
    got = []
    with pytest.raises(ZeroDivisionError):
        for value in invert.map([1, 2, 0, 4], concurrency=4, progress=False):
            got.append(value)
    assert got == [1.0, 0.5]

    outcomes = list(invert.map([4, 0], progress=False, return_exceptions=True))
    assert outcomes[0] == 0.25
    assert isinstance(outcomes[1], ZeroDivisionError)
    assert "1 / x" in str(outcomes[1].__cause__)


def test_map_keeps_at_most_concurrency_calls_in_flight_and_each_item_is_one_invocation(
    app: App,
) -> None:
    @app.function
    def occupy(i: int) -> list[float]:
        if isinstance(i, str):
            raise ValueError(i)
        started = time.time()
        time.sleep(0.1)
        return [started, time.time()]

    app.deploy(quiet=True)
    spans = list(occupy.map(range(24), concurrency=4, progress=False))
    edges = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    running, most = 0, 0
    for _, step in edges:
        running += step
        most = max(most, running)
    assert most == 4  # the bound is reached, never passed

    failures = list(occupy.map(["a", 1, "b"], progress=False, return_exceptions=True))
    ids = {getattr(exc, "request_id", "") for exc in failures if isinstance(exc, ValueError)}
    assert isinstance(failures[1], list) and len(ids) == 2 and "" not in ids


def test_map_raises_what_the_items_iterator_raises_after_the_items_before_it(app: App) -> None:
    @app.function
    def double(x: int) -> int:
        return 2 * x

    app.deploy(quiet=True)

    def items() -> Iterator[int]:
        yield from (1, 2, 3)
        raise LookupError("no fourth item")

    got = []
    with pytest.raises(LookupError, match="no fourth item"):
        for value in double.map(items(), concurrency=8, progress=False):
            got.append(value)
    assert got == [2, 4, 6]


def test_map_goes_on_when_the_server_closed_its_idle_connections_meanwhile(app: App) -> None:
    @app.function
    def square(x: int) -> int:
        return x * x

    app.deploy(quiet=True)
    results = square.map(range(600), concurrency=2, progress=False)  # over the window: 256
    assert next(results) == 0
    time.sleep(6)  # the window is full, the connections idle: uvicorn closes them after 5 s
    assert list(results) == [x * x for x in range(1, 600)]


def test_map_sends_items_in_batches_with_either_serializer(app: App, server: ServerProcess) -> None:
    @app.function
    def negate(x: int) -> int:
        return -x

    @app.function(serializer="pickle")
    def scaled(reading: Reading, factor: float) -> Reading:
        return Reading(reading.sensor, tuple(v * factor for v in reading.values))

    app.deploy(quiet=True)
    with CountingProxy(server.port) as proxy, proxied(proxy.url):
        assert list(negate.map(range(500), concurrency=4, progress=False)) == [
            -x for x in range(500)
        ]
        batches = proxy.requests("/invoke-batch")
        assert batches >= 1
        assert proxy.requests("/invoke") < 100  # batches (the last, single items: /invoke)
        # A batch size of one: one /invoke request per item, as before batches.
        calls = proxy.requests("/invoke")
        assert list(negate.map(range(20), batch_size=1, progress=False)) == [-x for x in range(20)]
        assert proxy.requests("/invoke") == calls + 20
        assert proxy.requests("/invoke-batch") == batches
        with pytest.raises(ValueError, match="batch_size must be a positive integer"):
            negate.map([1], batch_size=0)
        readings = [Reading(f"s{i}", (i, 0.5)) for i in range(120)]
        assert list(scaled.map(readings, [2.0] * 120, concurrency=3, progress=False)) == [
            Reading(f"s{i}", (2.0 * i, 1.0)) for i in range(120)
        ]
    assert proxy.requests("/invoke") < 200


def test_map_goes_through_the_proxy_the_environment_sets_unless_no_proxy_exempts_the_server(
    app: App, server: ServerProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pyfaas.sdk.http1 import proxy_for

    @app.function
    def shout(word: str) -> str:
        return word.upper()

    app.deploy(quiet=True)
    words = [f"w{i}" for i in range(30)]
    with CountingProxy(server.port) as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        assert proxy_for(server.url) == proxy.url
        assert app.client.connection() is None  # the direct connection would skip the proxy
        assert list(shout.map(words, concurrency=4, progress=False)) == [w.upper() for w in words]
        through = proxy.requests("/invoke")  # 30 items at c=4: one item a request
        assert through == 30

        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        assert proxy_for(server.url) is None
        assert list(shout.map(words, concurrency=4, progress=False)) == [w.upper() for w in words]
        assert proxy.requests("/invoke") == through

        monkeypatch.delenv("NO_PROXY")
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{free_port()}")  # nobody there
        outcomes = list(shout.map(["a"], progress=False, return_exceptions=True))
        assert isinstance(outcomes[0], ServerUnreachable)


def test_a_post_is_never_sent_twice_when_the_connection_drops_after_it_was_written(
    app: App,
) -> None:
    peer = AnswerOnceThenHangUp()
    client = Client(peer.url)
    connection = client.connection()
    assert connection is not None

    async def two_calls() -> tuple[Any, BaseException | None]:
        first = await client.invoke_raw_on(connection, "f", b"{}")
        try:
            await client.invoke_raw_on(connection, "f", b"{}")
        except ServerUnreachable as exc:
            return first.json(), exc
        return first.json(), None

    try:
        first, second = asyncio.run(two_calls())
    finally:
        peer.close()
    assert first == {"ok": True}
    assert isinstance(second, ServerUnreachable)  # the server may have run it: not resent
    assert peer.requests == 2


def test_map_reopens_a_connection_the_server_restarted_under_and_runs_each_item_once(
    tmp_path: Path,
) -> None:
    port = free_port()

    def start() -> ServerProcess:
        return ServerProcess(tmp_path / "home", port=port).wait_ready()

    first = start()
    restarted: ServerProcess | None = None
    try:
        application = App(unique("restart"), url=first.url)
        count = application.function(lambda x: x, name=unique("count"))
        application.deploy(quiet=True)
        client = application.client
        connection = client.connection()
        assert connection is not None

        async def call(i: int) -> Any:
            body = count.encode((i,), {})
            return (await client.invoke_raw_on(connection, count.name, body)).json()

        loop = asyncio.new_event_loop()
        assert loop.run_until_complete(call(1)) == 1
        first.stop()
        restarted = start()
        assert loop.run_until_complete(call(2)) == 2  # the closed connection is not reused
        loop.close()
        with restarted.client() as http:

            def ran_twice() -> bool:
                rows = http.get("/v1/usage", params={"function": count.name}).json()["rows"]
                return bool(rows) and rows[0]["invocations"] == 2

            wait_for(ran_twice, what="two usage records")
            time.sleep(1)  # the usage writer's next batch would show a third
            assert ran_twice()
    finally:
        first.stop()
        if restarted is not None:
            restarted.stop()


def test_map_gives_up_on_an_answer_slower_than_the_clients_timeout(
    app: App, server: ServerProcess
) -> None:
    @app.function
    def nap(seconds: float) -> float:
        time.sleep(seconds)
        return seconds

    app.deploy(quiet=True)
    app.connect(Client(server.url, timeout=1))
    outcomes = list(nap.map([0, 4, 0], concurrency=2, progress=False, return_exceptions=True))
    assert outcomes[0] == 0 and outcomes[2] == 0
    assert isinstance(outcomes[1], ServerUnreachable)
    assert "did not answer in time" in str(outcomes[1])


def test_map_shows_a_progress_bar_that_reaches_the_number_of_items_on_a_terminal(
    app: App, tmp_path: Path
) -> None:
    import pty

    @app.function
    def identity(x: int) -> int:
        return x

    app.deploy(quiet=True)
    script = tmp_path / "mapper.py"
    script.write_text(
        textwrap.dedent(
            f"""
            from pyfaas import App
            app = App({app.name!r}, url={app.client.url!r})
            identity = app.function(lambda x: x, name={identity.name!r})
            assert list(identity.map(range(300), concurrency=8)) == list(range(300))
            """
        )
    )
    main, terminal = pty.openpty()
    env = {**os.environ, "TERM": "xterm", "COLUMNS": "100"}
    proc = subprocess.Popen([sys.executable, str(script)], stderr=terminal, env=env)
    os.close(terminal)
    output = b""
    while True:
        try:
            chunk = os.read(main, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        output += chunk
    os.close(main)
    assert proc.wait(timeout=60) == 0, output.decode(errors="replace")
    assert b"identity.map" in output and b"300/300" in output


def test_remote_aio_calls_concurrently_on_the_event_loop(app: App) -> None:
    @app.function
    def pause(seconds: float) -> float:
        time.sleep(seconds)
        return seconds

    app.deploy(quiet=True)
    pause.remote(0)  # a warm worker

    async def five_at_once() -> list[float]:
        return await asyncio.gather(*(pause.remote.aio(0.5) for _ in range(5)))

    started = time.monotonic()
    assert asyncio.run(five_at_once()) == [0.5] * 5
    assert time.monotonic() - started < 2.4  # not 5 x 0.5 s in a row


# --- serializers ------------------------------------------------------------------------


def test_pickle_serializer_carries_python_values_both_ways(app: App) -> None:
    @app.function(serializer="pickle")
    def summarize(reading: Reading, seen: set[str]) -> tuple[Reading, frozenset[str], bytes]:
        doubled = Reading(reading.sensor, tuple(v * 2 for v in reading.values))
        return doubled, frozenset(seen | {reading.sensor}), b"\x00\xff"

    app.deploy(quiet=True)
    reading, seen, raw = summarize.remote(Reading("t1", (1.5, 2.0)), {"t0"})
    assert reading == Reading("t1", (3.0, 4.0))
    assert seen == frozenset({"t0", "t1"})
    assert raw == b"\x00\xff"


def test_json_serializer_refuses_values_json_cannot_carry_and_says_what_to_do(app: App) -> None:
    @app.function
    def echo(value: object) -> object:
        return value

    @app.function
    def make_set() -> object:
        return {1, 2}

    app.deploy(quiet=True)
    with pytest.raises(SerializationError, match='serializer="pickle"') as refused:
        echo.remote({1, 2})
    assert refused.value.code == "not_serializable"
    with pytest.raises(SerializationError):
        echo.remote(float("nan"))
    with pytest.raises(RemoteError) as marshal:
        make_set.remote()
    assert marshal.value.error_type == "Runtime.MarshalError"
    assert any('serializer="pickle"' in note for note in marshal.value.__notes__)
    assert echo.remote({"a": [1, None, "x"]}) == {"a": [1, None, "x"]}


def test_an_unknown_serializer_or_bad_requirements_are_refused_at_declaration(app: App) -> None:
    for options, code, message in (
        ({"serializer": "yaml"}, "invalid_serializer", "serializer must be one of json, pickle"),
        ({"requirements": "numpy"}, "invalid_requirements", "requirements must be a list"),
        ({"name": "no spaces allowed"}, "invalid_name", "name="),
        ({"memroy": 256}, "unknown_field", "takes no memroy; it takes name, memory"),
    ):
        with pytest.raises(InvalidFunctionConfig, match=message) as refused:
            app.function(**options)(lambda: None)
        assert refused.value.code == code
    assert app.functions == {}


# --- remote exceptions ------------------------------------------------------------------


def test_remote_exceptions_keep_their_type_when_importable_else_remote_error(app: App) -> None:
    @app.function
    def fail(kind: str) -> None:
        class Unimportable(Exception):
            pass

        if kind == "builtin":
            raise KeyError("missing")
        if kind == "mine":
            raise InsufficientFunds("balance 3, wanted 5")
        raise Unimportable("made inside the function")

    app.deploy(quiet=True)
    with pytest.raises(KeyError) as builtin:
        fail.remote("builtin")
    assert isinstance(builtin.value.__cause__, RemoteTraceback)
    assert 'raise KeyError("missing")' in str(builtin.value.__cause__)
    assert "pyfaas_entry" not in str(builtin.value.__cause__)

    with pytest.raises(InsufficientFunds, match="balance 3, wanted 5"):
        fail.remote("mine")

    with pytest.raises(RemoteError) as remote:
        fail.remote("other")
    assert remote.value.error_type == "Unimportable"
    assert remote.value.error_message == "made inside the function"
    assert remote.value.request_id
    assert "in fail" in remote.value.remote_traceback


def test_a_timeout_is_a_remote_error_of_the_platform(app: App) -> None:
    @app.function(timeout=1)
    def forever() -> None:
        time.sleep(30)

    app.deploy(quiet=True)
    with pytest.raises(RemoteError) as timed_out:
        forever.remote()
    assert timed_out.value.error_type == "Sandbox.Timedout"


# --- what cannot be shipped -----------------------------------------------------------------


@pytest.fixture()
def generated_module() -> Iterator[types.ModuleType]:
    """A module made at run time: importable here, with no source file to ship."""
    module = types.ModuleType("sdk_generated_at_run_time")
    exec("def shout(text):\n    return text.upper()\n", module.__dict__)
    sys.modules[module.__name__] = module
    yield module
    del sys.modules[module.__name__]


def test_a_module_without_source_is_a_clear_error_and_nothing_is_deployed(
    app: App, generated_module: types.ModuleType
) -> None:
    shout = app.function(generated_module.shout)

    @app.function
    def greet(name: str) -> str:
        return generated_module.shout(f"hello {name}")

    for function in (shout, greet):
        with pytest.raises(ShippingError, match=r"sdk_generated_at_run_time.*no source") as e:
            function.bundle()
        assert e.value.code == "cannot_ship"
    with pytest.raises(ShippingError):
        app.deploy(quiet=True)
    with pytest.raises(ApiError) as missing:
        app.client.function(shout.name)
    assert missing.value.code == "function_not_found"


# --- invoke-batch ----------------------------------------------------------------------------

ECHO = """
import os
def handler(event, context):
    if event.get("fail"):
        raise ValueError(event["fail"])
    return {"event": event, "version": os.environ.get("AWS_LAMBDA_FUNCTION_VERSION")}
"""


def batch(api: httpx.Client, target: str, lines: list[bytes], **params: str) -> httpx.Response:
    body = b"\n".join(lines)
    return api.post(f"/v1/functions/{target}/invoke-batch", content=body, params=params)


def answers(response: httpx.Response) -> dict[int, dict[str, Any]]:
    """The answer lines of a batch by the index of their event."""
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/x-ndjson"
    found = [json.loads(line) for line in response.text.splitlines()]
    return {item["index"]: item for item in found}


def test_a_batch_runs_each_event_as_its_own_invocation_as_single_invokes_would(
    api: httpx.Client,
) -> None:
    name = unique("batch")
    assert deploy(api, name, {"h.py": ECHO}, handler="h.handler").status_code in (200, 201)
    events: list[Any] = [{"n": i} for i in range(20)] + [[1, "two"], "text", {"fail": "no"}]
    single = [api.post(f"/v1/functions/{name}/invoke", json=event) for event in events]
    response = batch(api, name, [json.dumps(event).encode() for event in events])
    assert response.headers["x-pyfaas-batch-items"] == str(len(events))
    got = answers(response)
    assert sorted(got) == list(range(len(events)))
    for index, one in enumerate(single):
        item = got[index]
        assert item["status"] == 200
        if isinstance(item["body"], dict) and "requestId" in item["body"]:  # an error's
            assert item["body"].pop("requestId") == item["request_id"]
            assert one.json().pop("requestId") == one.headers["x-pyfaas-request-id"]
            assert item["body"] == {k: v for k, v in one.json().items() if k != "requestId"}
        else:
            assert item["body"] == one.json()
        assert item["function_error"] == one.headers.get("x-pyfaas-function-error")
        assert item["version"] == "$LATEST"
        assert item["duration_ms"] >= 0
    assert got[22]["function_error"] == "Unhandled"
    assert got[22]["body"]["errorType"] == "ValueError"
    request_ids = {item["request_id"] for item in got.values()}
    assert len(request_ids) == len(events)  # each its own invocation

    # Each event has its own log and usage record: 2 x 23 invocations in all.
    def metered() -> bool:
        rows = api.get("/v1/usage", params={"function": name}).json()["rows"]
        return bool(rows) and rows[0]["invocations"] == 2 * len(events)

    wait_for(metered, what="a usage record per invocation")
    logs = api.get(
        f"/v1/functions/{name}/logs", params={"request_id": got[22]["request_id"]}
    ).json()["records"]
    assert "ValueError" in "".join(record["text"] for record in logs)

    # Run at once with concurrency, events still answered once each.
    parallel = answers(batch(api, name, [b'{"n": %d}' % i for i in range(12)], concurrency="4"))
    assert [parallel[i]["body"]["event"] for i in range(12)] == [{"n": i} for i in range(12)]


def test_a_batch_streams_each_answer_line_without_waiting_for_later_events(
    api: httpx.Client,
) -> None:
    # Lines of fast events are written together, but never held for a slow one: the first
    # line arrives while the second event still sleeps.
    name = unique("batchstream")
    code = "import time\ndef handler(event, context):\n    time.sleep(event['s'])\n    return 1\n"
    assert deploy(api, name, {"h.py": code}, handler="h.handler").status_code in (200, 201)
    body = b'{"s": 0}\n{"s": 0}\n{"s": 2.5}'
    arrived: dict[int, float] = {}
    with api.stream("POST", f"/v1/functions/{name}/invoke-batch", content=body) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            arrived[json.loads(line)["index"]] = time.monotonic()
    assert list(arrived) == [0, 1, 2], "one after the other (concurrency 1)"
    assert arrived[2] - arrived[1] >= 2.0, "line 1 came before the slow event ended"


def test_a_batch_honours_the_qualifier_and_throttles_each_event_on_its_own(
    api: httpx.Client,
) -> None:
    name = unique("batchq")
    assert deploy(api, name, {"h.py": ECHO}, handler="h.handler").status_code in (200, 201)
    assert api.post(f"/v1/functions/{name}/versions", json={}).status_code in (200, 201)
    api.put(f"/v1/functions/{name}/aliases/live", json={"version": 1})
    for target, params in ((f"{name}:live", {}), (name, {"qualifier": "1"})):
        got = answers(batch(api, target, [b"{}", b"{}"], **params))
        assert [got[i]["version"] for i in (0, 1)] == ["1", "1"]
        assert got[0]["body"]["version"] == "1"

    assert api.patch(f"/v1/functions/{name}", json={"reserved_concurrency": 0}).status_code == 200
    got = answers(batch(api, name, [b"{}", b"{}"]))
    for index in (0, 1):
        assert got[index]["status"] == 429
        assert got[index]["error"]["code"] == "too_many_requests"


@pytest.mark.parametrize(
    ("lines", "params", "headers", "status", "code"),
    [
        ([b""], {}, {}, 400, "empty_batch"),
        ([b"{}", b"", b"{}"], {}, {}, 400, "invalid_payload"),
        ([b"{}", b"{not json"], {}, {}, 400, "invalid_payload"),
        ([b"{}"] * 1001, {}, {}, 400, "too_many_batch_items"),
        ([b'"' + b"x" * (6 * 1024 * 1024) + b'"'], {}, {}, 413, "payload_too_large"),
        ([b"{}"], {"concurrency": "0"}, {}, 400, "invalid_concurrency"),
        ([b"{}"], {"concurrency": "many"}, {}, 400, "invalid_concurrency"),
        ([b"{}"], {}, {"X-Invocation-Type": "Event"}, 400, "invalid_invocation_type"),
        ([b"{}"], {"qualifier": "9"}, {}, 404, "version_not_found"),
    ],
)
def test_a_bad_batch_is_refused_whole_with_a_stable_code_and_runs_nothing(
    api: httpx.Client,
    lines: list[bytes],
    params: dict[str, str],
    headers: dict[str, str],
    status: int,
    code: str,
) -> None:
    name = unique("badbatch")
    assert deploy(api, name, {"h.py": ECHO}, handler="h.handler").status_code in (200, 201)
    response = api.post(
        f"/v1/functions/{name}/invoke-batch",
        content=b"\n".join(lines),
        params=params,
        headers=headers,
    )
    assert (response.status_code, response.json()["error"]["code"]) == (status, code)
    assert response.json()["error"]["message"]
    assert api.get("/v1/usage", params={"function": name}).json()["rows"] == []
    missing = api.post("/v1/functions/no-such-function/invoke-batch", content=b"{}")
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "function_not_found")


def test_client_invoke_batch_raw_answers_in_the_order_of_the_bodies(app: App) -> None:
    @app.function
    def halve(x: int) -> float:
        time.sleep(0.01 * (3 - x))
        return 1 / x * 0.5 if x else 1 / x

    app.deploy(quiet=True)
    bodies = [halve.encode((x,), {}) for x in (1, 2, 0)]
    got = app.client.invoke_batch_raw(halve.name, bodies)
    assert [type(answer) for answer in got] == [InvokeResponse, InvokeResponse, InvokeResponse]
    assert [halve.decode(answer) for answer in got[:2]] == [0.5, 0.25]
    with pytest.raises(ZeroDivisionError):
        halve.decode(got[2])
    with pytest.raises(ApiError) as refused:
        app.client.invoke_batch_raw(halve.name, [b"{"])
    assert refused.value.code == "invalid_payload"


# --- Client --------------------------------------------------------------------------------


def test_client_calls_any_function_by_name_sync_and_async(
    server: ServerProcess, api: httpx.Client
) -> None:
    name = unique("plain")
    handler = (
        "def handler(event, context):\n    return {'got': event, 'fn': context.function_name}\n"
    )
    assert deploy(api, name, {"handler.py": handler}).status_code in (200, 201)
    client = Client(server.url)
    assert client.invoke(name, {"a": 1}) == {"got": {"a": 1}, "fn": name}
    assert asyncio.run(client.invoke_async(name, [1, 2])) == {"got": [1, 2], "fn": name}
    request_id = client.submit(name, {"later": True})
    assert request_id

    with pytest.raises(ApiError) as missing:
        client.invoke(unique("nobody"), {})
    assert (missing.value.status, missing.value.code) == (404, "function_not_found")
    with pytest.raises(ServerUnreachable, match="cannot reach the pyfaas server"):
        Client(f"http://127.0.0.1:{free_port()}").invoke(name)
    api.delete(f"/v1/functions/{name}")


def test_url_and_token_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYFAAS_URL", "http://example.invalid:9/")
    monkeypatch.setenv("PYFAAS_TOKEN", "s3cret")
    client = App("env").client
    assert client.url == "http://example.invalid:9"
    assert client.http.headers["authorization"] == "Bearer s3cret"


# --- pyfaas deploy app.py ------------------------------------------------------------------


def test_the_cli_deploys_the_app_a_python_file_defines(
    server: ServerProcess, tmp_path: Path
) -> None:
    app_name = unique("cliapp")
    (tmp_path / "pricing.py").write_text(
        textwrap.dedent(
            f"""
            from pyfaas import App

            app = App({app_name!r})
            VAT = 0.2


            @app.function(memory=256)
            def gross(net: float) -> float:
                return round(net * (1 + VAT), 2)


            if __name__ == "__main__":
                app.deploy()
            """
        )
    )
    deployed = run_cli("deploy", str(tmp_path / "pricing.py"), server=server)
    assert deployed.returncode == 0, deployed.stderr
    assert f"Created {app_name}-gross (shipped as source)" in deployed.stderr
    invoked = run_cli("invoke", f"{app_name}-gross", "-p", '{"pyfaas.args": [10]}', server=server)
    assert invoked.returncode == 0, invoked.stderr
    assert json.loads(invoked.stdout) == 12.0
    Client(server.url).delete(f"{app_name}-gross")


def test_the_cli_says_what_is_wrong_with_a_python_file_it_cannot_deploy(
    server: ServerProcess, tmp_path: Path
) -> None:
    cases = {
        "no_app.py": ("x = 1\n", "defines no pyfaas App"),
        "broken.py": ("import json\nraise RuntimeError('not today')\n", "broken.py:2"),
        "bad-name.py": ("x = 1\n", "rename it to a Python identifier"),
    }
    for file, (source, message) in cases.items():
        (tmp_path / file).write_text(source)
        result = run_cli("deploy", str(tmp_path / file), server=server)
        assert result.returncode == 1
        assert message in result.stderr
        assert "Traceback" not in result.stderr
    (tmp_path / "named.py").write_text("from pyfaas import App\napp = App('x')\n")
    result = run_cli("deploy", str(tmp_path / "named.py"), "--name", "y", server=server)
    assert result.returncode == 1
    assert "--name do not apply to a Python app file" in result.stderr


# --- IPython magics -------------------------------------------------------------------------


@pytest.fixture()
def shell(server: ServerProcess) -> Iterator[object]:
    from IPython.core.interactiveshell import InteractiveShell

    ipython = InteractiveShell.instance()
    ipython.run_line_magic("load_ext", "pyfaas")
    ipython.run_line_magic("pyfaas", f"connect {server.url}")
    yield ipython


def test_cell_magic_deploys_the_cells_handler_and_line_magic_invokes_it(
    shell: object, server: ServerProcess
) -> None:
    from IPython.core.error import UsageError
    from IPython.core.interactiveshell import InteractiveShell

    assert isinstance(shell, InteractiveShell)
    name = unique("magic")
    cell = textwrap.dedent(
        """
        GREETING = "Hi"

        def shout(text):
            return text.upper()

        def handler(event, context):
            if event.get("fail"):
                raise ValueError("asked to fail")
            return {"text": shout(f"{GREETING} {event['name']}"), "fn": context.function_name}
        """
    )
    deployed = shell.run_cell_magic("pyfaas", f"deploy {name} --memory 256 --timeout 5", cell)
    assert deployed.state == "Created"
    assert "Created" in deployed._repr_html_() and name in deployed._repr_html_()
    assert shell.user_ns["GREETING"] == "Hi"  # the cell ran in the notebook too
    assert Client(server.url).function(name)["memory_mb"] == 256

    result = shell.run_line_magic("pyfaas", f'invoke {name} {{"name": "Ada"}}')
    assert result.value == {"text": "HI ADA", "fn": name}
    assert "HI ADA" in result._repr_html_()
    assert not result.failed

    failed = shell.run_line_magic("pyfaas", f'invoke {name} {{"fail": true}}')
    assert failed.failed
    assert "ValueError: asked to fail" in failed._repr_html_()
    assert "raise ValueError" in repr(failed)

    for line, message in (
        (f"invoke {name} {{not json", "not valid JSON"),
        (f"invoke {unique('nobody')} {{}}", "function_not_found"),
        ("frobnicate", "unknown command"),
        ("deploy x", "cell magic"),
    ):
        with pytest.raises(UsageError, match=message):
            shell.run_line_magic("pyfaas", line)
    with pytest.raises(UsageError, match="defines no function"):
        shell.run_cell_magic("pyfaas", f"deploy {name}", "x = 1\n")
    with pytest.raises(UsageError, match="--memory"):
        shell.run_cell_magic("pyfaas", f"deploy {name} --memory lots", cell)
    Client(server.url).delete(name)


# --- the notebook example -----------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_the_notebook_example_trains_deploys_calls_maps_and_shows_the_cost(
    server: ServerProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.setenv("PYFAAS_URL", server.url)
    notebook = nbformat.read(EXAMPLES / "notebooks" / "iris.ipynb", as_version=4)
    NotebookClient(notebook, timeout=240, kernel_name="python3").execute()

    outputs = [
        output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs
    ]
    text = "\n".join(
        str(o.get("text", "")) + str(o.get("data", {}).get("text/plain", "")) for o in outputs
    )
    assert "'setosa'" in text  # predict.remote([5.1, 3.5, 1.4, 0.2])
    assert "45 predictions on pyfaas, accuracy" in text
    assert "virginica" in text  # the %pyfaas invoke magic
    assert "iris-predict: 47 invocations" in text  # 1 + 45 + 1, then their cost
    assert "USD" in text
    Client(server.url).delete("iris-predict")


# --- peers for the connection tests ---------------------------------------------------------


class CountingProxy:
    """An HTTP proxy on a free port that passes every connection on to the server at
    ``target_port`` byte for byte (uvicorn reads the absolute URL of a proxied request) and
    keeps what clients sent, to count their requests."""

    def __init__(self, target_port: int) -> None:
        self._target = ("127.0.0.1", target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._sent: list[bytes] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def __enter__(self) -> CountingProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self._listener.close()

    def requests(self, path_part: str) -> int:
        """How many requests clients sent whose request line has ``path_part``."""
        with self._lock:
            sent = b"".join(self._sent)
        targets = re.findall(rb"POST (http://\S+) HTTP/1\.1\r\n", sent)
        return sum(1 for target in targets if path_part.encode() in target)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self._target)
            threading.Thread(target=self._pipe, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, False), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket, keep: bool) -> None:
        with source, sink:
            while True:
                try:
                    data = source.recv(65536)
                    if not data:
                        return
                    if keep:
                        with self._lock:
                            self._sent.append(data)
                    sink.sendall(data)
                except OSError:
                    return


@contextlib.contextmanager
def proxied(url: str) -> Iterator[None]:
    """HTTP_PROXY set to ``url`` (and no NO_PROXY, ALL_PROXY) for a with block."""
    names = ("HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy")
    saved = {name: os.environ.pop(name, None) for name in names}
    os.environ["HTTP_PROXY"] = url
    try:
        yield
    finally:
        os.environ.pop("HTTP_PROXY")
        os.environ.update({name: value for name, value in saved.items() if value is not None})


class AnswerOnceThenHangUp:
    """A server on a free port that answers the first request of a connection and hangs up
    on the second once it has read it all: a connection dropped after the request was
    written. ``requests``: how many it read."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self.requests = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def close(self) -> None:
        self._listener.close()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return
            with connection:
                for answer in (True, False):
                    if not self._read_request(connection):
                        break
                    self.requests += 1
                    if answer:
                        body = b'{"ok": true}'
                        connection.sendall(
                            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                            + f"Content-Length: {len(body)}\r\n\r\n".encode()
                            + body
                        )

    @staticmethod
    def _read_request(connection: socket.socket) -> bool:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = connection.recv(65536)
            if not chunk:
                return False
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
        while len(body) < length:
            body += connection.recv(65536)
        return True
