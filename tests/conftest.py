"""Fixtures that start real things: a pyfaas server process on a free port, bundles on disk."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

BIN = Path(sys.executable).parent
PYFAAS = str(BIN / "pyfaas")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class ServerProcess:
    """A `pyfaas serve` subprocess with its own PYFAAS_HOME."""

    def __init__(
        self,
        home: Path,
        *args: str,
        env: dict[str, str] | None = None,
        host: str = "127.0.0.1",
        port: int | None = None,
    ) -> None:
        self.home = home
        self.port = port or free_port()
        self.url = f"http://{host}:{self.port}"
        self.token = (env or {}).get("PYFAAS_TOKEN")
        self.log_path = home / "server.log"
        home.mkdir(parents=True, exist_ok=True)
        # Tests hand files of the host to their handlers (sinks, flags): no sandbox unless a
        # test (test_isolation.py) or the caller's environment asks for one.
        full_env = {"PYFAAS_SANDBOX": "off", **os.environ, "PYFAAS_HOME": str(home), **(env or {})}
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [PYFAAS, "serve", "--host", host, "--port", str(self.port), *args],
            env=full_env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=home,
        )

    def wait_ready(self, timeout: float = 60.0) -> ServerProcess:
        deadline = time.monotonic() + timeout
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited {self.proc.returncode}:\n{self.output()}")
            try:
                if (
                    httpx.get(f"{self.url}/v1/health", headers=headers, timeout=1).status_code
                    == 200
                ):
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"server not ready after {timeout}s:\n{self.output()}")

    def output(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def client(self, **kwargs: Any) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60, **kwargs)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server for the session: SQLite, local workers, short idle timeout."""
    srv = ServerProcess(
        tmp_path_factory.mktemp("server"), env={"PYFAAS_IDLE_TIMEOUT_S": "30"}
    ).wait_ready()
    yield srv
    srv.stop()


@pytest.fixture()
def api(server: ServerProcess) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


def unique(prefix: str) -> str:
    """A function name no other test uses (tests share one server)."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def zip_bytes(files: dict[str, str | bytes]) -> bytes:
    """A zip holding ``files`` (relative path -> content)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, content in files.items():
            zf.writestr(name, content)
    return buf.getvalue()


def deploy(
    client: httpx.Client,
    name: str,
    files: dict[str, str | bytes] | bytes,
    *,
    method: str = "PUT",
    **config: Any,
) -> httpx.Response:
    """Deploy ``files`` (or ready zip bytes) as function ``name`` over the HTTP API."""
    code = files if isinstance(files, bytes) else zip_bytes(files)
    data = {"config": json.dumps({"name": name, **config})}
    upload = {"code": ("code.zip", code, "application/zip")}
    if method == "POST":
        return client.post("/v1/functions", data=data, files=upload)
    return client.put(f"/v1/functions/{name}", data=data, files=upload)


def run_cli(
    *args: str,
    server: ServerProcess | None = None,
    input: bytes | None = None,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """Run the installed `pyfaas` command."""
    full_env = {**os.environ, **(env or {})}
    if server is not None:
        full_env["PYFAAS_URL"] = server.url
        if server.token:
            full_env["PYFAAS_TOKEN"] = server.token
    return subprocess.run(
        [PYFAAS, *args],
        input=input.decode() if input else None,
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd,
        timeout=timeout,
        check=False,
    )


POSTGRES_ADMIN_URL = os.environ.get(
    "PYFAAS_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test"
)
POSTGRES_START = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"


@contextlib.contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh PostgreSQL database for one test module; yields its SQLAlchemy URL.

    Fails (never skips) when PostgreSQL is not reachable: CI must notice.
    """
    import psycopg

    name = f"pyfaas_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.fail(
            f"PostgreSQL is not reachable at {POSTGRES_ADMIN_URL} ({exc}); start it "
            f"with: {POSTGRES_START}"
        )
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0].replace(
                "postgresql://", "postgresql+psycopg://"
            )
            yield f"{base}/{name}"
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def post_many(
    url: str, path: str, bodies: list[bytes], headers: dict[str, str], concurrency: int = 32
) -> list[tuple[int, bytes]]:
    """POST each body to ``url + path`` over ``concurrency`` keep-alive connections; return
    (status, body) per request, in order. A bare HTTP/1.1 client: httpx's async client
    manages ~200 requests/s here, too slow to load a server."""
    import asyncio

    host, port = url.removeprefix("http://").split(":")
    extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())

    async def main() -> list[tuple[int, bytes]]:
        results: list[tuple[int, bytes]] = [(0, b"")] * len(bodies)
        todo = iter(enumerate(bodies))

        async def connection() -> None:
            reader, writer = await asyncio.open_connection(host, int(port))
            for i, body in todo:
                writer.write(
                    f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {len(body)}\r\n"
                    f"Content-Type: application/json\r\n{extra}\r\n".encode()
                    + body
                )
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head.split(b" ", 2)[1])
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                results[i] = (status, await reader.readexactly(length))
            writer.close()

        await asyncio.gather(*(connection() for _ in range(concurrency)))
        return results

    return asyncio.run(main())


def wait_for(check: Callable[[], bool], timeout: float = 20.0, what: str = "condition") -> None:
    """Poll ``check`` every 50 ms until it holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not reached in {timeout} s")
        time.sleep(0.05)


@contextlib.contextmanager
def serving(home: Path, env: dict[str, str]) -> Iterator[ServerProcess]:
    """A ready server of its own (for a test module's fixture), stopped at the end."""
    server = ServerProcess(home, env=env).wait_ready()
    try:
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def tidy_client(server: ServerProcess) -> Iterator[httpx.Client]:
    """A client of ``server``; every function deployed meanwhile is deleted at the end
    (reservations with them), so that tests sharing a server do not limit each other."""
    with server.client() as client:
        yield client
        for function in client.get("/v1/functions").json()["functions"]:
            client.delete(f"/v1/functions/{function['name']}")


# The files that take longest (minutes of waiting for slots, leases, kills and Ray), in about
# that order. pytest-xdist hands out whole files in collection order (--no-loadscope-reorder):
# starting with these keeps one worker from running a long file alone at the end while the
# other has finished.
LONG_FILES_FIRST = (
    "test_async_durability.py",
    "test_ray_executor.py",
    "test_schedules.py",
    "test_event_sources.py",
    "test_sdk.py",
    "test_rollouts.py",
    "test_versions.py",
    "test_logs.py",
    "test_openapi_fuzz.py",
    "test_function_urls.py",
    "test_scaling.py",
    "test_cli.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the long files first (see LONG_FILES_FIRST); the rest keep their order."""
    rank = {name: i for i, name in enumerate(LONG_FILES_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))
