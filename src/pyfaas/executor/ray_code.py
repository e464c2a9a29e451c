"""Code on Ray nodes: a version's code (and dependency layer) travels through Ray's object
store and is unpacked once per node into a node-local cache, so no node needs the server's
``PYFAAS_HOME``.

The server packs a tree (a tar: modes and mtimes kept, so a layer's compiled bytecode stays
valid) and puts it into the object store once per content key (:class:`TreeShipper`); an
actor unpacks it under ``$TMPDIR/pyfaas-ray-code/<key>`` unless a previous actor on the
same node did (:func:`unpacked_tree`), and its worker starts from there.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import io
import os
import secrets
import shutil
import stat
import tarfile
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True, slots=True)
class ShippedTree:
    """A directory in Ray's object store: ``key`` names its content (the code's tree hash,
    a layer's key), ``ref`` is the ObjectRef of its tar. Passed to an actor inside this
    value, so Ray hands the actor the reference and the bytes move only if it asks."""

    key: str
    ref: Any


def pack_tree(directory: Path) -> bytes:
    """The tar of everything under ``directory`` (blocking; raises OSError if it is gone)."""
    if not directory.is_dir():
        raise FileNotFoundError(f"the code directory {directory} does not exist")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        tar.add(directory, arcname=".")
    return buffer.getvalue()


class TreeShipper:
    """Puts trees into Ray's object store, once per key while a pool of workers uses it.

    :meth:`ship` for each cold start of a pool (concurrent calls for a key share one put);
    :meth:`release` when the pool is gone, which lets go of keys no other pool uses.
    """

    def __init__(self) -> None:
        self._puts: dict[str, asyncio.Future[Any]] = {}
        self._users: dict[tuple[object, ...], set[str]] = {}

    async def ship(self, pool_key: tuple[object, ...], key: str, directory: str) -> ShippedTree:
        """The tree at ``directory`` in the object store. Raises OSError (not readable, or
        the object store refused it); a failed put is tried again by the next call."""
        self._users.setdefault(pool_key, set()).add(key)
        put = self._puts.get(key)
        if put is None:
            put = asyncio.ensure_future(asyncio.to_thread(_put_tree, Path(directory)))
            self._puts[key] = put
        try:
            ref = await asyncio.shield(put)
        except Exception:
            if self._puts.get(key) is put:
                del self._puts[key]
            raise
        return ShippedTree(key, ref)

    def release(self, pool_key: tuple[object, ...]) -> None:
        """``pool_key``'s pool is gone: drop the references only it held (Ray frees them)."""
        keys = self._users.pop(pool_key, set())
        in_use = set().union(*self._users.values()) if self._users else set()
        for key in keys - in_use:
            # A put under way finishes in its thread; dropping the future drops its ref.
            self._puts.pop(key, None)

    def clear(self) -> None:
        self._puts.clear()
        self._users.clear()


def _put_tree(directory: Path) -> Any:
    import ray

    data = pack_tree(directory)
    try:
        return ray.put(data)
    except ray.exceptions.RayError as exc:
        size = len(data)
        raise OSError(f"Ray's object store did not take the code ({size} bytes): {exc}") from exc


def node_cache_root() -> Path:
    """Where this node keeps unpacked code (local to the node, shared by its actors)."""
    return Path(tempfile.gettempdir()) / "pyfaas-ray-code"


async def unpacked_tree(tree: ShippedTree) -> Path:
    """``tree`` unpacked on this node: at once if an actor here unpacked it before, else
    fetched from the object store and unpacked (one actor per node does it, under a file
    lock; the others wait and reuse it). Raises OSError, or Ray's error if the object is
    lost."""
    target = node_cache_root() / tree.key
    if await asyncio.to_thread(target.is_dir):
        return target
    data: bytes = await tree.ref
    await asyncio.to_thread(_unpack_once, data, target)
    return target


def _unpack_once(data: bytes, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if target.is_dir():
            return
        partial = target.parent / f".{target.name}.{secrets.token_hex(4)}"
        try:
            with tarfile.open(fileobj=io.BytesIO(data), mode="r") as tar:
                tar.extractall(partial, filter="data")
            os.rename(partial, target)
        except BaseException:
            _remove_read_only_tree(partial)
            raise
        _make_read_only(target)  # as on the server: workers share it, none may change it


def _make_read_only(root: Path) -> None:
    """Clear the write bits under ``root``, deepest first (the "data" filter adds u+w)."""
    for parent, dirs, files in os.walk(root, topdown=False):
        for name in [*files, *dirs]:
            path = os.path.join(parent, name)
            if not os.path.islink(path):
                os.chmod(path, os.stat(path).st_mode & ~0o222)
    os.chmod(root, os.stat(root).st_mode & ~0o222)


def _remove_read_only_tree(root: Path) -> None:
    """Remove ``root`` even if (as a layer) its directories are read-only."""

    def writable(paths: Iterable[str]) -> None:
        for path in paths:
            with contextlib.suppress(OSError):
                os.chmod(path, stat.S_IRWXU)

    for parent, dirs, _files in os.walk(root):
        writable([parent, *(os.path.join(parent, d) for d in dirs)])
    shutil.rmtree(root, ignore_errors=True)
