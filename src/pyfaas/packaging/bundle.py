"""Accepting a zip bundle: safe extraction into a content-addressed, read-only directory."""

from __future__ import annotations

import contextlib
import hashlib
import os
import posixpath
import re
import shutil
import stat
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from pyfaas.model import InvalidBundle, Limits, PayloadTooLarge
from pyfaas.packaging.layers import normalize_requirements

_DRIVE = re.compile(r"^[A-Za-z]:")


@dataclass(frozen=True, slots=True)
class Bundle:
    """Code stored under ``code_dir``; ``sha256`` hashes the tree, not the zip's bytes.

    ``created`` is True when this ingest stored the code, False when it was there already.
    """

    sha256: str
    size: int
    code_dir: Path
    requirements: str | None
    created: bool = True


def safe_member_path(name: str) -> str:
    """The entry's path relative to the bundle root; raises InvalidBundle if it escapes."""
    cleaned = name.replace("\\", "/")
    parts = [p for p in cleaned.split("/") if p not in ("", ".")]
    if cleaned.startswith("/") or _DRIVE.match(cleaned) or ".." in parts or "\0" in name:
        raise InvalidBundle(
            f"archive entry {name!r} points outside the bundle (absolute path or '..'); "
            "store paths relative to the bundle root",
            code="bundle_unsafe_path",
        )
    return "/".join(parts)


def extract_bundle(zip_path: Path, code_root: Path, limits: Limits) -> Bundle:
    """Validate and extract ``zip_path`` under ``code_root`` (blocking).

    Raises InvalidBundle or PayloadTooLarge; on error nothing is left behind.
    """
    zipped = zip_path.stat().st_size
    if zipped > limits.zipped_code_bytes:
        raise PayloadTooLarge(
            f"zipped code is {zipped} bytes; the limit is {limits.zipped_code_bytes} bytes",
            code="bundle_too_large",
        )
    try:
        archive = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError):
        raise InvalidBundle("the code is not a zip archive", code="bundle_not_zip") from None
    code_root.mkdir(parents=True, exist_ok=True)
    with archive:
        staging = Path(tempfile.mkdtemp(prefix=".incoming-", dir=code_root))
        try:
            try:
                sha, size = _extract(archive, staging, limits)
            except (zipfile.BadZipFile, zlib.error, EOFError, UnicodeDecodeError) as exc:
                raise InvalidBundle(
                    f"the archive is corrupt ({exc}); build it again", code="bundle_not_zip"
                ) from None
            requirements = _read_requirements(staging)
            _make_read_only(staging)
            final = code_root / sha
            created = True
            try:
                staging.rename(final)
            except OSError:
                if not final.is_dir():
                    raise
                remove_tree(staging)  # the same code is stored already
                created = False
        except BaseException:
            remove_tree(staging)
            raise
    return Bundle(sha256=sha, size=size, code_dir=final, requirements=requirements, created=created)


def _extract(archive: zipfile.ZipFile, staging: Path, limits: Limits) -> tuple[str, int]:
    members: dict[str, zipfile.ZipInfo] = {}
    for info in archive.infolist():
        rel = safe_member_path(info.filename)
        if info.flag_bits & 0x1:
            raise InvalidBundle(
                f"archive entry {info.filename!r} is encrypted", code="bundle_not_zip"
            )
        if rel and not info.is_dir():
            if rel in members:
                raise InvalidBundle(f"archive holds {rel!r} twice", code="bundle_unsafe_path")
            members[rel] = info
    if not members:
        raise InvalidBundle("the archive holds no files", code="bundle_empty")
    declared = sum(i.file_size for i in members.values())
    if declared > limits.unzipped_code_bytes:
        raise _too_large(declared, limits)
    links = {rel for rel, info in members.items() if _is_symlink(info)}
    tree = hashlib.sha256()
    written = 0
    for rel in sorted(members):
        info = members[rel]
        parent = posixpath.dirname(rel)
        if any(parent == link or parent.startswith(link + "/") for link in links):
            raise InvalidBundle(
                f"archive entry {rel!r} lies under a symlink", code="bundle_symlink_escapes"
            )
        dest = staging / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        if rel in links:
            target = archive.read(info).decode("utf-8", errors="strict")
            resolved = posixpath.normpath(posixpath.join(parent, target))
            if target.startswith("/") or resolved == ".." or resolved.startswith("../"):
                raise InvalidBundle(
                    f"symlink {rel!r} -> {target!r} points outside the bundle",
                    code="bundle_symlink_escapes",
                )
            os.symlink(target, dest)
            tree.update(f"L {rel}\0{target}\0".encode())
            continue
        digest = hashlib.sha256()
        with archive.open(info) as src, open(dest, "xb") as out:
            while chunk := src.read(1 << 20):
                written += len(chunk)
                if written > limits.unzipped_code_bytes:  # the headers may lie: count
                    raise _too_large(written, limits)
                digest.update(chunk)
                out.write(chunk)
        executable = bool((info.external_attr >> 16) & 0o111)
        if executable:
            dest.chmod(0o755)
        tree.update(f"{'X' if executable else 'F'} {rel}\0{digest.hexdigest()}\0".encode())
    return tree.hexdigest(), written


def _too_large(size: int, limits: Limits) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"unzipped code is over {size} bytes; the limit is {limits.unzipped_code_bytes} bytes",
        code="bundle_too_large",
    )


def _is_symlink(info: zipfile.ZipInfo) -> bool:
    return stat.S_ISLNK(info.external_attr >> 16)


def _read_requirements(root: Path) -> str | None:
    path = root / "requirements.txt"
    if not path.is_file() or path.is_symlink():
        return None
    return normalize_requirements(path.read_text(errors="replace")) or None


def _make_read_only(root: Path) -> None:
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            path = os.path.join(dirpath, name)
            if not os.path.islink(path):
                mode = os.stat(path).st_mode
                os.chmod(path, 0o555 if mode & 0o111 else 0o444)
        os.chmod(dirpath, 0o555)


def remove_tree(path: Path) -> None:
    """Remove a directory that may have been made read-only."""
    if not path.exists():
        return
    for dirpath, _dirs, _files in os.walk(path):
        with contextlib.suppress(OSError):
            os.chmod(dirpath, 0o755)
    shutil.rmtree(path, ignore_errors=True)
