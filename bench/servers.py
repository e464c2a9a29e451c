"""Processes the benchmarks start and watch: a pyfaas server, free ports, RSS, children."""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from types import TracebackType

import httpx

BIN = Path(sys.executable).parent
HOST = "127.0.0.1"

NOOP_HANDLER = "def handler(event, context):\n    return {}\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


def wait_http(url: str, timeout: float = 60, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Poll ``url`` until anything answers; raise RuntimeError after ``timeout`` s or when
    ``proc`` exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited {proc.returncode} before {url} came up")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not come up within {timeout:.0f} s")


def rss_mb(pid: int) -> float:
    """VmRSS of one process (not its children), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def children(pid: int) -> list[int]:
    """Pids whose parent is ``pid`` (pyfaas workers are the server's direct children)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def code_zip(handler_source: str) -> bytes:
    """A code bundle with ``handler.py`` (the default handler ``handler.handler``)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("handler.py", handler_source)
    return buf.getvalue()


Upload = dict[str, tuple[str, bytes, str]]


def deploy_form(name: str, code: bytes, **config: object) -> tuple[dict[str, str], Upload]:
    """The multipart ``data`` and ``files`` of a deploy (PUT /v1/functions/{name})."""
    return {"config": json.dumps({"name": name, **config})}, {
        "code": ("code.zip", code, "application/zip")
    }


class PyfaasServer:
    """A ``pyfaas serve`` subprocess with its own PYFAAS_HOME on a free port.

    A context manager: entering starts it and waits for /v1/health; leaving stops it with
    SIGINT (as Ctrl-C would) and waits. Its output goes to ``server.log`` in ``home``.
    """

    def __init__(self, home: Path, env: dict[str, str] | None = None) -> None:
        self.home = home
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        self._env = {**os.environ, "PYFAAS_HOME": str(home), **(env or {})}
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self._proc is not None, "server not started"
        return self._proc.pid

    def __enter__(self) -> PyfaasServer:
        self.home.mkdir(parents=True, exist_ok=True)
        with (self.home / "server.log").open("ab") as log:
            self._proc = subprocess.Popen(
                [str(BIN / "pyfaas"), "serve", "--host", HOST, "--port", str(self.port)],
                env=self._env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.home,
            )
        wait_http(f"{self.url}/v1/health", proc=self._proc)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._proc is None or self._proc.poll() is not None:
            return
        self._proc.send_signal(signal.SIGINT)
        try:
            self._proc.wait(30)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()

    def deploy(self, name: str, handler_source: str, **config: object) -> None:
        """Deploy (create or replace) a function; raises httpx.HTTPStatusError on a 4xx/5xx."""
        data, files = deploy_form(name, code_zip(handler_source), **config)
        url = f"{self.url}/v1/functions/{name}"
        httpx.put(url, data=data, files=files, timeout=120).raise_for_status()

    def workers(self) -> list[int]:
        """The server's worker processes now."""
        return children(self.pid)

    def wait_no_workers(self, timeout: float) -> float:
        """Block until the server has no worker process (scaled to zero); return the seconds
        waited. Raises TimeoutError."""
        start = time.monotonic()
        while self.workers():
            if time.monotonic() - start > timeout:
                raise TimeoutError(f"{len(self.workers())} workers still alive after {timeout} s")
            time.sleep(0.1)
        return time.monotonic() - start
