"""Where bundles and layers live under PYFAAS_HOME, and how unused code goes away."""

from __future__ import annotations

import asyncio
import re
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from pyfaas.model import Limits
from pyfaas.packaging.bundle import Bundle, extract_bundle
from pyfaas.packaging.layers import BUILD_TIMEOUT_S, Layer, LayerBuilder
from pyfaas.packaging.storage import remove_tree, retire

_SHA256 = re.compile(r"[0-9a-f]{64}")
# A deploy stores its code, then may build a layer (up to its timeout) and start a worker
# before the store references the code. Collection spares code younger than this.
UNUSED_FOR_S = 3600.0


class CodeStore:
    """Content-addressed code (``home/code/<sha256>/``) and layers (``home/layers/<key>/``).

    Stored directories are read-only and never change; the same content is stored once.
    """

    def __init__(
        self, home: Path, limits: Limits, *, layer_build_timeout_s: float = BUILD_TIMEOUT_S
    ) -> None:
        self._code_root = home / "code"
        self._limits = limits
        self._layers = LayerBuilder(home / "layers", layer_build_timeout_s)

    async def ingest_zip(self, zip_path: Path) -> Bundle:
        """Validate a zip and store its code (in a thread; does not block the loop).

        Raises InvalidBundle (bundle_not_zip, bundle_empty, bundle_unsafe_path,
        bundle_symlink_escapes, requirements_unsupported) or PayloadTooLarge
        (bundle_too_large); nothing is stored then.
        """
        return await asyncio.to_thread(extract_bundle, zip_path, self._code_root, self._limits)

    async def unpack(self, zip_bytes: bytes) -> Bundle:
        """Store code from the bytes of a zip accepted before (by another server sharing
        the database); like :meth:`ingest_zip`."""
        return await asyncio.to_thread(self._unpack, zip_bytes)

    def _unpack(self, zip_bytes: bytes) -> Bundle:
        with tempfile.NamedTemporaryFile(suffix=".zip") as tmp:
            tmp.write(zip_bytes)
            tmp.flush()
            return extract_bundle(Path(tmp.name), self._code_root, self._limits)

    def code_dir(self, sha256: str) -> Path:
        """Where the code with this tree hash is (or would be). Does not block.

        Raises ValueError unless ``sha256`` is a hex digest (anything else names another path).
        """
        return self._code_root / _digest(sha256)

    def layer_dir(self, sha256: str) -> Path:
        """Where the layer with this key is (or would be); like :meth:`code_dir`."""
        return self._layers.path(_digest(sha256))

    async def discard(self, sha256: str) -> None:
        """Remove stored code now; the caller knows that nothing references it."""
        await asyncio.to_thread(remove_tree, self.code_dir(sha256))

    async def collect(self, sha256: str, *, unused_for_s: float) -> bool:
        """Remove stored code unless it was stored or reused in the last ``unused_for_s``
        seconds (atomically with respect to ingests reusing it); True if removed."""
        return await asyncio.to_thread(retire, self.code_dir(sha256), unused_for_s=unused_for_s)

    async def ensure_layer(
        self, requirements: str, on_output: Callable[[str], None] | None = None
    ) -> Layer:
        """The layer holding ``requirements`` installed; built now (with uv) if missing.

        Returns at once when the layer exists. ``on_output`` receives uv's output lines.
        Raises InvalidBundle (requirements_unsupported, requirements_install_failed).
        """
        return await self._layers.ensure(requirements, on_output)

    async def collect_garbage(
        self,
        referenced: Callable[[str], Awaitable[bool]],
        *,
        unused_for_s: float = UNUSED_FOR_S,
    ) -> int:
        """Remove stored code that ``referenced(sha256)`` says no function uses.

        Code stored or reused in the last ``unused_for_s`` seconds is spared (a deploy may
        be about to reference it), as are temporary directories of running ingests.
        Returns how many code directories were removed. File work runs in threads.
        """
        candidates, leftovers = await asyncio.to_thread(self._old_entries, unused_for_s)
        for path in leftovers:  # from ingests that crashed: nobody will finish them
            await asyncio.to_thread(retire, path, unused_for_s=unused_for_s)
        removed = 0
        for path in candidates:
            if not await referenced(path.name) and await asyncio.to_thread(
                retire, path, unused_for_s=unused_for_s
            ):
                removed += 1
        return removed

    def _old_entries(self, unused_for_s: float) -> tuple[list[Path], list[Path]]:
        """(code directories, leftover temporary directories) not touched for a while."""
        if not self._code_root.is_dir():
            return [], []
        cutoff = time.time() - unused_for_s
        code, leftovers = [], []
        for path in sorted(self._code_root.iterdir()):
            try:
                if path.lstat().st_mtime >= cutoff:
                    continue
            except FileNotFoundError:
                continue
            if _SHA256.fullmatch(path.name):
                code.append(path)
            elif path.name.startswith((".incoming-", ".trash-")):
                leftovers.append(path)
        return code, leftovers


def _digest(sha256: str) -> str:
    if not _SHA256.fullmatch(sha256):
        raise ValueError(f"{sha256!r} is not a sha256 hex digest")
    return sha256
