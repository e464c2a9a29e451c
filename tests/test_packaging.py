"""Code bundles and dependency layers: what is accepted lands inside, read-only, stored once;
what is refused gets a code that says why and leaves nothing behind."""

from __future__ import annotations

import asyncio
import os
import stat
import struct
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyfaas.model import InvalidBundle, Limits, PayloadTooLarge
from pyfaas.packaging import Bundle, CodeStore, Layer
from pyfaas.packaging.archive import zip_directory
from pyfaas.packaging.bundle import safe_member_path
from pyfaas.packaging.requirements import normalize_requirements

HANDLER = b"def handler(event, context):\n    return event\n"
Entry = tuple[str, bytes] | tuple[str, bytes, int]


def make_zip(
    path: Path, entries: Iterable[Entry], *, compression: int = zipfile.ZIP_DEFLATED
) -> Path:
    """A zip of (name, content[, st_mode]) entries; S_IFLNK in the mode makes a symlink."""
    with zipfile.ZipFile(path, "w", compression=compression) as zf:
        for name, content, *mode in entries:
            info = zipfile.ZipInfo(name, date_time=(2001, 2, 3, 4, 5, 6))
            info.external_attr = (mode[0] if mode else stat.S_IFREG | 0o644) << 16
            info.compress_type = compression
            zf.writestr(info, content)
    return path


def link(name: str, target: str) -> Entry:
    return (name, target.encode(), stat.S_IFLNK | 0o777)


def ingest(home: Path, zip_path: Path, limits: Limits | None = None) -> Bundle:
    return asyncio.run(CodeStore(home, limits or Limits()).ingest_zip(zip_path))


def stored(home: Path) -> list[str]:
    """Everything under home/code: only finished, content-named directories may be there."""
    root = home / "code"
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


def refused(home: Path, zip_path: Path, limits: Limits | None = None) -> InvalidBundle:
    with pytest.raises(InvalidBundle) as info:
        ingest(home, zip_path, limits)
    assert stored(home) == [], "a refused bundle leaves nothing under home/code"
    return info.value


# --- the path validator -------------------------------------------------------------------

segments = st.one_of(
    st.sampled_from(["..", ".", "", "C:", "c:", "\\", "..\\..", "a", "ü", "x y", ".hidden"]),
    st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=8),
)


@given(st.lists(segments, min_size=1, max_size=6).map("/".join))
def test_an_accepted_entry_name_always_lands_inside_the_bundle(name: str) -> None:
    try:
        rel = safe_member_path(name)
    except InvalidBundle as exc:
        assert exc.code == "bundle_unsafe_path"
        return
    assert not rel.startswith("/") and ".." not in rel.split("/")
    if not rel:
        return  # a name like '.' or '/' that means the root itself: nothing is written
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp, "bundle")
        target = (root / rel).resolve()
        assert target.is_relative_to(root.resolve()) and target != root.resolve()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(segments, min_size=1, max_size=4).map("/".join))
def test_extracting_any_entry_name_writes_only_inside_the_stored_code(name: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp, "home")
        archive = make_zip(Path(tmp, "c.zip"), [("handler.py", HANDLER), (name, b"data")])
        try:
            bundle = ingest(home, archive)
        except InvalidBundle as exc:
            assert exc.code in {"bundle_unsafe_path", "bundle_empty"}
            assert stored(home) == []
            return
        written = [p for p in Path(tmp).rglob("*") if p.is_file()]
        assert sorted(written) == sorted(
            [archive, *(p for p in bundle.code_dir.rglob("*") if p.is_file())]
        )


@pytest.mark.parametrize(
    "name",
    ["/etc/passwd", "../x.py", "a/../../x.py", "a/b/../../../x.py", "C:/x.py", "c:x.py",
     "..\\x.py", "a\\..\\..\\x.py", "\\\\server\\share\\x.py"],
)  # fmt: skip
def test_absolute_and_parent_paths_are_refused_naming_the_entry(tmp_path: Path, name: str) -> None:
    archive = make_zip(tmp_path / "c.zip", [("handler.py", HANDLER), (name, b"x = 1\n")])
    error = refused(tmp_path / "home", archive)
    assert error.code == "bundle_unsafe_path"
    assert repr(name) in error.message


# --- archives that are refused ------------------------------------------------------------


def test_something_that_is_not_a_zip_is_refused(tmp_path: Path) -> None:
    not_zip = tmp_path / "code.zip"
    not_zip.write_bytes(b"def handler(event, context): pass\n")
    assert refused(tmp_path / "home", not_zip).code == "bundle_not_zip"


def test_a_truncated_zip_is_refused(tmp_path: Path) -> None:
    whole = make_zip(tmp_path / "whole.zip", [("handler.py", HANDLER * 100)]).read_bytes()
    cut = tmp_path / "cut.zip"
    cut.write_bytes(whole[: len(whole) // 2])
    assert refused(tmp_path / "home", cut).code == "bundle_not_zip"


def test_an_empty_archive_or_one_of_only_directories_is_refused(tmp_path: Path) -> None:
    empty = make_zip(tmp_path / "empty.zip", [])
    assert refused(tmp_path / "home", empty).code == "bundle_empty"
    dirs = make_zip(tmp_path / "dirs.zip", [("pkg/", b""), ("pkg/sub/", b"")])
    assert refused(tmp_path / "home", dirs).code == "bundle_empty"


def patched(path: Path, *, local: tuple[int, bytes], central: tuple[int, bytes]) -> Path:
    """Overwrite bytes at offsets of every local and central header (to fake a header)."""
    data = bytearray(path.read_bytes())
    for signature, (offset, value) in ((b"PK\x03\x04", local), (b"PK\x01\x02", central)):
        at = data.find(signature)
        while at >= 0:
            data[at + offset : at + offset + len(value)] = value
            at = data.find(signature, at + 4)
    path.write_bytes(bytes(data))
    return path


def test_encrypted_entries_are_refused(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "c.zip", [("handler.py", HANDLER)])
    flag = struct.pack("<H", 0x1)
    patched(archive, local=(6, flag), central=(8, flag))
    error = refused(tmp_path / "home", archive)
    assert error.code == "bundle_not_zip" and "encrypted" in error.message


def test_an_unknown_compression_method_is_refused(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "c.zip", [("handler.py", HANDLER)])
    method = struct.pack("<H", 99)
    patched(archive, local=(8, method), central=(10, method))
    error = refused(tmp_path / "home", archive)
    assert error.code == "bundle_not_zip" and "deflate" in error.message


def test_duplicate_entries_and_a_file_that_is_also_a_directory_are_refused(
    tmp_path: Path,
) -> None:
    twice = make_zip(tmp_path / "twice.zip", [("handler.py", HANDLER), ("./handler.py", b"")])
    assert refused(tmp_path / "home", twice).code == "bundle_unsafe_path"
    both = make_zip(tmp_path / "both.zip", [("lib", b"x"), ("lib/mod.py", b"")])
    assert refused(tmp_path / "home", both).code == "bundle_unsafe_path"


def test_a_zip_over_the_zipped_limit_is_too_large(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "c.zip", [("data.bin", os.urandom(5000))])
    with pytest.raises(PayloadTooLarge) as info:
        ingest(tmp_path / "home", archive, Limits(zipped_code_bytes=4000))
    assert info.value.code == "bundle_too_large" and "4000" in info.value.message
    assert stored(tmp_path / "home") == []


def test_a_zip_bomb_is_refused_before_it_fills_the_disk(tmp_path: Path) -> None:
    bomb = make_zip(tmp_path / "bomb.zip", [("handler.py", HANDLER), ("zeros", bytes(10**7))])
    assert bomb.stat().st_size < 20_000
    with pytest.raises(PayloadTooLarge) as info:
        ingest(tmp_path / "home", bomb, Limits(unzipped_code_bytes=1_000_000))
    assert info.value.code == "bundle_too_large"
    assert stored(tmp_path / "home") == []


def test_a_zip_bomb_whose_headers_lie_about_its_size_is_refused(tmp_path: Path) -> None:
    bomb = make_zip(tmp_path / "bomb.zip", [("zeros", bytes(10**7))])
    tiny = struct.pack("<I", 100)  # declared uncompressed size: 100 bytes
    patched(bomb, local=(22, tiny), central=(24, tiny))
    home = tmp_path / "home"
    with pytest.raises((PayloadTooLarge, InvalidBundle)):
        ingest(home, bomb, Limits(unzipped_code_bytes=1_000_000))
    assert stored(home) == []
    assert sum(f.stat().st_size for f in home.rglob("*") if f.is_file()) == 0


def fuzz_target(directory: Path) -> Path:
    return make_zip(
        directory / "c.zip",
        [("handler.py", HANDLER * 3), ("pkg/mod.py", b"x = 1\n" * 50), link("l", "handler.py")],
    )


def accepted_or_refused_cleanly(home: Path, archive: Path, store: CodeStore) -> None:
    try:
        bundle = asyncio.run(store.ingest_zip(archive))
    except (InvalidBundle, PayloadTooLarge):
        assert stored(home) == []
    else:
        assert stored(home) == [bundle.sha256]
        asyncio.run(store.discard(bundle.sha256))


@pytest.mark.slow
def test_every_single_damaged_byte_is_refused_cleanly_or_accepted(tmp_path: Path) -> None:
    original = fuzz_target(tmp_path).read_bytes()
    home, damaged = tmp_path / "home", tmp_path / "damaged.zip"
    store = CodeStore(home, Limits())
    for at in range(len(original)):
        for value in (0x00, 0xFF, original[at] ^ 0x01):
            damaged.write_bytes(original[:at] + bytes([value]) + original[at + 1 :])
            accepted_or_refused_cleanly(home, damaged, store)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_a_damaged_zip_is_refused_cleanly_or_accepted_never_a_crash(data: st.DataObject) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        archive = fuzz_target(Path(tmp))
        raw = bytearray(archive.read_bytes())
        positions = st.integers(0, len(raw) - 1)
        for at in data.draw(st.lists(positions, min_size=1, max_size=6)):
            raw[at] = data.draw(st.integers(0, 255))
        if data.draw(st.booleans()):
            raw = raw[: data.draw(positions)]
        archive.write_bytes(bytes(raw))
        home = Path(tmp, "home")
        accepted_or_refused_cleanly(home, archive, CodeStore(home, Limits()))


# --- symlinks -----------------------------------------------------------------------------


def test_symlinks_that_stay_inside_are_kept_as_symlinks(tmp_path: Path) -> None:
    archive = make_zip(
        tmp_path / "c.zip",
        [("lib/real.py", b"x = 1\n"), link("alias.py", "lib/real.py"), link("pkg", "lib"),
         link("lib/self.py", "../lib/./real.py")],
    )  # fmt: skip
    code = ingest(tmp_path / "home", archive).code_dir
    assert (code / "alias.py").is_symlink() and os.readlink(code / "alias.py") == "lib/real.py"
    assert (code / "alias.py").read_text() == "x = 1\n"
    assert (code / "pkg" / "real.py").read_text() == "x = 1\n"
    assert (code / "lib" / "self.py").read_text() == "x = 1\n"


@pytest.mark.parametrize(
    "entries",
    [
        [link("passwd", "/etc/passwd")],
        [link("up", "..")],
        [link("deep/up", "../../outside")],
        [link("sneaky", "lib/../../x")],
        # Each link looks inside on paper; followed one through the other, 'out' leaves.
        [link("x/y/root", "../.."), link("out", "x/y/root/..")],
        # A file written through a symlinked directory would land wherever the link points.
        [link("lib", "pkg"), ("pkg/a.py", b""), ("lib/evil.py", b"")],
    ],
)
def test_symlinks_leading_outside_the_bundle_are_refused(
    tmp_path: Path, entries: list[Entry]
) -> None:
    archive = make_zip(tmp_path / "c.zip", [("handler.py", HANDLER), *entries])
    assert refused(tmp_path / "home", archive).code == "bundle_symlink_escapes"


# --- stored code --------------------------------------------------------------------------


def test_the_same_tree_zipped_twice_differently_is_stored_once(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "pkg").mkdir(parents=True)
    (src / "handler.py").write_bytes(HANDLER)
    (src / "pkg" / "__init__.py").write_text("")
    (src / "run.sh").write_text("#!/bin/sh\n")
    (src / "run.sh").chmod(0o755)
    by_tool = tmp_path / "tool.zip"
    with by_tool.open("wb") as out:
        zip_directory(src, out)
    by_hand = make_zip(  # other order, timestamps, compression, and explicit directories
        tmp_path / "hand.zip",
        [("run.sh", b"#!/bin/sh\n", stat.S_IFREG | 0o700), ("pkg/", b""),
         ("pkg/__init__.py", b""), ("./handler.py", HANDLER)],
        compression=zipfile.ZIP_STORED,
    )  # fmt: skip
    assert by_tool.read_bytes() != by_hand.read_bytes()
    home = tmp_path / "home"
    first, second = ingest(home, by_tool), ingest(home, by_hand)
    assert first.sha256 == second.sha256 and first.code_dir == second.code_dir
    assert (first.created, second.created) == (True, False)
    assert stored(home) == [first.sha256]
    assert first.size == second.size == len(HANDLER) + len(b"#!/bin/sh\n")


@pytest.mark.parametrize(
    "change",
    [
        [("handler.py", HANDLER + b"#")],
        [("handler.py", HANDLER, stat.S_IFREG | 0o755)],
        [("handler2.py", HANDLER)],
        [("handler.py", HANDLER), link("extra", "handler.py")],
    ],
)
def test_content_mode_names_and_links_all_change_the_hash(
    tmp_path: Path, change: list[Entry]
) -> None:
    home = tmp_path / "home"
    base = ingest(home, make_zip(tmp_path / "a.zip", [("handler.py", HANDLER)]))
    other = ingest(home, make_zip(tmp_path / "b.zip", change))
    assert base.sha256 != other.sha256


def test_racing_ingests_of_the_same_code_store_it_once(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "c.zip", [("handler.py", HANDLER), ("data", os.urandom(10**6))])
    home = tmp_path / "home"

    async def race() -> list[Bundle]:
        code = CodeStore(home, Limits())
        return await asyncio.gather(*(code.ingest_zip(archive) for _ in range(6)))

    bundles = asyncio.run(race())
    assert len({b.sha256 for b in bundles}) == 1
    assert sum(b.created for b in bundles) == 1
    assert stored(home) == [bundles[0].sha256]


def test_stored_code_is_read_only_and_keeps_the_executable_bit(tmp_path: Path) -> None:
    archive = make_zip(
        tmp_path / "c.zip",
        [("handler.py", HANDLER), ("bin/tool", b"#!/bin/sh\n", stat.S_IFREG | 0o775)],
    )
    code = ingest(tmp_path / "home", archive).code_dir
    assert stat.S_IMODE((code / "handler.py").stat().st_mode) == 0o444
    assert stat.S_IMODE((code / "bin" / "tool").stat().st_mode) == 0o555
    assert stat.S_IMODE((code / "bin").stat().st_mode) == 0o555
    assert stat.S_IMODE(code.stat().st_mode) == 0o555
    if os.geteuid() != 0:  # root writes anyway; the modes above are what protects others
        with pytest.raises(PermissionError):
            (code / "handler.py").write_text("changed")


def test_requirements_are_read_normalized_from_the_bundle_root(tmp_path: Path) -> None:
    text = (
        "\ufeff# deps\nsix==1.16.0  # pinned\n\n"
        "attrs>=23 \\\n  ; python_version >= '3.8'\nsix==1.16.0\n"
    )
    with_reqs = make_zip(
        tmp_path / "a.zip",
        [("handler.py", HANDLER), ("requirements.txt", text.encode()),
         ("sub/requirements.txt", b"-e /etc\n")],
    )  # fmt: skip
    bundle = ingest(tmp_path / "home", with_reqs)
    assert bundle.requirements == "attrs>=23   ; python_version >= '3.8'\nsix==1.16.0"
    only_comments = make_zip(
        tmp_path / "b.zip", [("handler.py", HANDLER), ("requirements.txt", b"# none\n\n")]
    )
    assert ingest(tmp_path / "home", only_comments).requirements is None
    none = make_zip(tmp_path / "c.zip", [("handler.py", HANDLER)])
    assert ingest(tmp_path / "home", none).requirements is None


def test_a_bundle_whose_requirements_reach_local_files_is_refused(tmp_path: Path) -> None:
    archive = make_zip(
        tmp_path / "c.zip", [("handler.py", HANDLER), ("requirements.txt", b"six\n-e .\n")]
    )
    error = refused(tmp_path / "home", archive)
    assert error.code == "requirements_unsupported" and "'-e .'" in error.message


@pytest.mark.parametrize(
    "line",
    ["six", "six==1.16.0", "Django[argon2,bcrypt]>=4.2,<5", "zope.interface~=6.0",
     "requests==2.32.3 --hash=sha256:abc --hash=sha256:def",
     "attrs ; python_version < '3.12'", "pkg @ https://example.com/pkg-1.0-py3-none-any.whl",
     "pkg @ git+https://github.com/o/pkg@v1", "https://example.com/pkg-1.0.tar.gz"],
)  # fmt: skip
def test_package_requirements_are_accepted(line: str) -> None:
    assert normalize_requirements(line) == line


@pytest.mark.parametrize(
    "line",
    ["-e .", "-r other.txt", "-c constraints.txt", "--index-url https://evil.example/simple",
     "--extra-index-url https://x", "-i https://x", "--find-links /tmp", "./local/pkg",
     "/abs/pkg", "~/pkg", "C:\\pkg", "lib/pkg", "pkg.whl", "dist/pkg-1.0.tar.gz",
     "pkg @ file:///etc/passwd", "pkg @ ../pkg", "git+file:///repo",
     "pkg @ git+ssh://git@github.com/private/repo", "pkg @ https://x/${AWS_SECRET}",
     "six --index-url https://evil.example", "ünïcode"],
)  # fmt: skip
def test_requirements_that_reach_the_servers_files_or_indexes_are_refused(line: str) -> None:
    with pytest.raises(InvalidBundle) as info:
        normalize_requirements(f"six\n{line}\n")
    assert info.value.code == "requirements_unsupported"
    assert repr(line) in info.value.message


# --- garbage collection -------------------------------------------------------------------


def age(path: Path, seconds: float) -> None:
    past = time.time() - seconds
    os.utime(path, (past, past), follow_symlinks=False)


def test_collection_removes_old_code_nobody_references(tmp_path: Path) -> None:
    home = tmp_path / "home"
    keep = ingest(home, make_zip(tmp_path / "a.zip", [("handler.py", HANDLER)]))
    drop = ingest(home, make_zip(tmp_path / "b.zip", [("other.py", HANDLER)]))
    young = ingest(home, make_zip(tmp_path / "c.zip", [("young.py", HANDLER)]))
    crashed = home / "code" / ".incoming-crashed"
    crashed.mkdir()
    for path in (keep.code_dir, drop.code_dir, crashed):
        age(path, 2 * 3600)
    asked: list[str] = []

    async def referenced(sha: str) -> bool:
        asked.append(sha)
        return sha == keep.sha256

    code = CodeStore(home, Limits())
    assert asyncio.run(code.collect_garbage(referenced)) == 1
    assert stored(home) == sorted([keep.sha256, young.sha256])
    assert young.sha256 not in asked, "young code is spared without asking"
    assert asyncio.run(code.collect_garbage(referenced, unused_for_s=0)) == 1
    assert stored(home) == [keep.sha256]


def test_reusing_stored_code_protects_it_from_collection(tmp_path: Path) -> None:
    home = tmp_path / "home"
    archive = make_zip(tmp_path / "a.zip", [("handler.py", HANDLER)])
    first = ingest(home, archive)
    age(first.code_dir, 2 * 3600)
    assert ingest(home, archive).created is False  # a deploy of the same code, just now

    async def nobody(_sha: str) -> bool:
        return False

    assert asyncio.run(CodeStore(home, Limits()).collect_garbage(nobody)) == 0
    assert stored(home) == [first.sha256]


def test_code_dir_only_takes_sha256_digests(tmp_path: Path) -> None:
    code = CodeStore(tmp_path, Limits())
    assert code.code_dir("a" * 64) == tmp_path / "code" / ("a" * 64)
    for bad in ("../../etc", "A" * 64, "a" * 63, ""):
        with pytest.raises(ValueError):
            code.code_dir(bad)


# --- layers -------------------------------------------------------------------------------


def layers(home: Path) -> list[str]:
    root = home / "layers"
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


def ensure(
    code: CodeStore, requirements: str, on_output: Callable[[str], None] | None = None
) -> Layer:
    return asyncio.run(code.ensure_layer(requirements, on_output))


def test_unsupported_requirements_never_reach_the_installer(tmp_path: Path) -> None:
    with pytest.raises(InvalidBundle) as info:
        ensure(CodeStore(tmp_path, Limits()), "--index-url https://evil.example/simple\nsix")
    assert info.value.code == "requirements_unsupported"
    assert layers(tmp_path) == []


@pytest.mark.slow
def test_a_layer_is_built_once_and_then_returned_at_once(tmp_path: Path) -> None:
    code = CodeStore(tmp_path, Limits())
    outputs: tuple[list[str], list[str]] = ([], [])

    async def two_deploys_at_once() -> tuple[Layer, Layer]:
        return await asyncio.gather(
            code.ensure_layer("six==1.16.0\n# same set\n", outputs[0].append),
            code.ensure_layer("six==1.16.0", outputs[1].append),
        )

    first, second = asyncio.run(two_deploys_at_once())
    assert first == second
    assert sorted(map(bool, outputs)) == [False, True], "one build, streamed to its caller"
    assert any("six" in line for line in outputs[0] + outputs[1])
    assert (first.path / "six.py").is_file()
    assert stat.S_IMODE((first.path / "six.py").stat().st_mode) == 0o444
    assert layers(tmp_path) == [first.sha256]

    started = time.monotonic()
    again = ensure(CodeStore(tmp_path, Limits()), "six==1.16.0", pytest.fail)
    assert time.monotonic() - started < 0.5
    assert again == first


@pytest.mark.slow
def test_a_requirement_that_cannot_install_fails_and_leaves_no_layer(tmp_path: Path) -> None:
    with pytest.raises(InvalidBundle) as info:
        ensure(CodeStore(tmp_path, Limits()), "pyfaas-no-such-package-xyz==1.0")
    assert info.value.code == "requirements_install_failed"
    assert "pyfaas-no-such-package-xyz" in info.value.message
    assert layers(tmp_path) == []


@pytest.mark.slow
def test_a_build_over_its_time_limit_fails_and_leaves_no_layer(tmp_path: Path) -> None:
    code = CodeStore(tmp_path, Limits(), layer_build_timeout_s=0.001)
    with pytest.raises(InvalidBundle) as info:
        ensure(code, "six==1.16.0")
    assert info.value.code == "requirements_install_failed"
    assert "longer than" in info.value.message
    assert layers(tmp_path) == []
