"""Accepting a zip bundle: safe extraction into a content-addressed, read-only directory."""

from __future__ import annotations

import contextlib
import hashlib
import os
import posixpath
import re
import stat
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from lzma import LZMAError
from pathlib import Path
from typing import IO
from zipfile import BadZipFile

from pyfaas.model import InvalidBundle, Limits, PayloadTooLarge
from pyfaas.packaging.requirements import normalize_requirements
from pyfaas.packaging.storage import make_read_only, publish, remove_tree
from pyfaas.packaging.tree_hash import tree_entry

_DRIVE = re.compile(r"^[A-Za-z]:")
_MAX_NAME_BYTES = 255  # one path component, as Linux file systems allow
_MAX_PATH_BYTES = 1024
_MAX_REQUIREMENTS_BYTES = 1024 * 1024
# What reading a damaged archive raises (bz2 reports bad data as a plain OSError; a flipped
# flag bit makes zipfile ask for a password with a RuntimeError).
_CORRUPT = (BadZipFile, zlib.error, LZMAError, EOFError, OSError, RuntimeError, ValueError)


@dataclass(frozen=True, slots=True)
class Bundle:
    """Code stored under ``code_dir``, named by ``sha256`` of its tree (not of the zip).

    ``size`` is the unzipped size in bytes. ``requirements`` is the top-level
    requirements.txt, normalized, or None. ``created`` is False when the same code was
    stored already and this ingest reused it.
    """

    sha256: str
    size: int
    code_dir: Path
    requirements: str | None
    created: bool = True


def safe_member_path(name: str) -> str:
    """An archive entry's path relative to the bundle root, '/'-separated.

    Raises InvalidBundle (``bundle_unsafe_path``) for absolute paths, drive letters, '..'
    components, NUL bytes and names too long for the file system. Pure: does not block.
    """
    cleaned = name.replace("\\", "/")
    parts = [p for p in cleaned.split("/") if p not in ("", ".")]
    if cleaned.startswith("/") or _DRIVE.match(cleaned) or ".." in parts or "\0" in name:
        raise InvalidBundle(
            f"archive entry {name!r} points outside the bundle (absolute path, drive letter "
            "or '..'); store paths relative to the bundle root",
            code="bundle_unsafe_path",
        )
    rel = "/".join(parts)
    longest = max((len(p.encode()) for p in parts), default=0)
    if longest > _MAX_NAME_BYTES or len(rel.encode()) > _MAX_PATH_BYTES:
        raise InvalidBundle(
            f"archive entry {name[:80]!r}... has a name longer than {_MAX_NAME_BYTES} bytes "
            f"or a path longer than {_MAX_PATH_BYTES} bytes; shorten it",
            code="bundle_unsafe_path",
        )
    return rel


def extract_bundle(zip_path: Path, code_root: Path, limits: Limits) -> Bundle:
    """Validate ``zip_path`` and store its content under ``code_root/<tree sha256>``.

    Blocking (file I/O). Raises InvalidBundle (bundle_not_zip, bundle_empty,
    bundle_unsafe_path, bundle_symlink_escapes, requirements_unsupported) or
    PayloadTooLarge (bundle_too_large). On any error nothing is left under ``code_root``.
    """
    zipped = zip_path.stat().st_size
    if zipped > limits.zipped_code_bytes:
        raise PayloadTooLarge(
            f"the zipped code is {zipped} bytes, over the {limits.zipped_code_bytes}-byte "
            "limit; move large data out of the bundle",
            code="bundle_too_large",
        )
    code_root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".incoming-", dir=code_root))
    try:
        try:
            archive = zipfile.ZipFile(zip_path)
        except _CORRUPT:
            raise InvalidBundle(
                "the code is not a zip archive; upload a .zip of your function's directory",
                code="bundle_not_zip",
            ) from None
        with archive:
            sha, size = _extract(archive, staging, limits)
        requirements = _read_requirements(staging)
        make_read_only(staging)
        final = code_root / sha
        created = publish(staging, final)
    except BaseException:
        remove_tree(staging)
        raise
    return Bundle(sha256=sha, size=size, code_dir=final, requirements=requirements, created=created)


def _extract(archive: zipfile.ZipFile, staging: Path, limits: Limits) -> tuple[str, int]:
    """Write every entry under ``staging``; return (tree sha256, bytes written)."""
    members = _members(archive, limits)
    links = {rel for rel, info in members.items() if stat.S_ISLNK(info.external_attr >> 16)}
    tree = hashlib.sha256()
    written = 0
    for rel in sorted(members):  # sorted, so the hash does not depend on the zip's order
        info, dest = members[rel], staging / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        if rel in links:
            target = _link_target(archive, info, rel)
            os.symlink(target, dest)
            tree.update(tree_entry(rel, link_target=target))
            continue
        digest = hashlib.sha256()
        with _open_member(archive, info) as src, open(dest, "xb") as out:
            for chunk in _chunks(src, info):
                written += len(chunk)
                if written > limits.unzipped_code_bytes:  # headers can lie: count what is real
                    raise _unzipped_too_large(f"over {written}", limits)
                digest.update(chunk)
                out.write(chunk)
        executable = bool((info.external_attr >> 16) & 0o111)
        if executable:
            dest.chmod(0o755)
        tree.update(tree_entry(rel, file_sha256=digest.hexdigest(), executable=executable))
    _check_links_resolve_inside(staging, links)
    return tree.hexdigest(), written


def _members(archive: zipfile.ZipFile, limits: Limits) -> dict[str, zipfile.ZipInfo]:
    """The file and symlink entries by relative path, after every check headers allow."""
    members: dict[str, zipfile.ZipInfo] = {}
    for info in archive.infolist():
        rel = safe_member_path(info.filename)
        if info.flag_bits & 0x1:
            raise InvalidBundle(
                f"archive entry {info.filename!r} is encrypted; zip the code without a password",
                code="bundle_not_zip",
            )
        if not rel or info.is_dir() or stat.S_ISDIR(info.external_attr >> 16):
            continue  # directories are implied by the files in them
        if rel in members:
            raise InvalidBundle(f"archive holds {rel!r} twice; keep one", code="bundle_unsafe_path")
        members[rel] = info
    if not members:
        raise InvalidBundle("the archive holds no files; zip your code", code="bundle_empty")
    declared = sum(info.file_size for info in members.values())
    if declared > limits.unzipped_code_bytes:
        raise _unzipped_too_large(str(declared), limits)
    links = {rel for rel, info in members.items() if stat.S_ISLNK(info.external_attr >> 16)}
    for rel in members:
        for parent in _parents(rel):
            if parent in links:
                raise InvalidBundle(
                    f"archive entry {rel!r} lies under the symlink {parent!r}; store it at "
                    "its real path",
                    code="bundle_symlink_escapes",
                )
            if parent in members:
                raise InvalidBundle(
                    f"archive holds {parent!r} both as a file and as a directory; keep one",
                    code="bundle_unsafe_path",
                )
    return members


def _parents(rel: str) -> Iterator[str]:
    parent = posixpath.dirname(rel)
    while parent:
        yield parent
        parent = posixpath.dirname(parent)


def _open_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> IO[bytes]:
    try:
        return archive.open(info)
    except NotImplementedError:
        raise InvalidBundle(
            f"archive entry {info.filename!r} uses a compression method or zip feature "
            "pyfaas cannot read; zip it with deflate (the default of zip tools)",
            code="bundle_not_zip",
        ) from None
    except _CORRUPT as exc:
        raise _corrupt(info, exc) from None


def _chunks(src: IO[bytes], info: zipfile.ZipInfo) -> Iterator[bytes]:
    # Only reading is guarded: an OSError while writing is the server's (disk full), not
    # the archive's fault.
    while True:
        try:
            chunk = src.read(1 << 20)
        except _CORRUPT as exc:
            raise _corrupt(info, exc) from None
        if not chunk:
            return
        yield chunk


def _link_target(archive: zipfile.ZipFile, info: zipfile.ZipInfo, rel: str) -> str:
    with _open_member(archive, info) as src:
        raw = b"".join(_chunks(src, info))
    target = raw.decode(errors="replace")
    if not target or "\0" in target or "\ufffd" in target or target.startswith("/"):
        raise _escapes(rel, target)  # absolute targets would also break once stored
    return target


def _check_links_resolve_inside(staging: Path, links: set[str]) -> None:
    # Resolved only once all links exist: 'a -> x/up/..' with 'x/up -> ..' looks inside on
    # paper and leaves in fact.
    root = os.path.realpath(staging)
    for rel in sorted(links):
        real = os.path.realpath(staging / rel)
        if real != root and not real.startswith(root + os.sep):
            raise _escapes(rel, os.readlink(staging / rel))


def _escapes(rel: str, target: str) -> InvalidBundle:
    return InvalidBundle(
        f"symlink {rel!r} -> {target[:200]!r} leads outside the bundle; links may only "
        "point inside it, by relative path",
        code="bundle_symlink_escapes",
    )


def _read_requirements(root: Path) -> str | None:
    path = root / "requirements.txt"
    if not path.is_file():
        return None
    text = None
    if path.stat().st_size <= _MAX_REQUIREMENTS_BYTES:
        with contextlib.suppress(UnicodeDecodeError):
            text = path.read_text(encoding="utf-8-sig")
    if text is None:
        raise InvalidBundle(
            f"requirements.txt must be UTF-8 text of at most {_MAX_REQUIREMENTS_BYTES} bytes",
            code="requirements_unsupported",
        )
    return normalize_requirements(text) or None


def _corrupt(info: zipfile.ZipInfo, exc: BaseException) -> InvalidBundle:
    return InvalidBundle(
        f"archive entry {info.filename!r} is damaged ({exc}); build the zip again",
        code="bundle_not_zip",
    )


def _unzipped_too_large(size: str, limits: Limits) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"the unzipped code is {size} bytes, over the {limits.unzipped_code_bytes}-byte "
        "limit; move large data out of the bundle or install it from requirements.txt",
        code="bundle_too_large",
    )
