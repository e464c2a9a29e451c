"""Processes the benchmarks start and watch: a pyfaas server, free ports, RSS, children."""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
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


def cpu_seconds(pid: int) -> float:
    """User+system CPU time of one process (all its threads, not its children), seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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


def leaves(pid: int) -> list[int]:
    """Descendants of ``pid`` that have no children of their own."""
    found, stack = [], children(pid)
    while stack:
        below = children(stack[-1])
        if below:
            stack.pop()
            stack += below
        else:
            found.append(stack.pop())
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

    def __init__(
        self,
        home: Path,
        env: dict[str, str] | None = None,
        ready_timeout: float = 60,
        bin_dir: Path | None = None,
    ) -> None:
        self.home = home
        # Another install's bin (bench/server_ab.py: a base to compare with); else this one.
        self._bin = bin_dir or BIN
        self._ready_timeout = ready_timeout  # a server starting its own Ray takes longer
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
                [str(self._bin / "pyfaas"), "serve", "--host", HOST, "--port", str(self.port)],
                env=self._env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.home,
            )
        wait_http(f"{self.url}/v1/health", self._ready_timeout, proc=self._proc)
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

    def stats(self, name: str) -> dict[str, int]:
        """A function's counters as the server reports them (invocations, cold_starts, ...)."""
        response = httpx.get(f"{self.url}/v1/functions/{name}", timeout=30)
        stats: dict[str, int] = response.raise_for_status().json()["stats"]
        return stats

    def workers(self) -> list[int]:
        """The server's worker processes now: the leaves of its process tree (workers are
        forked from the zygote or a function's template, which are not counted)."""
        return leaves(self.pid)

    def wait_no_workers(self, timeout: float) -> float:
        """Block until the server has no worker process (scaled to zero); return the seconds
        waited. Raises TimeoutError."""
        start = time.monotonic()
        while self.workers():
            if time.monotonic() - start > timeout:
                raise TimeoutError(f"{len(self.workers())} workers still alive after {timeout} s")
            time.sleep(0.1)
        return time.monotonic() - start


def cpu_times() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def machine_busy(seconds: float = 1.0) -> float:
    """Fraction (0-1) of the machine's CPU in use over the next ``seconds``."""
    busy0, total0 = cpu_times()
    time.sleep(seconds)
    busy1, total1 = cpu_times()
    return (busy1 - busy0) / max(1, total1 - total0)


def wait_quiet(threshold: float = 0.15, max_wait_s: float = 300) -> float:
    """Wait until the machine's CPU is less than ``threshold`` busy over one second (others'
    test runs skew a benchmark), at most ``max_wait_s``; return the last busy fraction."""
    deadline = time.monotonic() + max_wait_s
    while (busy := machine_busy()) >= threshold and time.monotonic() < deadline:
        pass
    return busy


class ForeignLoad:
    """Measures the CPU that processes outside this benchmark's process tree use meanwhile.

    The machine is shared (other people's test runs); a figure taken while they ran is not
    comparable. A thread scans /proc every ``period_s``: a process is ours when this process
    is among its ancestors. ``fraction`` is the others' CPU over the whole machine's
    (cores x wall time), 0-1; processes born and gone between two scans are not seen.
    """

    def __init__(self, period_s: float = 0.5) -> None:
        self._period_s = period_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._ticks = 0
        self._start = 0.0
        self._elapsed = 0.0

    def __enter__(self) -> ForeignLoad:
        self._start = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._elapsed = time.monotonic() - self._start

    @property
    def fraction(self) -> float:
        capacity = self._elapsed * (os.cpu_count() or 1) * os.sysconf("SC_CLK_TCK")
        return self._ticks / capacity if capacity else 0.0

    def _run(self) -> None:
        before = _foreign_cpu(os.getpid())
        while not self._stop.wait(self._period_s):
            now = _foreign_cpu(os.getpid())
            self._ticks += sum(t - before[p] for p, t in now.items() if p in before)
            before = now


def _foreign_cpu(root: int) -> dict[int, int]:
    """utime+stime ticks of every process that does not descend from ``root``."""
    parent: dict[int, int] = {}
    ticks: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(entry.name)
        parent[pid] = int(fields[1])
        ticks[pid] = int(fields[11]) + int(fields[12])
    foreign = {}
    for pid, t in ticks.items():
        p = pid
        while p not in (0, 1, root):
            p = parent.get(p, 0)
        if p != root:
            foreign[pid] = t
    return foreign
