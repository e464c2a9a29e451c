"""Dependency layers: a bundle's requirements, installed once per distinct set, with uv."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import secrets
import signal
import sys
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from uv import find_uv_bin

from pyfaas.model import InvalidBundle
from pyfaas.packaging.requirements import normalize_requirements
from pyfaas.packaging.storage import make_read_only, publish, remove_tree

BUILD_TIMEOUT_S = 300.0
_OUTPUT_TAIL_LINES = 20
# Copies, not links into uv's cache, because a layer is made read-only; bytecode compiled
# now, because workers cannot write __pycache__ into it later.
_UV_OPTIONS = ("--link-mode", "copy", "--compile-bytecode", "--no-progress", "--color", "never")
# What uv needs from the server's environment: where to find git, its cache and
# configuration, proxies and certificates. Nothing else (tokens, secrets) reaches the
# build scripts of the packages being installed.
_ENV_KEPT = frozenset(
    {"PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "NETRC", "SSL_CERT_FILE", "SSL_CERT_DIR"}
)
_ENV_KEPT_PREFIXES = ("UV_", "XDG_", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY")


@dataclass(frozen=True, slots=True)
class Layer:
    """Installed requirements under ``path`` (read-only), put on the workers' sys.path."""

    sha256: str
    path: Path


def layer_key(requirements: str) -> str:
    """The layer's name: normalized requirements plus the Python version wheels target."""
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    return hashlib.sha256(f"python{python}\n{requirements}".encode()).hexdigest()


class LayerBuilder:
    """Builds layers under ``root`` with uv: once per key, atomically, keys in parallel."""

    def __init__(self, root: Path, timeout_s: float = BUILD_TIMEOUT_S) -> None:
        self.root = root
        self._timeout_s = timeout_s
        self._locks: dict[str, asyncio.Lock] = {}

    def path(self, key: str) -> Path:
        return self.root / key

    async def ensure(
        self, requirements: str, on_output: Callable[[str], None] | None = None
    ) -> Layer:
        """The layer for ``requirements`` (normalized here), built now if missing.

        Concurrent calls for the same requirements share one build. Raises InvalidBundle:
        ``requirements_unsupported`` (see normalize_requirements) or
        ``requirements_install_failed`` with the end of uv's output; no partial layer stays.
        """
        normalized = normalize_requirements(requirements)
        key = layer_key(normalized)
        final = self.path(key)
        if await asyncio.to_thread(final.is_dir):
            return Layer(sha256=key, path=final)
        async with self._locks.setdefault(key, asyncio.Lock()):
            if not await asyncio.to_thread(final.is_dir):  # built while we waited?
                await self._build(normalized, final, on_output)
        return Layer(sha256=key, path=final)

    async def _build(
        self, requirements: str, final: Path, on_output: Callable[[str], None] | None
    ) -> None:
        staging = self.root / f".build-{final.name[:16]}-{secrets.token_hex(4)}"
        req_file = staging.with_name(staging.name + ".txt")
        try:
            await asyncio.to_thread(self._prepare, staging, req_file, requirements)
            tail: deque[str] = deque(maxlen=_OUTPUT_TAIL_LINES)

            def output(line: str) -> None:
                tail.append(line)
                if on_output is not None:
                    on_output(line)

            if not await self._run_uv(staging, req_file, output):
                raise InvalidBundle(
                    "installing requirements.txt failed; fix the requirements named below "
                    "(uv's last lines of output):\n" + "\n".join(tail),
                    code="requirements_install_failed",
                )
            await asyncio.to_thread(make_read_only, staging)
            await asyncio.to_thread(publish, staging, final)
        finally:
            await asyncio.to_thread(_clean_up, staging, req_file)

    def _prepare(self, staging: Path, req_file: Path, requirements: str) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        staging.mkdir()
        req_file.write_text(requirements + "\n")

    async def _run_uv(self, target: Path, req_file: Path, output: Callable[[str], None]) -> bool:
        """Install into ``target``; True on success. Kills uv on timeout or cancellation."""
        proc = await asyncio.create_subprocess_exec(
            find_uv_bin(),
            *("pip", "install", "--target", str(target), "--requirements", str(req_file)),
            *("--python", sys.executable),  # wheels for the interpreter the workers run
            *_UV_OPTIONS,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            cwd=self.root,  # not the server's working directory: no project config from there
            env=_uv_environment(),
            start_new_session=True,  # its own process group: a kill reaches build backends too
            limit=1 << 20,
        )
        assert proc.stdout is not None
        try:
            async with asyncio.timeout(self._timeout_s):
                async for raw in proc.stdout:
                    output(raw.decode(errors="replace").rstrip())
                return await proc.wait() == 0
        except TimeoutError:
            output(f"(stopped: installing took longer than {self._timeout_s:g} s)")
            return False
        finally:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                await proc.wait()


def _uv_environment() -> dict[str, str]:
    return {
        key: value
        for key, value in os.environ.items()
        if key in _ENV_KEPT or key.upper().startswith(_ENV_KEPT_PREFIXES)
    }


def _clean_up(staging: Path, req_file: Path) -> None:
    req_file.unlink(missing_ok=True)
    remove_tree(staging)
