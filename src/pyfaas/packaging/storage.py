"""Content-addressed directories: built aside, published atomically, retired atomically.

Everything here blocks (file system calls); async callers run it in a thread.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
import threading
import time
from pathlib import Path

# Publishing (which freshens a reused directory) and retiring (which checks freshness)
# take turns, so a collection never removes a directory a deploy just decided to reuse.
_TURNS = threading.Lock()


def publish(staging: Path, final: Path) -> bool:
    """Move the finished ``staging`` directory to ``final``; True if it was not there yet.

    If ``final`` exists (same content stored earlier or concurrently), ``staging`` is removed
    and ``final`` is freshened so that garbage collection spares it.
    """
    with _TURNS:
        for _ in range(3):
            try:
                os.rename(staging, final)
                return True
            except OSError as exc:
                if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                    raise
            try:
                os.utime(final)
            except FileNotFoundError:
                continue  # retired by another process between the two calls: publish again
            remove_tree(staging)
            return False
    raise OSError(f"could not publish {final}: it keeps appearing and disappearing")


def retire(path: Path, *, unused_for_s: float) -> bool:
    """Remove ``path`` unless it was created or reused in the last ``unused_for_s`` seconds.

    It is renamed away first (atomic), so a reader never sees a half-removed directory.
    Returns True if it was removed.
    """
    with _TURNS:
        try:
            if time.time() - path.lstat().st_mtime < unused_for_s:
                return False
            trash = path.with_name(f".trash-{path.name}-{secrets.token_hex(4)}")
            os.rename(path, trash)
        except FileNotFoundError:
            return False
    remove_tree(trash)
    return True


def make_read_only(root: Path) -> None:
    """Files 0o444 (0o555 if executable), directories 0o555; symlinks are left alone."""
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            path = os.path.join(dirpath, name)
            if not os.path.islink(path):
                executable = os.stat(path).st_mode & 0o111
                os.chmod(path, 0o555 if executable else 0o444)
        os.chmod(dirpath, 0o555)


def remove_tree(path: Path) -> None:
    """Remove a directory tree, read-only parts included; a missing one is fine."""
    if not path.exists() and not path.is_symlink():
        return
    # Deleting an entry needs write permission on its directory, not on the entry itself.
    for dirpath, _dirs, _files in os.walk(path):
        with contextlib.suppress(OSError):
            os.chmod(dirpath, 0o755)
    shutil.rmtree(path, ignore_errors=True)
