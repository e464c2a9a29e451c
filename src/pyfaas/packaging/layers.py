"""Dependency layers: a bundle's requirements.txt, installed once per distinct set."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import secrets
import shutil
import sys
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from uv import find_uv_bin

from pyfaas.model import InvalidBundle

BUILD_TIMEOUT_S = 300.0


@dataclass(frozen=True, slots=True)
class Layer:
    """Installed requirements under ``path``, put on the workers' sys.path."""

    sha256: str
    path: Path


def normalize_requirements(text: str) -> str:
    """Requirement lines without comments or blanks, sorted and unique.

    Raises InvalidBundle (requirements_unsupported) for options and local paths: a bundle must
    not reach the server's files or switch package indexes.
    """
    lines = set()
    for raw in text.splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith(("-", ".", "/", "~")) or "file:" in line:
            raise InvalidBundle(
                f"requirements.txt line {raw.strip()!r} is not supported: list packages "
                "(name, version specifier, or a https URL), not options or local paths",
                code="requirements_unsupported",
            )
        lines.add(line)
    return "\n".join(sorted(lines))


def layer_key(requirements: str) -> str:
    """Layers differ by requirements and by Python version (wheels are built per version)."""
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    return hashlib.sha256(f"python{python}\n{requirements}".encode()).hexdigest()


class LayerBuilder:
    """Builds layers with uv under ``root``; one build per key at a time, atomically."""

    def __init__(self, root: Path, timeout_s: float = BUILD_TIMEOUT_S) -> None:
        self.root = root
        self._timeout_s = timeout_s
        self._locks: dict[str, asyncio.Lock] = {}

    def path(self, key: str) -> Path:
        return self.root / key

    async def ensure(
        self, requirements: str, on_output: Callable[[str], None] | None = None
    ) -> Layer:
        """The layer for ``requirements``, built now if missing.

        Raises InvalidBundle (requirements_install_failed) with the end of uv's output.
        """
        key = layer_key(requirements)
        final = self.path(key)
        async with self._locks.setdefault(key, asyncio.Lock()):
            if not await asyncio.to_thread(final.is_dir):
                await self._build(requirements, final, on_output)
        return Layer(sha256=key, path=final)

    async def _build(
        self, requirements: str, final: Path, on_output: Callable[[str], None] | None
    ) -> None:
        staging = self.root / f".build-{final.name[:16]}-{secrets.token_hex(4)}"
        req_file = staging.with_suffix(".txt")
        await asyncio.to_thread(self._prepare, staging, req_file, requirements)
        tail: deque[str] = deque(maxlen=20)
        try:
            proc = await asyncio.create_subprocess_exec(
                find_uv_bin(),
                "pip",
                "install",
                "--no-progress",
                "--target",
                str(staging),
                "--python",
                sys.executable,
                "-r",
                str(req_file),
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
            try:
                async with asyncio.timeout(self._timeout_s):
                    assert proc.stdout is not None
                    async for raw in proc.stdout:
                        line = raw.decode(errors="replace").rstrip()
                        tail.append(line)
                        if on_output is not None:
                            on_output(line)
                    code = await proc.wait()
            except TimeoutError:
                proc.kill()
                await proc.wait()
                tail.append(f"(installation took longer than {self._timeout_s:.0f} s)")
                code = -1
            if code != 0:
                raise InvalidBundle(
                    "installing requirements.txt failed:\n" + "\n".join(tail),
                    code="requirements_install_failed",
                )
            await asyncio.to_thread(staging.rename, final)
        finally:
            await asyncio.to_thread(_cleanup, staging, req_file)

    def _prepare(self, staging: Path, req_file: Path, requirements: str) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        staging.mkdir()
        req_file.write_text(requirements + "\n")


def _cleanup(staging: Path, req_file: Path) -> None:
    req_file.unlink(missing_ok=True)
    with contextlib.suppress(FileNotFoundError):
        shutil.rmtree(staging)
