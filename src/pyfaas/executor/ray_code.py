"""Code on Ray nodes: a version's code (and dependency layer) travels through Ray's object
store and is unpacked once per node into a node-local cache, so no node needs the server's
``PYFAAS_HOME``.

The server packs a tree (a tar: modes and mtimes kept, so a layer's compiled bytecode stays
valid) and puts it into the object store once per content key (:class:`TreeShipper`); an
actor unpacks it under ``$TMPDIR/pyfaas-ray-code/<key>`` unless a previous actor on the
same node did (:func:`unpacked_tree`), and its worker starts from there.

An actor holds a shared lock on ``.<key>.use`` for as long as its process lives (the kernel
lets go of it when the process ends, however it ends). Whenever an actor unpacks a new tree,
the trees that no process holds and none has used for :data:`CACHE_KEEP_S` are removed
(:func:`sweep_node_cache`): the cache holds what the node runs, not every version it ever ran.
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
import time
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


# An unpacked tree that no process on the node holds is removed once it was last used this
# long ago (at the next unpacking of another tree on the node).
CACHE_KEEP_S = 3600.0
# The use files this process holds a shared lock on, by key (held until the process ends).
_HELD: dict[str, int] = {}


async def unpacked_tree(tree: ShippedTree, keep_s: float = CACHE_KEEP_S) -> Path:
    """``tree`` unpacked on this node: at once if an actor here unpacked it before, else
    fetched from the object store and unpacked (one actor per node does it, under a file
    lock; the others wait and reuse it). This process holds it from now on (a sweep leaves
    it alone); unpacking a new tree sweeps the node's cache (trees unused for ``keep_s``).
    Raises OSError, or Ray's error if the object is lost."""
    root = node_cache_root()
    target = root / tree.key
    await asyncio.to_thread(_hold, root, tree.key)
    if await asyncio.to_thread(target.is_dir):
        return target
    data: bytes = await tree.ref
    await asyncio.to_thread(_unpack_once, data, target)
    await asyncio.to_thread(sweep_node_cache, root, keep_s)
    return target


def _hold(root: Path, key: str) -> None:
    """Take a shared lock on ``key``'s use file for the rest of this process, and mark it
    used now. Blocks while a sweep is removing the tree (it is then unpacked again)."""
    if key in _HELD:
        return
    root.mkdir(parents=True, exist_ok=True)
    fd = os.open(root / f".{key}.use", os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_SH)
    os.utime(fd)
    _HELD[key] = fd


def sweep_node_cache(root: Path, keep_s: float, now: float | None = None) -> list[str]:
    """Remove the unpacked trees under ``root`` that no process holds and that were last
    used more than ``keep_s`` ago; return their keys. Use files stay (a few bytes each):
    removing one could let a holder of the old file and a sweeper of a new one both go on.
    """
    now = time.time() if now is None else now
    removed = []
    for entry in os.scandir(root):
        key = entry.name
        if key.startswith(".") or key in _HELD or not entry.is_dir(follow_symlinks=False):
            continue  # use and lock files, partial extractions, what this process runs
        fd = os.open(root / f".{key}.use", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if os.fstat(fd).st_mtime > now - keep_s:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # an actor on this node runs it
            _remove_read_only_tree(root / key)
            removed.append(key)
        finally:
            os.close(fd)  # and with it the lock
    return removed


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
