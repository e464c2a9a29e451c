"""Packing a Python function into a deployable bundle (a zip the server accepts).

A function defined in ``__main__`` or a notebook, or nested in another function, is shipped
by value: cloudpickle with its closure. A function of an importable module is shipped as
source, with the module (its whole top-level package). Either way, the local modules it
uses (files outside the standard library and site-packages) are shipped as source too;
modules installed in the environment are expected on the server (or in ``requirements``).
A module with no source to ship raises ShippingError, naming it.
"""

from __future__ import annotations

import ast
import importlib.util
import io
import json
import sys
import sysconfig
import types
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cloudpickle  # type: ignore[import-untyped]

from pyfaas.sdk.errors import ShippingError

ENTRY_MODULE = "pyfaas_entry"
HANDLER = f"{ENTRY_MODULE}.handler"
_ENTRY_SOURCE = Path(__file__).with_name("bundle_entry.py")
_SKIPPED_DIRS = {"__pycache__", ".git", ".ipynb_checkpoints", ".mypy_cache", ".pytest_cache"}
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # fixed: the same code gives the same bundle, byte for byte


@dataclass(frozen=True, slots=True)
class Bundle:
    """The files of a function's bundle, and how its code travels."""

    files: dict[str, bytes]
    shipped: str  # "value" or "source"
    modules: tuple[str, ...]  # local modules shipped as source

    def zip(self) -> bytes:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for name in sorted(self.files):
                info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
                info.external_attr = 0o644 << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                archive.writestr(info, self.files[name])
        return buffer.getvalue()


def build_bundle(fn: Callable[..., Any], *, serializer: str, requirements: Sequence[str]) -> Bundle:
    """The bundle that runs ``fn`` behind pyfaas_entry.handler. Raises ShippingError."""
    files: dict[str, bytes] = {}
    if ships_by_value(fn):
        shipped = "value"
        pickled, used = _pickle_recording_modules(fn)
        files["pyfaas_function.pkl"] = pickled
        spec: dict[str, Any] = {"shipped": "value"}
        local = _local_modules(used, needed_by=_describe(fn))
    else:
        shipped = "source"
        module = fn.__module__
        spec = {"shipped": "source", "module": module, "qualname": fn.__qualname__}
        top = module.partition(".")[0]
        local = _local_modules([top], needed_by=_describe(fn))
        if top not in local:
            raise ShippingError(
                f"cannot ship {_describe(fn)}: its module {module!r} is installed in the "
                "environment, not a local source file; list its distribution in "
                "requirements=[...] and call it from a function of your own"
            )
    spec.update(serializer=serializer, python=list(sys.version_info[:2]))
    for name, path in _with_their_imports(local).items():
        files.update(_module_files(name, path))
    files[f"{ENTRY_MODULE}.py"] = _ENTRY_SOURCE.read_bytes()
    files["pyfaas_function.json"] = json.dumps(spec, sort_keys=True).encode()
    if requirements:
        files["requirements.txt"] = ("\n".join(requirements) + "\n").encode()
    return Bundle(files=files, shipped=shipped, modules=tuple(sorted(local)))


def ships_by_value(fn: Callable[..., Any]) -> bool:
    """True for functions the worker could not import by name: defined in ``__main__`` (a
    script, a notebook) or inside another function, lambdas."""
    module = getattr(fn, "__module__", None)
    qualname = getattr(fn, "__qualname__", "")
    return module in (None, "__main__") or "<" in qualname


def _describe(fn: Callable[..., Any]) -> str:
    return f"function {getattr(fn, '__qualname__', fn)!r}"


class _RecordingPickler(cloudpickle.Pickler):  # type: ignore[misc]
    """cloudpickle, noting the modules of what it pickles by reference (modules, and the
    functions and classes it does not pickle by value): the worker must import them."""

    def __init__(self, file: io.BytesIO) -> None:
        super().__init__(file)
        self.modules: set[str] = set()

    def reducer_override(self, obj: Any) -> Any:
        reduced = super().reducer_override(obj)
        if isinstance(obj, types.ModuleType):
            self.modules.add(obj.__name__)
        elif reduced is NotImplemented and isinstance(
            obj, type | types.FunctionType | types.BuiltinFunctionType
        ):
            # cloudpickle leaves it to pickle: saved by reference, as module + name.
            module = getattr(obj, "__module__", None)
            if isinstance(module, str):
                self.modules.add(module)
        return reduced


def _pickle_recording_modules(fn: Callable[..., Any]) -> tuple[bytes, set[str]]:
    buffer = io.BytesIO()
    pickler = _RecordingPickler(buffer)
    try:
        pickler.dump(fn)
    except Exception as exc:
        raise ShippingError(f"cannot pickle {_describe(fn)} (cloudpickle: {exc})") from None
    tops = {name.partition(".")[0] for name in pickler.modules}
    return buffer.getvalue(), tops - {"__main__"}


def _environment_dirs() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    dirs = {paths[key] for key in ("stdlib", "platstdlib", "purelib", "platlib") if key in paths}
    return tuple(str(Path(d).resolve()) for d in dirs)


def _local_modules(names: Iterable[str], *, needed_by: str) -> dict[str, Path]:
    """Of the top-level module names, the local ones and where their source is (a .py
    file, or a package's directory). Raises ShippingError for one with no source."""
    environment = _environment_dirs()
    local: dict[str, Path] = {}
    for name in sorted(set(names)):
        if name in sys.builtin_module_names or name in sys.stdlib_module_names:
            continue
        module = sys.modules.get(name)
        origin = getattr(module, "__file__", None) if module is not None else None
        if module is None:
            spec = importlib.util.find_spec(name)
            origin = spec.origin if spec is not None else None
            if spec is None or origin in (None, "built-in", "frozen"):
                continue  # not importable here either: the worker reports it at deploy
        if origin is None:
            raise ShippingError(
                f"cannot ship module {name!r} (used by {needed_by}): it has no source file "
                "(made at run time?); define what it holds in a .py file or in the notebook, "
                "or install it on the server and list it in requirements=[...]"
            )
        path = Path(origin).resolve()
        if str(path).startswith(environment):
            continue  # installed: the server has it, or requirements=[...] installs it
        if path.suffix != ".py":
            raise ShippingError(
                f"cannot ship module {name!r} (used by {needed_by}): {path.name} is compiled, "
                "not Python source; install it on the server or list its distribution in "
                "requirements=[...]"
            )
        local[name] = path.parent if path.name == "__init__.py" else path
    return local


def _with_their_imports(local: dict[str, Path]) -> dict[str, Path]:
    """``local`` plus the local modules their source imports, transitively."""
    found = dict(local)
    todo = list(local.items())
    while todo:
        name, path = todo.pop()
        sources = sorted(path.rglob("*.py")) if path.is_dir() else [path]
        imported: set[str] = set()
        for source in sources:
            imported |= _imported_top_levels(source)
        more = _local_modules(imported - set(found), needed_by=f"module {name!r}")
        found.update(more)
        todo.extend(more.items())
    return found


def _imported_top_levels(source: Path) -> set[str]:
    try:
        tree = ast.parse(source.read_bytes(), filename=str(source))
    except SyntaxError:
        return set()  # the worker's import at deploy time reports it
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.partition(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.partition(".")[0])
    return names


def _module_files(name: str, path: Path) -> dict[str, bytes]:
    if not path.is_dir():
        return {f"{name}.py": path.read_bytes()}
    files = {}
    for file in sorted(path.rglob("*")):
        relative = file.relative_to(path)
        skipped = _SKIPPED_DIRS.intersection(relative.parts[:-1])
        if file.is_file() and not skipped and file.suffix not in (".pyc", ".pyo"):
            files[f"{name}/{relative.as_posix()}"] = file.read_bytes()
    return files
