"""Code shipped to Ray nodes (executor/ray_code.py) without Ray: a tree packed on the server is
unpacked once per node, keeps modes and mtimes, and a node that has it never fetches it."""

from __future__ import annotations

import asyncio
import os
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyfaas.executor.ray_code import (
    ShippedTree,
    node_cache_root,
    pack_tree,
    sweep_node_cache,
    unpacked_tree,
)


@pytest.fixture()
def node_tmp(tmp_path: Path) -> Iterator[Path]:
    """This test's node: its own TMPDIR, so its code cache starts empty."""
    saved = tempfile.tempdir
    tempfile.tempdir = str(tmp_path / "node")
    (tmp_path / "node").mkdir()
    try:
        yield tmp_path / "node"
    finally:
        tempfile.tempdir = saved


def a_layer(root: Path) -> Path:
    """A read-only tree, as a built layer is, with a file of a known old mtime."""
    (root / "pkg").mkdir(parents=True)
    module = root / "pkg" / "mod.py"
    module.write_text("VALUE = 1\n")
    os.utime(module, (1_000_000_000, 1_000_000_000))
    for path in (module, root / "pkg", root):
        path.chmod(path.stat().st_mode & ~0o222)
    return root


def resolved(data: bytes) -> asyncio.Future[bytes]:
    future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
    future.set_result(data)
    return future


def test_a_tree_is_unpacked_once_with_its_modes_and_mtimes(tmp_path: Path, node_tmp: Path) -> None:
    data = pack_tree(a_layer(tmp_path / "layer"))

    async def main() -> list[Path]:
        tree = ShippedTree("layer-abc", resolved(data))
        return list(await asyncio.gather(*(unpacked_tree(tree) for _ in range(4))))

    places = asyncio.run(main())
    assert set(places) == {node_cache_root() / "layer-abc"}
    assert str(places[0]).startswith(str(node_tmp))
    module = places[0] / "pkg" / "mod.py"
    assert module.read_text() == "VALUE = 1\n"
    assert module.stat().st_mtime == 1_000_000_000, "a layer's bytecode must stay valid"
    assert not module.stat().st_mode & stat.S_IWUSR
    leftovers = [
        p.name for p in node_cache_root().iterdir() if not p.name.endswith((".lock", ".use"))
    ]
    assert leftovers == ["layer-abc"], "no partial extraction is left behind"


def test_a_node_that_has_the_tree_does_not_fetch_it(tmp_path: Path, node_tmp: Path) -> None:
    code = tmp_path / "code"
    code.mkdir()
    (code / "app.py").write_text("def handler(e, c):\n    return 1\n")
    data = pack_tree(code)

    async def main() -> Path:
        await unpacked_tree(ShippedTree("code-1", resolved(data)))
        never: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        never.set_exception(AssertionError("fetched although the node has it"))
        return await unpacked_tree(ShippedTree("code-1", never))

    assert (asyncio.run(main()) / "app.py").is_file()


def test_packing_a_missing_directory_is_an_os_error(tmp_path: Path) -> None:
    with pytest.raises(OSError, match="does not exist"):
        pack_tree(tmp_path / "gone")


# Another actor process on the node: unpacks the trees named on its command line (from
# the tar in the file given first), then holds them until its stdin closes.
ACTOR = """
import asyncio, sys
from pyfaas.executor.ray_code import ShippedTree, unpacked_tree
data = open(sys.argv[1], "rb").read()
async def main():
    for key in sys.argv[2:]:
        done = asyncio.get_running_loop().create_future()
        done.set_result(data)
        await unpacked_tree(ShippedTree(key, done))
asyncio.run(main())
print("holding", flush=True)
sys.stdin.read()
"""


def actor(node: Path, tar: Path, *keys: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", ACTOR, str(tar), *keys],
        env={**os.environ, "TMPDIR": str(node)},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline() == "holding\n"
    return proc


def test_unpacking_a_tree_removes_old_ones_no_actor_holds_and_keeps_the_rest(
    tmp_path: Path, node_tmp: Path
) -> None:
    code = tmp_path / "code"
    code.mkdir()
    (code / "app.py").write_text("def handler(e, c):\n    return 1\n")
    tar = tmp_path / "code.tar"
    tar.write_bytes(pack_tree(code))
    gone = actor(node_tmp, tar, "old-free", "fresh-free")
    gone.communicate("")  # that actor ended: nothing holds its trees any more
    running = actor(node_tmp, tar, "old-held")
    try:
        root = node_cache_root()
        hours_ago = time.time() - 2 * 3600
        for key in ("old-free", "old-held"):
            os.utime(root / f".{key}.use", (hours_ago, hours_ago))

        async def unpack_new() -> Path:
            done = asyncio.get_running_loop().create_future()
            done.set_result(tar.read_bytes())
            return await unpacked_tree(ShippedTree("new", done), keep_s=3600)

        assert (asyncio.run(unpack_new()) / "app.py").is_file()
        trees = sorted(p.name for p in root.iterdir() if not p.name.startswith("."))
        assert trees == ["fresh-free", "new", "old-held"], "old-free was unused for 2 hours"
    finally:
        running.communicate("")
    # Its actor gone, the old tree goes at the next sweep; what this process runs stays.
    assert sweep_node_cache(root, 3600) == ["old-held"]
    assert sorted(p.name for p in root.iterdir() if not p.name.startswith(".")) == [
        "fresh-free",
        "new",
    ]
