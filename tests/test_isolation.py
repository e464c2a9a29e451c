"""Hostile handlers against the isolation of workers (sandbox, namespaces, cgroups, rlimits).

One server with the sandbox on whatever this machine allows (``sandbox = auto``). Each
test asserts what `/v1/isolation` says is enforced, and for what it says is not enforced,
that the report says so: nothing is skipped. Meanwhile a well-behaved function is invoked
in a loop, and every test checks that it kept answering.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import msgpack
import pytest

from conftest import ServerProcess, deploy, run_cli, serving, unique
from pyfaas.executor.cgroups import WorkerCgroup
from pyfaas.executor.forker import Forker, control_socketpair

SERVER_SECRET = "pyfaas-test-secret-7f3a9c"
DEPLOYED: set[str] = set()  # names of the hostile functions deployed

READ_FILE = """
def handler(event, context):
    with open(event["path"], "rb") as f:
        return {"read": len(f.read())}
"""

WRITE_FILE = """
def handler(event, context):
    with open(event["path"], "w") as f:
        f.write("owned")
    return {"wrote": event["path"]}
"""

FILL_TMP = """
import os
def handler(event, context):
    chunk = b"x" * (1 << 20)
    written = 0
    for index in range(event["files"]):
        path = f"/tmp/fill-{index}" if os.path.isdir("/tmp") else f"fill-{index}"
        try:
            with open(path, "wb") as f:
                for _ in range(event["mb_per_file"]):
                    f.write(chunk)
                    written += len(chunk)
        except OSError as exc:
            raise OSError(exc.errno, f"{exc.strerror} after {written} bytes") from None
    return {"written": written}
"""

FORK_BOMB = """
import os, time
def handler(event, context):
    children = 0
    try:
        while children < event["most"]:
            if os.fork() == 0:
                time.sleep(3)
                os._exit(0)
            children += 1
    except OSError as exc:
        raise OSError(exc.errno, f"{exc.strerror} after {children} processes") from None
    return {"children": children}
"""

OPEN_FILES = """
import os
def handler(event, context):
    opened = []
    try:
        while len(opened) < 100_000:
            opened.append(os.open("/dev/null", os.O_RDONLY))
    except OSError as exc:
        raise OSError(exc.errno, f"{exc.strerror} after {len(opened)} files") from None
    finally:
        for fd in opened:
            os.close(fd)
    return {"opened": len(opened)}
"""

ALLOCATE = """
def handler(event, context):
    hoard = bytearray(10 * 1024 ** 3)
    return {"allocated": len(hoard)}
"""

SPIN = """
import signal
def handler(event, context):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while True:
        pass
"""

CONNECT = """
import socket
def handler(event, context):
    socket.create_connection(("127.0.0.1", event["port"]), timeout=2).close()
    return {"connected": True}
"""

LOOK_AROUND = """
import os
def handler(event, context):
    return {
        "environ": dict(os.environ),
        "uid": os.getuid(),
        "pids": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
        "task_root": os.environ["LAMBDA_TASK_ROOT"],
        "code": open(os.path.join(os.environ["LAMBDA_TASK_ROOT"], "handler.py")).read(),
    }
"""

HELLO = "def handler(event, context):\n    return {'hello': event.get('n')}\n"


class Bystander:
    """A well-behaved function invoked in a loop on its own connection."""

    def __init__(self, server: ServerProcess, name: str) -> None:
        self._client = server.client()
        self._name = name
        self.latencies: list[float] = []
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        n = 0
        while not self._stop.is_set():
            n += 1
            started = time.perf_counter()
            try:
                r = self._client.post(f"/v1/functions/{self._name}/invoke", json={"n": n})
                if r.status_code != 200 or r.json() != {"hello": n}:
                    self.failures.append(f"{r.status_code} {r.text[:200]}")
            except httpx.HTTPError as exc:
                self.failures.append(repr(exc))
            self.latencies.append(time.perf_counter() - started)
            time.sleep(0.02)

    def mark(self) -> int:
        return len(self.latencies)

    def check_since(self, mark: int) -> None:
        """It kept answering, every time, in reasonable time, since ``mark``."""
        deadline = time.monotonic() + 10
        while self.mark() < mark + 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not self.failures, self.failures[:3]
        recent = self.latencies[mark:]
        assert len(recent) >= 3, "the well-behaved function stopped being served"
        # A shared 2-core machine: generous, but far from a stall.
        assert statistics.quantiles(recent, n=100)[98] < 3.0, sorted(recent)[-5:]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self._client.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    env = {
        # auto: whatever this machine allows. PYFAAS_TEST_SANDBOX=off runs the same tests
        # against rlimits and cgroups alone.
        "PYFAAS_SANDBOX": os.environ.get("PYFAAS_TEST_SANDBOX", "auto"),
        "PYFAAS_IDLE_TIMEOUT_S": "20",
        "PYFAAS_TEST_SERVER_SECRET": SERVER_SECRET,
    }
    with serving(tmp_path_factory.mktemp("isolation") / "home", env) as srv:
        yield srv
    # Stopped: every cgroup it made for these tests' functions is gone too. Other servers
    # (other test files, in parallel) make and remove theirs meanwhile: a directory that goes
    # while it is listed is skipped, not an error.
    made = [
        Path(root, name)
        for root, dirs, _ in os.walk("/sys/fs/cgroup", onerror=lambda _: None)
        for name in dirs
        if name.startswith("pyfaas-")
    ]
    left = [str(p) for p in made if any(f"pyfaas-{name}-" in p.name for name in DEPLOYED)]
    assert not left, left


@pytest.fixture(scope="module")
def enforced(server: ServerProcess) -> dict[str, bool]:
    report = httpx.get(f"{server.url}/v1/isolation").json()
    return {m["name"]: m["enforced"] for m in report["mechanisms"]}


@pytest.fixture(scope="module")
def api(server: ServerProcess) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


@pytest.fixture(scope="module")
def bystander(server: ServerProcess, api: httpx.Client) -> Iterator[Bystander]:
    name = unique("bystander")
    assert deploy(api, name, {"handler.py": HELLO}).status_code in (200, 201)
    watcher = Bystander(server, name)
    yield watcher
    watcher.close()


@pytest.fixture()
def calm(bystander: Bystander) -> Iterator[None]:
    mark = bystander.mark()
    yield
    bystander.check_since(mark)


def hostile(api: httpx.Client, code: str, **config: Any) -> str:
    name = unique("hostile")
    DEPLOYED.add(name)
    response = deploy(api, name, {"handler.py": code}, **config)
    assert response.status_code in (200, 201), response.text
    return name


def invoke(api: httpx.Client, name: str, event: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    r = api.post(f"/v1/functions/{name}/invoke", json=event, timeout=120)
    return r.status_code, r.json()


def failed(api: httpx.Client, name: str, event: dict[str, Any]) -> dict[str, Any]:
    """Invoke a handler that must fail; return its error (errorType, errorMessage)."""
    r = api.post(f"/v1/functions/{name}/invoke", json=event, timeout=120)
    assert r.status_code == 200, r.text
    assert r.headers.get("x-pyfaas-function-error") == "Unhandled", r.text
    error: dict[str, Any] = r.json()
    return error


def test_doctor_reports_every_mechanism_and_the_server_logged_them(
    server: ServerProcess, enforced: dict[str, bool]
) -> None:
    result = run_cli("doctor", "--json", server=server)
    report = json.loads(result.stdout)
    assert {m["name"] for m in report["mechanisms"]} == set(enforced)
    assert result.returncode == (0 if all(enforced.values()) else 2), result.stderr
    # What is always in force, on any Linux.
    for name in ("scrubbed environment", "RLIMIT_AS", "RLIMIT_NOFILE", "RLIMIT_CPU"):
        assert enforced[name], name
    log = server.output()
    for name, on in enforced.items():
        assert (f"isolation: {name}:" if on else f"isolation NOT ENFORCED: {name}:") in log
    table = run_cli("doctor", server=server)
    assert "bubblewrap sandbox" in table.stdout and "RLIMIT_NOFILE" in table.stdout


def test_environment_holds_nothing_of_the_server(
    api: httpx.Client, enforced: dict[str, bool], calm: None
) -> None:
    name = hostile(api, LOOK_AROUND, environment={"MINE": "1"})
    status, seen = invoke(api, name, {})
    assert status == 200, seen
    assert SERVER_SECRET not in json.dumps(seen["environ"])
    assert seen["environ"]["MINE"] == "1"
    assert not [k for k in seen["environ"] if k.startswith("PYFAAS_")]
    assert "def handler" in seen["code"]  # its own code: readable
    if enforced["pid namespace"]:
        assert max(seen["pids"]) < 1000, seen["pids"]  # its own few processes
    if enforced["uid per function"]:
        assert seen["uid"] >= 200_000
        other = hostile(api, LOOK_AROUND)
        assert invoke(api, other, {})[1]["uid"] not in (0, seen["uid"])


def test_reading_another_functions_code_fails(
    server: ServerProcess, api: httpx.Client, enforced: dict[str, bool], calm: None
) -> None:
    victim = hostile(api, "SECRET = 'victim-secret'\n" + HELLO)
    sha = api.get(f"/v1/functions/{victim}").json()["code_sha256"]
    target = str(server.home / "code" / sha / "handler.py")
    assert os.path.exists(target)
    thief = hostile(api, READ_FILE)
    if enforced["mount namespace"]:
        error = failed(api, thief, {"path": target})
        assert error["errorType"] == "FileNotFoundError", error
    else:
        assert not enforced["read-only code"]
        assert invoke(api, thief, {"path": target})[0] == 200  # not contained: reported


def test_reading_the_database_and_server_files_fails(
    server: ServerProcess, api: httpx.Client, enforced: dict[str, bool], calm: None
) -> None:
    thief = hostile(api, READ_FILE)
    files = ("pyfaas.db", "server.log", "secret.key")  # secret.key encrypts the secrets
    for path in (server.home / name for name in files):
        assert path.exists()
        if enforced["mount namespace"]:
            error = failed(api, thief, {"path": str(path)})
            assert error["errorType"] == "FileNotFoundError", error
        else:
            assert invoke(api, thief, {"path": str(path)})[0] == 200


def test_reading_the_servers_proc_environ_fails(
    server: ServerProcess, api: httpx.Client, enforced: dict[str, bool], calm: None
) -> None:
    thief = hostile(api, READ_FILE)
    path = f"/proc/{server.proc.pid}/environ"
    with open(path, "rb") as f:
        assert SERVER_SECRET.encode() in f.read()  # it is there to steal
    status, body = invoke(api, thief, {"path": path})
    if enforced["pid namespace"]:
        assert body.get("errorType") in ("FileNotFoundError", "PermissionError"), body
    else:
        assert status == 200


def test_writing_outside_tmp_fails(
    api: httpx.Client, enforced: dict[str, bool], calm: None
) -> None:
    name = hostile(api, WRITE_FILE)
    task_root = invoke(api, hostile(api, LOOK_AROUND), {})[1]["task_root"]
    targets = [os.path.join(task_root, "handler.py"), "/usr/owned.txt", "/owned.txt"]
    if not enforced["mount namespace"]:
        # Without the sandbox the worker runs as the server's user: only the scratch
        # directory and TMPDIR are meant for it, and the report says so.
        assert not enforced["read-only code"]
        return
    for target in targets:
        error = failed(api, name, {"path": target})
        assert error["errorType"] in ("OSError", "PermissionError", "FileNotFoundError"), error
        assert "Read-only file system" in error["errorMessage"] or error["errorType"] != "OSError"
    # /tmp is its own to write.
    assert invoke(api, name, {"path": "/tmp/fine.txt"})[0] == 200


def test_filling_tmp_stops_at_the_ephemeral_storage_size(
    api: httpx.Client, enforced: dict[str, bool], calm: None
) -> None:
    limit = 512 << 20
    name = hostile(api, FILL_TMP, ephemeral_storage_mb=512, timeout_s=60)
    # One file past the limit: RLIMIT_FSIZE (always) or the tmpfs size.
    error = failed(api, name, {"files": 1, "mb_per_file": 600})
    assert error["errorType"] == "OSError", error
    assert "File too large" in error["errorMessage"] or "No space" in error["errorMessage"]
    assert int(error["errorMessage"].split(" after ")[1].split()[0]) <= limit
    if enforced["mount namespace"]:
        # Many files, each under the limit: the tmpfs holds 512 MB in all.
        error = failed(api, name, {"files": 3, "mb_per_file": 300})
        assert "No space left on device" in error["errorMessage"], error
        assert int(error["errorMessage"].split(" after ")[1].split()[0]) <= limit


def test_fork_bomb_is_stopped(api: httpx.Client, enforced: dict[str, bool], calm: None) -> None:
    name = hostile(api, FORK_BOMB, timeout_s=60)
    contained = enforced["RLIMIT_NPROC"] or enforced["cgroup memory/pids/cpu"]
    most = 5000 if contained else 200  # uncontained: do not really bomb the machine
    status, body = invoke(api, name, {"most": most})
    assert status == 200
    if contained:
        assert body["errorType"] == "BlockingIOError", body  # EAGAIN from fork()
        assert "Resource temporarily unavailable" in body["errorMessage"], body
        assert int(body["errorMessage"].split(" after ")[1].split()[0]) < 1024
    else:
        assert body == {"children": most}


def test_opening_100000_files_stops_at_1024(api: httpx.Client, calm: None) -> None:
    name = hostile(api, OPEN_FILES)
    error = failed(api, name, {})
    assert error["errorType"] == "OSError", error
    assert "Too many open files" in error["errorMessage"]
    assert int(error["errorMessage"].split(" after ")[1].split()[0]) < 1024


def test_allocating_10_gb_is_out_of_memory(api: httpx.Client, calm: None) -> None:
    name = hostile(api, ALLOCATE, memory_mb=256)
    error = failed(api, name, {})
    assert error["errorType"] == "Runtime.OutOfMemory", error
    # The next call gets a fresh worker and fails the same way: nothing is stuck.
    assert failed(api, name, {})["errorType"] == "Runtime.OutOfMemory"


def test_spinning_and_ignoring_sigterm_is_killed_at_the_timeout(
    api: httpx.Client, calm: None
) -> None:
    name = hostile(api, SPIN, timeout_s=1)
    started = time.monotonic()
    error = failed(api, name, {})
    assert error["errorType"] == "Sandbox.Timedout", error
    assert time.monotonic() - started < 10


def test_network_none_cannot_connect(
    server: ServerProcess, api: httpx.Client, enforced: dict[str, bool], calm: None
) -> None:
    # With network "host" the same handler reaches the server.
    open_net = hostile(api, CONNECT)
    assert invoke(api, open_net, {"port": server.port}) == (200, {"connected": True})
    name = unique("hostile")
    response = deploy(api, name, {"handler.py": CONNECT}, network="none")
    if not enforced["network: none"]:
        assert response.status_code == 400, response.text
        assert response.json()["error"]["code"] == "network_unavailable"
        assert api.get(f"/v1/functions/{name}").status_code == 404
        return
    assert response.status_code in (200, 201), response.text
    assert api.get(f"/v1/functions/{name}").json()["network"] == "none"
    error = failed(api, name, {"port": server.port})
    assert error["errorType"] in ("ConnectionRefusedError", "OSError"), error


@pytest.mark.parametrize(
    ("config", "code"),
    [
        ({"ephemeral_storage_mb": 100}, "invalid_ephemeral_storage"),
        ({"ephemeral_storage_mb": 20000}, "invalid_ephemeral_storage"),
        ({"ephemeral_storage_mb": "big"}, "invalid_type"),
        ({"network": "bridge"}, "invalid_network"),
        ({"network": None}, "invalid_type"),
    ],
)
def test_bad_isolation_settings_are_refused_and_nothing_is_written(
    api: httpx.Client, config: dict[str, Any], code: str
) -> None:
    name = unique("bad")
    response = deploy(api, name, {"handler.py": HELLO}, **config)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == code
    assert api.get(f"/v1/functions/{name}").status_code == 404
    # The same through PATCH on a function that exists: it keeps its settings.
    good = unique("good")
    assert deploy(api, good, {"handler.py": HELLO}).status_code in (200, 201)
    r = api.patch(f"/v1/functions/{good}", json=config)
    assert r.status_code == 400 and r.json()["error"]["code"] == code
    current = api.get(f"/v1/functions/{good}").json()
    assert (current["ephemeral_storage_mb"], current["network"]) == (512, "host")


def test_cli_sets_and_refuses_isolation_settings(
    server: ServerProcess, api: httpx.Client, tmp_path: Any
) -> None:
    (tmp_path / "handler.py").write_text(HELLO)
    name = unique("cli")
    ok = run_cli("deploy", str(tmp_path), "--name", name, "--ephemeral-storage", "1024",
                 server=server)  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert api.get(f"/v1/functions/{name}").json()["ephemeral_storage_mb"] == 1024
    bad = run_cli("config", name, "--network", "bridge", server=server)
    assert bad.returncode == 1
    assert "network 'bridge' must be one of host, none" in bad.stderr
    assert "Traceback" not in bad.stderr
    changed = run_cli("config", name, "--ephemeral-storage", "2048", server=server)
    assert changed.returncode == 0, changed.stderr
    assert api.get(f"/v1/functions/{name}").json()["ephemeral_storage_mb"] == 2048


WHERE_AM_I = """
import os, sys, threading, time
{prelude}
def handler(event, context):
    time.sleep(event.get("sleep", 0))
    return {{
        "pid": os.getpid(),
        "sees_db": os.path.exists(event["db"]),
        "tag": "{tag}",
        "own_interpreter": sys.flags.hash_randomization == 0,  # PYTHONHASHSEED=0 was read
    }}
"""


def where(code_tag: str, prelude: str = "") -> dict[str, str]:
    return {"handler.py": WHERE_AM_I.format(prelude=prelude, tag=code_tag)}


def test_every_way_a_worker_starts_is_sandboxed(
    server: ServerProcess, api: httpx.Client, enforced: dict[str, bool], calm: None
) -> None:
    """From a template; from the sandbox's zygote when the import starts a thread (no
    template); spawned in a sandbox of its own when a variable is read at interpreter start."""
    db = str(server.home / "pyfaas.db")
    kinds = {
        "template": (where("t"), {}),
        "thread at import": (where("z", "threading.Thread(target=time.sleep, args=(60,),"
                                        " daemon=True).start()"), {}),
        "spawned": (where("s"), {"environment": {"PYTHONHASHSEED": "0"}}),
    }  # fmt: skip
    for kind, (files, config) in kinds.items():
        name = unique("where")
        DEPLOYED.add(name)
        assert deploy(api, name, files, **config).status_code in (200, 201), kind
        # Two at once: a second worker starts the same way as the first.
        with ThreadPoolExecutor(2) as pool:
            calls = [pool.submit(invoke, api, name, {"db": db, "sleep": 0.5}) for _ in range(2)]
            answers = [call.result() for call in calls]
        for status, body in answers:
            assert status == 200, (kind, body)
            assert body["sees_db"] is not enforced["mount namespace"], (kind, body)
            if enforced["pid namespace"]:
                assert body["pid"] < 1000, (kind, body)
            assert body["own_interpreter"] is (kind == "spawned"), (kind, body)
        if kind == "thread at import":
            assert f"no template for {name}:" in server.output()


def test_an_update_lets_the_call_in_flight_finish_in_the_old_sandbox(
    server: ServerProcess, api: httpx.Client, calm: None
) -> None:
    name = unique("where")
    DEPLOYED.add(name)
    db = str(server.home / "pyfaas.db")
    assert deploy(api, name, where("old")).status_code in (200, 201)
    with ThreadPoolExecutor(1) as pool:
        slow = pool.submit(invoke, api, name, {"db": db, "sleep": 2})
        time.sleep(0.5)
        assert deploy(api, name, where("new")).status_code == 200
        assert invoke(api, name, {"db": db})[1]["tag"] == "new"
        status, body = slow.result()
    assert (status, body["tag"]) == (200, "old"), body


def test_a_sandboxed_forkers_first_message_names_it_even_when_sent_before_we_listen() -> None:
    """A sandbox's zygote may say "ready" before the executor has wrapped its socket: the
    pid must still be its own (the kernel said 0 then, and 0 moved the server itself into
    the sandbox's cgroup, which killed it when the sandbox went)."""

    async def story() -> int | None:
        ours, theirs = control_socketpair(pid_namespace=True)
        with theirs:
            theirs.send(msgpack.packb({"t": "ready", "threads": 1}))
            forker = Forker(ours, os.getpid(), pid_namespace=True)
            assert await asyncio.wait_for(forker.notice, 5) == {"t": "ready", "threads": 1}
        forker.close()
        return forker.own_pid

    assert asyncio.run(story()) == os.getpid()


@pytest.mark.parametrize("which", ["zero", "negative", "this process"])
def test_a_workers_cgroup_never_takes_the_server_in(tmp_path: Path, which: str) -> None:
    pid = {"zero": 0, "negative": -1, "this process": os.getpid()}[which]
    group = WorkerCgroup(1, (tmp_path,))
    with pytest.raises(OSError, match="refusing"):
        group.add(pid)
    assert not (tmp_path / "cgroup.procs").exists()
