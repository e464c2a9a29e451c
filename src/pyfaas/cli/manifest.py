"""An app's ``pyfaas.toml`` (or ``pyfaas.yaml``): its functions and their triggers, read and
checked before any request is made. Each error names the file, the line and the key to fix."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyfaas.cli.app_spec import (
    APP_MARKER,
    CodeSource,
    FunctionSpec,
    ScheduleSpec,
    SourceSpec,
    UrlSpec,
    mark_description,
)
from pyfaas.cli.client import CliError
from pyfaas.cli.toml_lines import KeyLines, TomlLines
from pyfaas.cli.yaml_manifest import load_yaml
from pyfaas.model import FunctionConfig, InvalidFunctionConfig, InvalidRequest, Limits
from pyfaas.model.function import NAME_PATTERN
from pyfaas.model.schedules import MISSED_RUNS
from pyfaas.model.sources import parse_mapping
from pyfaas.model.urls import CorsConfig, validate_auth_type

MANIFEST_NAME = "pyfaas.toml"
YAML_NAMES = ("pyfaas.yaml", "pyfaas.yml")
MAX_APP_NAME = 32  # the marker "[app:NAME] " leaves the description room for the user's text

# Settings a function may take from [defaults] (or set itself), with their TOML types.
_SETTINGS: dict[str, type | tuple[type, ...]] = {
    "runtime": str,
    "memory_mb": int,
    "timeout_s": int,
    "environment": dict,
    "reserved_concurrency": int,
    "provisioned_concurrency": int,
    "concurrency_per_worker": int,
    "idle_timeout_s": int,
    "maximum_retry_attempts": int,
    "maximum_event_age_s": int,
    "price_plan": str,
    "gpus": int,
    "requirements": (str, list),
}
_FUNCTION_KEYS: dict[str, type | tuple[type, ...]] = {
    **_SETTINGS,
    "path": str,
    "handler": str,
    "description": str,
    "wsgi": str,
    "asgi": str,
    "on_success": str,
    "on_failure": str,
    "url": dict,
    "schedules": list,
    "sources": list,
}
_SCHEDULE_KEYS: dict[str, type | tuple[type, ...]] = {
    "expression": str,
    "input": (dict, list, str, int, float, bool),
    "timezone": str,
    "enabled": bool,
    "missed_runs": str,
}
_URL_KEYS: dict[str, type | tuple[type, ...]] = {"auth_type": str, "cors": dict}
_SOURCE_KEYS: dict[str, type | tuple[type, ...]] = {
    "type": str,
    "url": str,
    "stream": str,
    "queue": str,
    "subject": str,
    "consumer_group": str,
    "batch_size": int,
    "maximum_batching_window_s": (int, float),
    "enabled": bool,
    "maximum_retry_attempts": int,
    "on_failure": str,
    "function_response_types": list,
    "starting_position": str,
}
# Ranges the server checks against its own (configurable) limits are left to it; the
# manifest is checked for everything that does not depend on them.
_OPEN_LIMITS = Limits(
    memory_min_mb=0,
    memory_max_mb=2**31,
    timeout_min_s=0,
    timeout_max_s=2**31,
    env_total_bytes=2**31,
    max_concurrency=2**31,
    max_concurrency_per_worker=2**31,
    idle_timeout_max_s=2**31,
    maximum_event_age_min_s=0,
    maximum_event_age_max_s=2**31,
)


class ManifestError(CliError):
    """A mistake in the manifest, located: ``file:line: key: what to fix``."""


@dataclass(frozen=True, slots=True)
class AppManifest:
    """A checked manifest: the app's name and the functions it declares, by name."""

    name: str
    file: Path
    functions: dict[str, FunctionSpec]
    lines: dict[str, int] = field(default_factory=dict)  # function -> line of its table

    def where(self, function: str) -> str:
        """``pyfaas.toml:LINE`` of a function's table, for messages about it."""
        line = self.lines.get(function)
        return f"{self.file.name}:{line}" if line else self.file.name


def find_manifest(directory: Path) -> Path:
    """The manifest of the app in ``directory`` (pyfaas.toml or pyfaas.yaml); raises
    CliError if it has none, or more than one."""
    found = [directory / n for n in (MANIFEST_NAME, *YAML_NAMES) if (directory / n).is_file()]
    if not found:
        raise CliError(
            f"no {MANIFEST_NAME} in {directory} (nor {YAML_NAMES[0]}): run this in an app's "
            "folder, pass --dir/--app, or deploy one function with `pyfaas deploy PATH`"
        )
    if len(found) > 1:
        raise CliError(f"{directory} has {' and '.join(p.name for p in found)}: keep one manifest")
    return found[0]


def load_manifest(directory: Path) -> AppManifest:
    """Read and check the app's ``pyfaas.toml`` (or ``pyfaas.yaml``), hashing each
    function's code.

    Raises ManifestError (with file, line and key) or CliError. Blocking (reads files).
    """
    path = find_manifest(directory)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(f"cannot read {path}: {exc}") from None
    lines: KeyLines
    if path.name in YAML_NAMES:
        try:
            document, lines = load_yaml(path, text)
        except ValueError as exc:
            raise ManifestError(str(exc)) from None
    else:
        try:
            document = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ManifestError(f"{path}: not valid TOML: {exc}") from None
        lines = TomlLines(text)
    if not isinstance(document, dict):
        raise ManifestError(
            f"{path}: the document must be a mapping of app, defaults and functions, "
            f"got {_kind(document)}"
        )
    return _Reader(path, lines).manifest(document)


class _Reader:
    """Checks one parsed document, turning each problem into a located ManifestError."""

    def __init__(self, file: Path, lines: KeyLines) -> None:
        self.file = file
        self.root = file.parent
        self.lines = lines

    def error(self, key: tuple[str | int, ...], message: str) -> ManifestError:
        line = self.lines.line_of(key)
        where = f"{self.file}:{line}" if line else str(self.file)
        dotted = ".".join(f"[{k}]" if isinstance(k, int) else k for k in key).replace(".[", "[")
        return ManifestError(f"{where}: {dotted}: {message}")

    def table(
        self, data: Any, key: tuple[str | int, ...], known: dict[str, type | tuple[type, ...]]
    ) -> dict[str, Any]:
        if not isinstance(data, dict):
            raise self.error(key, f"must be a table, got {_kind(data)}")
        for name, value in data.items():
            if name not in known:
                raise self.error(
                    (*key, name), f"unknown key; known here: {', '.join(sorted(known))}"
                )
            self.typed(value, (*key, name), known[name])
        return data

    def typed(self, value: Any, key: tuple[str | int, ...], typ: type | tuple[type, ...]) -> Any:
        types = typ if isinstance(typ, tuple) else (typ,)
        ok = isinstance(value, types) and not (isinstance(value, bool) and bool not in types)
        if not ok:
            wanted = " or ".join(_TYPE_NAMES[t] for t in types)
            raise self.error(key, f"must be {wanted}, got {_kind(value)} {_short(value)}")
        return value

    def manifest(self, document: dict[str, Any]) -> AppManifest:
        top: dict[str, type | tuple[type, ...]] = {"app": dict, "defaults": dict, "functions": dict}
        self.table(document, (), top)
        app = self.table(document.get("app"), ("app",), {"name": str})
        if "name" not in app:
            raise self.error(("app",), 'needs a name: name = "my-app"')
        name = app["name"]
        if not NAME_PATTERN.match(name) or len(name) > MAX_APP_NAME:
            raise self.error(
                ("app", "name"), f"must be 1-{MAX_APP_NAME} letters, digits, '-' or '_'"
            )
        defaults = self.table(document.get("defaults", {}), ("defaults",), _SETTINGS)
        functions = document.get("functions")
        if not functions:
            raise self.error(
                ("functions",), "declare at least one function: [functions.NAME] with its path"
            )
        self.typed(functions, ("functions",), dict)
        specs = {
            fname: self.function(name, fname, raw, defaults) for fname, raw in functions.items()
        }
        self.check_destinations(specs, functions)
        lines = {f: self.lines.line_of(("functions", f)) or 0 for f in specs}
        return AppManifest(name=name, file=self.file, functions=specs, lines=lines)

    def function(self, app: str, name: str, raw: Any, defaults: dict[str, Any]) -> FunctionSpec:
        key: tuple[str | int, ...] = ("functions", name)
        data = self.table(raw, key, _FUNCTION_KEYS)
        if not NAME_PATTERN.match(name):
            raise self.error(key, "a function name is 1-64 letters, digits, '-' or '_'")
        merged = {**defaults, **data}
        env = {**defaults.get("environment", {}), **data.get("environment", {})}
        for var, value in env.items():
            self.typed(value, (*key, "environment", var), str)
        directory = self.code_dir(key, data.get("path", name))
        requirements = self.requirements(key, merged.get("requirements"))
        config_fields = {
            k: v
            for k, v in merged.items()
            if k in _FUNCTION_KEYS
            and k not in ("path", "requirements", "url", "schedules", "sources")
        }
        config_fields.update(
            name=name,
            environment=env,
            description=mark_description(app, data.get("description", "")),
        )
        try:
            config = FunctionConfig.from_dict(config_fields).validate(_OPEN_LIMITS)
        except InvalidFunctionConfig as exc:
            raise self.error(key + _field_named(exc.message, data), exc.message) from None
        self.check_handler(key, directory, config)
        code = CodeSource.from_directory(directory, requirements)
        return FunctionSpec(
            name=name,
            config=config.to_dict(),
            code=code,
            url=self.url((*key, "url"), data.get("url")),
            schedules=tuple(
                self.schedule((*key, "schedules", i), s)
                for i, s in enumerate(data.get("schedules", []))
            ),
            sources=tuple(
                self.source(name, (*key, "sources", i), s)
                for i, s in enumerate(data.get("sources", []))
            ),
        )

    def code_dir(self, key: tuple[str | int, ...], rel: str) -> Path:
        directory = (self.root / rel).resolve()
        if not directory.is_dir():
            raise self.error(
                (*key, "path"),
                f"{rel!r} is not a directory under {self.root} (a function's path is the "
                "folder that holds its code; it defaults to the function's name)",
            )
        if (directory / MANIFEST_NAME).is_file() and directory != self.root:
            raise self.error((*key, "path"), f"{rel!r} is another app (it has a {MANIFEST_NAME})")
        return directory

    def requirements(self, key: tuple[str | int, ...], value: Any) -> str | None:
        if value is None:
            return None
        if isinstance(value, str):
            path = self.root / value
            try:
                return path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise self.error(
                    (*key, "requirements"),
                    f"cannot read {value!r} ({exc.__class__.__name__}); give a requirements "
                    "file under the app's folder, or a list of requirement lines",
                ) from None
        for i, line in enumerate(value):
            self.typed(line, (*key, "requirements", i), str)
        return "".join(f"{line}\n" for line in value)

    def check_handler(
        self, key: tuple[str | int, ...], directory: Path, cfg: FunctionConfig
    ) -> None:
        if cfg.wsgi or cfg.asgi:
            field_name = "wsgi" if cfg.wsgi else "asgi"
            module = (cfg.wsgi or cfg.asgi or "").partition(":")[0]
        else:
            field_name = "handler"
            module = cfg.handler.rpartition(".")[0]
        rel = module.replace(".", "/")
        if not ((directory / f"{rel}.py").is_file() or (directory / rel / "__init__.py").is_file()):
            raise self.error(
                (*key, field_name),
                f"module {module!r} is not in {directory.relative_to(self.root) or '.'}: "
                f"expected {rel}.py or {rel}/__init__.py there",
            )

    def url(self, key: tuple[str | int, ...], raw: Any) -> UrlSpec | None:
        if raw is None:
            return None
        data = self.table(raw, key, _URL_KEYS)
        if "auth_type" not in data:
            raise self.error(key, 'needs auth_type = "NONE" (anyone may call) or "TOKEN"')
        try:
            auth_type = validate_auth_type(data["auth_type"])
        except InvalidRequest as exc:
            raise self.error((*key, "auth_type"), exc.message) from None
        cors = None
        if "cors" in data:
            try:
                cors = CorsConfig.from_dict(data["cors"]).to_dict()
            except InvalidRequest as exc:
                raise self.error((*key, "cors"), exc.message) from None
        return UrlSpec(auth_type=auth_type, cors=cors)

    def schedule(self, key: tuple[str | int, ...], raw: Any) -> ScheduleSpec:
        data = self.table(raw, key, _SCHEDULE_KEYS)
        if "expression" not in data:
            raise self.error(
                key, 'needs an expression: "rate(5 minutes)", "cron(0 12 * * ? *)" or "*/5 * * * *"'
            )
        missed = data.get("missed_runs", "fire_once")
        if missed not in MISSED_RUNS:
            raise self.error((*key, "missed_runs"), f"must be one of {', '.join(MISSED_RUNS)}")
        if "input" in data:
            try:
                json.dumps(data["input"])
            except TypeError:
                raise self.error(
                    (*key, "input"), "must be JSON: TOML dates and times are not (quote them)"
                ) from None
        return ScheduleSpec(
            expression=data["expression"],
            timezone=data.get("timezone", "UTC"),
            input=data.get("input"),
            enabled=data.get("enabled", True),
            missed_runs=missed,
        )

    def source(self, function: str, key: tuple[str | int, ...], raw: Any) -> SourceSpec:
        data = self.table(raw, key, _SOURCE_KEYS)
        try:
            mapping = parse_mapping({**data, "function": function}, uuid="0" * 32, now=0.0)
        except InvalidRequest as exc:
            raise self.error(key + _field_named(exc.message, data), exc.message) from None
        return SourceSpec.from_mapping(dict(data), mapping.to_dict())

    def check_destinations(self, specs: dict[str, FunctionSpec], raw: dict[str, Any]) -> None:
        """Every destination names a function of the app, and no chain of them loops."""
        edges: dict[str, list[str]] = {}
        for name, spec in specs.items():
            targets = [
                (key, spec.config[key]) for key in ("on_success", "on_failure") if spec.config[key]
            ] + [
                (f"sources[{i}].on_failure", s.body["on_failure"])
                for i, s in enumerate(spec.sources)
                if s.body.get("on_failure")
            ]
            for where, target in targets:
                if target not in specs:
                    path = ("functions", name, *_split_key(where))
                    raise self.error(
                        path,
                        f"{target!r} is not a function of this app; destinations name one of: "
                        + ", ".join(sorted(specs)),
                    )
            edges[name] = [spec.config[k] for k in ("on_success", "on_failure") if spec.config[k]]
        cycle = _find_cycle(edges)
        if cycle:
            first = cycle[0]
            key = "on_success" if specs[first].config["on_success"] == cycle[1] else "on_failure"
            raise self.error(
                ("functions", first, key),
                "destinations form a cycle (" + " -> ".join(cycle) + "): each record would "
                "invoke the chain again forever; break it",
            )


def _find_cycle(edges: dict[str, list[str]]) -> list[str] | None:
    """A path that returns to its start, e.g. ``[a, b, a]``, or None."""
    done: set[str] = set()

    def visit(path: list[str]) -> list[str] | None:
        for nxt in edges.get(path[-1], []):
            if nxt in path:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in done and (found := visit([*path, nxt])):
                return found
        done.add(path[-1])
        return None

    for start in sorted(edges):
        if start not in done and (found := visit([start])):
            return found
    return None


def _field_named(message: str, data: dict[str, Any]) -> tuple[str, ...]:
    """The key of ``data`` a validation message is about (it names the field first)."""
    for word in message.replace("'", " ").replace(",", " ").replace(".", " ").split():
        if word in data:
            return (word,)
    return ()


def _split_key(where: str) -> Iterator[str | int]:
    for part in where.replace("]", "").replace("[", ".").split("."):
        yield int(part) if part.isascii() and part.isdigit() else part


def _kind(value: Any) -> str:
    return _TYPE_NAMES.get(type(value), type(value).__name__)


def _short(value: Any) -> str:
    text = repr(value)
    return f"({text[:40]}...)" if len(text) > 43 else f"({text})"


_TYPE_NAMES: dict[type, str] = {
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "true or false",
    dict: "a table",
    list: "an array",
    type(None): "nothing (null)",
}

__all__ = ["APP_MARKER", "AppManifest", "ManifestError", "find_manifest", "load_manifest"]
