"""Turning a directory into a zip bundle, byte for byte the same each time.

Standard library only: the CLI uses it on the client side too.
"""

from __future__ import annotations

import os
import stat
import zipfile
from pathlib import Path
from typing import BinaryIO

# Build and editor debris that never belongs in a function's bundle.
SKIPPED_DIRS = frozenset(
    {
        "__pycache__",
        ".git",
        ".hg",
        ".svn",
        ".venv",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        ".pyfaas",
        "node_modules",
    }
)
SKIPPED_SUFFIXES = (".pyc", ".pyo")
SKIPPED_NAMES = frozenset({".DS_Store"})
_EPOCH = (1980, 1, 1, 0, 0, 0)


def zip_directory(directory: Path, target: BinaryIO) -> int:
    """Write a zip of ``directory`` to ``target``; return the number of entries.

    Entries are sorted and timestamps fixed, so the same tree gives the same bytes.
    Symlinks are stored as symlinks (the server decides whether they are safe), not followed.
    Raises NotADirectoryError if ``directory`` is not one. Blocking (file I/O).
    """
    if not directory.is_dir():
        raise NotADirectoryError(f"{directory} is not a directory")
    count = 0
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in bundle_files(directory):
            rel = path.relative_to(directory).as_posix()
            info = zipfile.ZipInfo(rel, date_time=_EPOCH)
            mode = path.lstat().st_mode
            if stat.S_ISLNK(mode):
                info.external_attr = (stat.S_IFLNK | 0o777) << 16
                archive.writestr(info, os.readlink(path))
            else:
                info.external_attr = (stat.S_IFREG | (0o755 if mode & 0o111 else 0o644)) << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                with path.open("rb") as src, archive.open(info, "w", force_zip64=True) as dst:
                    while chunk := src.read(1 << 20):
                        dst.write(chunk)
            count += 1
    return count


def bundle_files(directory: Path) -> list[Path]:
    """The files and symlinks of ``directory`` a bundle holds, in bundle order (sorted by
    relative path, build and editor debris left out). Blocking (walks the tree)."""
    found: list[Path] = []
    for root, dirs, files in os.walk(directory, followlinks=False):
        base = Path(root)
        kept = []
        for d in sorted(dirs):
            if d in SKIPPED_DIRS:
                continue
            if (base / d).is_symlink():
                found.append(base / d)
            else:
                kept.append(d)
        dirs[:] = kept
        for name in sorted(files):
            if name in SKIPPED_NAMES or name.endswith(SKIPPED_SUFFIXES):
                continue
            found.append(base / name)
    return sorted(found, key=lambda p: p.relative_to(directory).as_posix())
