"""Where bundles and layers live under PYFAAS_HOME."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from pyfaas.model import Limits
from pyfaas.packaging.bundle import Bundle, extract_bundle, remove_tree
from pyfaas.packaging.layers import Layer, LayerBuilder


class CodeStore:
    """Content-addressed code (``home/code/<sha256>``) and layers (``home/layers/<sha256>``)."""

    def __init__(self, home: Path, limits: Limits) -> None:
        self._code_root = home / "code"
        self._limits = limits
        self._layers = LayerBuilder(home / "layers")

    async def ingest_zip(self, zip_path: Path) -> Bundle:
        """Validate and store a zip (in a thread). Raises InvalidBundle, PayloadTooLarge."""
        return await asyncio.to_thread(extract_bundle, zip_path, self._code_root, self._limits)

    async def discard(self, sha256: str) -> None:
        """Remove stored code (the caller knows nothing references it)."""
        await asyncio.to_thread(remove_tree, self.code_dir(sha256))

    def code_dir(self, sha256: str) -> Path:
        return self._code_root / sha256

    def layer_dir(self, sha256: str) -> Path:
        return self._layers.path(sha256)

    async def ensure_layer(
        self, requirements: str, on_output: Callable[[str], None] | None = None
    ) -> Layer:
        """Install ``requirements`` into a layer unless one exists. Raises InvalidBundle."""
        return await self._layers.ensure(requirements, on_output)
