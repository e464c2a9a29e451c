"""The identity of a code tree: one sha256 over its paths, modes and file contents.

The server names stored code by it (``code_sha256``); a client computes the same from a
directory to know, without uploading, whether the server already runs that code.
Standard library only: the CLI uses it on the client side too.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

from pyfaas.packaging.archive import bundle_files


def tree_entry(
    rel: str, *, link_target: str | None = None, file_sha256: str = "", executable: bool = False
) -> bytes:
    """The bytes one entry adds to the tree hash: a symlink by its target, a file by the
    sha256 of its content and whether it is executable. Entries are hashed in sorted order."""
    if link_target is not None:
        return f"L {rel}\0{link_target}\0".encode()
    return f"{'X' if executable else 'F'} {rel}\0{file_sha256}\0".encode()


def directory_sha256(directory: Path) -> str:
    """The tree hash the server gives ``directory`` once it is zipped and uploaded.

    Raises NotADirectoryError. Blocking (reads every file).
    """
    if not directory.is_dir():
        raise NotADirectoryError(f"{directory} is not a directory")
    tree = hashlib.sha256()
    for path in bundle_files(directory):
        rel = path.relative_to(directory).as_posix()
        mode = path.lstat().st_mode
        if stat.S_ISLNK(mode):
            tree.update(tree_entry(rel, link_target=os.readlink(path)))
            continue
        digest = hashlib.sha256()
        with path.open("rb") as src:
            while chunk := src.read(1 << 20):
                digest.update(chunk)
        tree.update(tree_entry(rel, file_sha256=digest.hexdigest(), executable=bool(mode & 0o111)))
    return tree.hexdigest()
