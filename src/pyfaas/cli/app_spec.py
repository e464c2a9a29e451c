"""The state of an app's functions and triggers, in one shape whether it is wanted (read
from the manifest, or a snapshot to roll back to) or deployed (read from the server)."""

from __future__ import annotations

import contextlib
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from pyfaas.model import FunctionConfig
from pyfaas.model.sources import CREATE_FIELDS, MUTABLE_FIELDS
from pyfaas.packaging.archive import SKIPPED_DIRS, zip_directory
from pyfaas.packaging.tree_hash import directory_sha256

# A function belongs to app NAME when its description starts with this marker: the server
# stores it as it stores any description, so app membership needs no schema of its own.
APP_MARKER = "[app:{}]"
_MARKER = re.compile(r"^\[app:([A-Za-z0-9_-]{1,64})\](?: |$)")
# The settings of a function that an app declares (all but its name).
CONFIG_KEYS = tuple(f.name for f in fields(FunctionConfig) if f.name != "name")
# What tells two mappings apart: a mapping with other values here is another mapping.
SOURCE_IDENTITY = tuple(k for k in CREATE_FIELDS if k not in MUTABLE_FIELDS)
_SOURCE_SETTINGS = tuple(k for k in CREATE_FIELDS if k != "function")


def mark_description(app: str, description: str) -> str:
    """``description`` prefixed with the marker of ``app``."""
    return f"{APP_MARKER.format(app)} {description}".rstrip()


def app_of(description: str) -> str | None:
    """The app a function's description marks it as part of, or None."""
    found = _MARKER.match(description)
    return found.group(1) if found else None


@dataclass(frozen=True, slots=True)
class CodeSource:
    """A function's code: a directory (with ``requirements`` written over its own
    requirements.txt, if given) or a zip file, and the tree hash the server will give it."""

    sha256: str
    directory: Path | None = None
    requirements: str | None = None
    zip_path: Path | None = None

    @classmethod
    def from_directory(cls, directory: Path, requirements: str | None) -> CodeSource:
        """Hash ``directory`` as it will be uploaded. Blocking (reads every file)."""
        with _staged(directory, requirements) as tree:
            return cls(directory_sha256(tree), directory, requirements)

    @contextlib.contextmanager
    def zipped(self) -> Iterator[Path]:
        """A zip of the code, for an upload; removed afterwards."""
        if self.zip_path is not None:
            yield self.zip_path
            return
        assert self.directory is not None
        with (
            _staged(self.directory, self.requirements) as tree,
            tempfile.TemporaryDirectory(prefix="pyfaas-bundle-") as scratch,
        ):
            target = Path(scratch) / "code.zip"
            with target.open("wb") as out:
                zip_directory(tree, out)
            yield target


@contextlib.contextmanager
def _staged(directory: Path, requirements: str | None) -> Iterator[Path]:
    """``directory`` itself, or a copy of it with ``requirements`` as its requirements.txt."""
    if requirements is None:
        yield directory
        return
    with tempfile.TemporaryDirectory(prefix="pyfaas-app-") as scratch:
        copy = Path(scratch) / "code"
        shutil.copytree(
            directory, copy, symlinks=True, ignore=shutil.ignore_patterns(*SKIPPED_DIRS)
        )
        (copy / "requirements.txt").unlink(missing_ok=True)
        (copy / "requirements.txt").write_text(requirements, encoding="utf-8")
        yield copy


@dataclass(frozen=True, slots=True)
class UrlSpec:
    """A function URL's settings (``cors`` as the server renders it, or None)."""

    auth_type: str
    cors: dict[str, Any] | None

    def body(self) -> dict[str, Any]:
        return {"auth_type": self.auth_type, "cors": self.cors}

    @classmethod
    def from_server(cls, data: dict[str, Any]) -> UrlSpec:
        return cls(auth_type=data["auth_type"], cors=data.get("cors"))

    def label(self) -> str:
        origins = ", ".join((self.cors or {}).get("allow_origins", []))
        return f"url auth={self.auth_type}" + (f" cors={origins}" if origins else "")


@dataclass(frozen=True, slots=True)
class ScheduleSpec:
    """A schedule's settings, with the server's defaults filled in."""

    expression: str
    timezone: str = "UTC"
    input: Any = None
    enabled: bool = True
    missed_runs: str = "fire_once"

    def body(self) -> dict[str, Any]:
        return {
            "expression": self.expression,
            "timezone": self.timezone,
            "input": self.input,
            "enabled": self.enabled,
            "missed_runs": self.missed_runs,
        }

    @classmethod
    def from_server(cls, data: dict[str, Any]) -> ScheduleSpec:
        return cls(**{k: data[k] for k in cls.__slots__})

    def label(self) -> str:
        extra = "" if self.timezone == "UTC" else f" {self.timezone}"
        return f"schedule {self.expression}{extra}" + ("" if self.enabled else " (disabled)")


@dataclass(frozen=True, slots=True)
class SourceSpec:
    """An event source mapping: ``body`` is what creates it (without the function),
    ``settings`` what it is compared by (as the server renders it: password hidden)."""

    body: dict[str, Any]
    settings: dict[str, Any]

    @classmethod
    def from_mapping(cls, body: dict[str, Any], rendered: dict[str, Any]) -> SourceSpec:
        """From the manifest's ``body`` and the model's rendering of it (defaults filled).
        A consumer group the manifest leaves to the server is not compared."""
        settings = {k: rendered.get(k) for k in _SOURCE_SETTINGS}
        if "consumer_group" not in body:
            del settings["consumer_group"]
        return cls(body=body, settings=settings)

    @classmethod
    def from_server(cls, data: dict[str, Any]) -> SourceSpec:
        settings = {k: data.get(k) for k in _SOURCE_SETTINGS}
        body = {k: v for k, v in settings.items() if v is not None}
        if body.get("type") == "rabbitmq":
            body.pop("starting_position", None)
        return cls(body=body, settings=settings)

    def identity(self) -> tuple[Any, ...]:
        return tuple(self.settings.get(k) for k in SOURCE_IDENTITY)

    def matches(self, deployed: SourceSpec) -> bool:
        """Whether ``deployed`` is this mapping (its settings may differ)."""
        return all(
            deployed.settings.get(k) == v for k, v in self.settings.items() if k in SOURCE_IDENTITY
        )

    def changes(self, deployed: SourceSpec) -> dict[str, Any]:
        """The settings PATCH must change to turn ``deployed`` into this."""
        return {
            k: self.settings[k]
            for k in MUTABLE_FIELDS
            if k in self.settings and deployed.settings.get(k) != self.settings[k]
        }

    def label(self) -> str:
        name = self.settings.get("stream") or self.settings.get("queue")
        return f"source {self.settings['type']} {name}"


@dataclass(frozen=True, slots=True)
class FunctionSpec:
    """One function of an app as wanted: its full configuration, its code and its triggers."""

    name: str
    config: dict[str, Any]
    code: CodeSource
    url: UrlSpec | None = None
    schedules: tuple[ScheduleSpec, ...] = ()
    sources: tuple[SourceSpec, ...] = ()


@dataclass(frozen=True, slots=True)
class DeployedFunction:
    """One function as the server has it, with the ids of its schedules and mappings."""

    name: str
    config: dict[str, Any]
    code_sha256: str
    updated_at: float
    url: UrlSpec | None
    schedules: tuple[tuple[str, ScheduleSpec], ...]
    sources: tuple[tuple[str, SourceSpec], ...]

    @property
    def app(self) -> str | None:
        return app_of(self.config.get("description", ""))
