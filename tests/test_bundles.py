"""Zip bundles: what is accepted lands inside the bundle, read-only, stored by content."""

from __future__ import annotations

import io
import posixpath
import stat
import struct
import zipfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyfaas.model import InvalidBundle, Limits, PayloadTooLarge
from pyfaas.packaging.archive import zip_directory
from pyfaas.packaging.bundle import extract_bundle, safe_member_path
from pyfaas.packaging.layers import normalize_requirements

segment = st.sampled_from(["a", "b", "..", ".", "", "c.py", "ü", "x y", "\\", "C:"])


@given(st.lists(segment, min_size=1, max_size=6).map("/".join))
def test_accepted_member_paths_stay_inside_the_bundle(name: str) -> None:
    try:
        rel = safe_member_path(name)
    except InvalidBundle as exc:
        assert exc.code == "bundle_unsafe_path"
        return
    assert not rel.startswith("/")
    assert ".." not in rel.split("/")
    assert not posixpath.normpath("/root/" + rel).startswith("/root/..")


@pytest.mark.parametrize("name", ["/etc/passwd", "../x", "a/../../x", "C:/x", "a\\..\\..\\x"])
def test_escaping_member_paths_are_refused(name: str) -> None:
    with pytest.raises(InvalidBundle) as info:
        safe_member_path(name)
    assert info.value.code == "bundle_unsafe_path"


def write_zip(path: Path, entries: dict[str, bytes], mode: int = 0o644) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, content in entries.items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFREG | mode) << 16
            zf.writestr(info, content)
    return path


def test_the_same_tree_in_two_different_zips_is_stored_once(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "pkg").mkdir(parents=True)
    (src / "handler.py").write_text("def handler(e, c):\n    return 1\n")
    (src / "pkg" / "__init__.py").write_text("")
    one = tmp_path / "one.zip"
    with one.open("wb") as out:
        zip_directory(src, out)
    other = write_zip(
        tmp_path / "other.zip",
        {"pkg/__init__.py": b"", "handler.py": b"def handler(e, c):\n    return 1\n"},
    )
    root = tmp_path / "code"
    a = extract_bundle(one, root, Limits())
    b = extract_bundle(other, root, Limits())
    assert a.sha256 == b.sha256
    assert [p.name for p in root.iterdir()] == [a.sha256]
    handler = a.code_dir / "handler.py"
    assert not handler.stat().st_mode & 0o222, "stored code is read-only"


def test_a_zip_bomb_with_lying_headers_is_stopped_by_counting(tmp_path: Path) -> None:
    limits = Limits(unzipped_code_bytes=10_000)
    path = write_zip(tmp_path / "bomb.zip", {"handler.py": b"x = 1\n", "big.bin": b"\0" * 50_000})
    # Rewrite the declared sizes of big.bin to 10 bytes in both headers.
    data = bytearray(path.read_bytes())
    for signature, size_offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        start = 0
        while (start := data.find(signature, start)) >= 0:
            name_len_offset = 26 if signature == b"PK\x03\x04" else 28
            name_len = struct.unpack_from("<H", data, start + name_len_offset)[0]
            header_len = 30 if signature == b"PK\x03\x04" else 46
            name = data[start + header_len : start + header_len + name_len]
            if name == b"big.bin":
                struct.pack_into("<I", data, start + size_offset, 10)
            start += 4
    path.write_bytes(bytes(data))
    root = tmp_path / "code"
    with pytest.raises((PayloadTooLarge, InvalidBundle)):
        extract_bundle(path, root, limits)
    assert [p.name for p in root.iterdir()] == [], "nothing half-written"


def test_symlinks_inside_are_kept_and_escaping_ones_refused(tmp_path: Path) -> None:
    def with_link(target: str) -> Path:
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            zf.writestr("lib/real.py", "x = 1\n")
            info = zipfile.ZipInfo("alias.py")
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, target)
        path = tmp_path / f"link-{abs(hash(target))}.zip"
        path.write_bytes(buf.getvalue())
        return path

    bundle = extract_bundle(with_link("lib/real.py"), tmp_path / "code", Limits())
    assert (bundle.code_dir / "alias.py").read_text() == "x = 1\n"
    for target in ("/etc/passwd", "../outside", "lib/../../x"):
        with pytest.raises(InvalidBundle) as info:
            extract_bundle(with_link(target), tmp_path / "code", Limits())
        assert info.value.code == "bundle_symlink_escapes"


def test_requirements_are_normalized_and_local_paths_refused() -> None:
    text = "# deps\nrequests==2.32.0  # http\n\nsix\nsix\n"
    assert normalize_requirements(text) == "requests==2.32.0\nsix"
    for bad in ("-e .", "-r other.txt", "--index-url https://x", "./local", "pkg @ file:///etc"):
        with pytest.raises(InvalidBundle) as info:
            normalize_requirements(bad)
        assert info.value.code == "requirements_unsupported"
