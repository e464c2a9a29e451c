"""Functions: their configuration, identity and the limits they live within."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace
from typing import Any

from pyfaas.model.errors import InvalidFunctionConfig
from pyfaas.model.secrets import validate_secret_refs
from pyfaas.model.web_app import validate_web_app, worker_handler

NAME_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
HANDLER_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$")
ENV_KEY_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
SUPPORTED_RUNTIMES = ("python3.11", "python3.12", "python3.13", "python3.14")
LATEST = "$LATEST"
NETWORK_MODES = ("host", "none")

# Variables the platform sets for every worker; a function may read but not override them.
RESERVED_ENV_KEYS = frozenset(
    {
        "_HANDLER",
        "AWS_EXECUTION_ENV",
        "AWS_LAMBDA_FUNCTION_NAME",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
        "AWS_LAMBDA_FUNCTION_VERSION",
        "AWS_LAMBDA_INITIALIZATION_TYPE",
        "AWS_LAMBDA_LOG_GROUP_NAME",
        "AWS_LAMBDA_LOG_STREAM_NAME",
        "AWS_LAMBDA_RUNTIME_API",
        "LAMBDA_TASK_ROOT",
        "LAMBDA_RUNTIME_DIR",
        "PYTHONPATH",
    }
)


@dataclass(frozen=True, slots=True)
class Limits:
    """Platform limits; Lambda's by default, each configurable on the server."""

    sync_payload_bytes: int = 6 * 1024 * 1024
    # Events in one batch invocation (POST /v1/functions/{name}/invoke-batch); its body as a
    # whole is held to sync_payload_bytes.
    batch_max_items: int = 1000
    async_payload_bytes: int = 256 * 1024
    timeout_min_s: int = 1
    timeout_max_s: int = 900
    memory_min_mb: int = 128
    memory_max_mb: int = 10240
    zipped_code_bytes: int = 50 * 1024 * 1024
    unzipped_code_bytes: int = 250 * 1024 * 1024
    log_bytes_per_invocation: int = 1024 * 1024
    env_total_bytes: int = 4 * 1024
    # Invocations in flight on the whole server (Lambda's account concurrency). A worker
    # serves one at a time unless its function asks for more, so this also caps processes.
    max_concurrency: int = field(default_factory=lambda: 16 * (os.cpu_count() or 1))
    max_concurrency_per_worker: int = 1000
    idle_timeout_max_s: int = 24 * 3600
    # Lambda's ephemeral storage: the size of a worker's writable /tmp.
    ephemeral_storage_min_mb: int = 512
    ephemeral_storage_max_mb: int = 10240
    maximum_event_age_min_s: int = 60
    maximum_event_age_max_s: int = 6 * 3600


# The most accelerators one worker may ask for (a node with 8 GPUs is the common largest).
MAX_GPUS = 8


@dataclass(frozen=True, slots=True)
class FunctionConfig:
    """What a user declares about a function. Validated by :meth:`validate`."""

    name: str
    handler: str = "handler.handler"
    runtime: str = "python3.11"
    memory_mb: int = 128
    timeout_s: int = 3
    environment: dict[str, str] = field(default_factory=dict)
    description: str = ""
    # Scaling: None = no reservation (shares what others leave of the server's total).
    reserved_concurrency: int | None = None
    provisioned_concurrency: int = 0  # workers kept started and initialized at all times
    concurrency_per_worker: int = 1  # >1: one worker serves that many calls at once
    idle_timeout_s: int | None = None  # None = the server's default
    # Asynchronous invocations (Lambda's EventInvokeConfig and destinations).
    maximum_retry_attempts: int = 2
    maximum_event_age_s: int = 6 * 3600
    on_success: str | None = None  # a function that gets a record of each success
    on_failure: str | None = None  # ...of each that failed for good (it also goes to the DLQ)
    # A web app ("module:attribute") run behind pyfaas's adapter instead of the handler.
    wsgi: str | None = None
    asgi: str | None = None
    # Metering: the server's price plan this function's usage is costed with (None: default).
    price_plan: str | None = None
    # Environment variables whose values are the server's secrets: {"VARIABLE": "secret"}.
    secrets: dict[str, str] = field(default_factory=dict)
    # Isolation: the size of the workers' writable /tmp (Lambda's ephemeral storage), and
    # whether they reach the network ("host") or have none at all ("none", needs a sandbox).
    ephemeral_storage_mb: int = 512
    network: str = "host"
    # Accelerators each worker needs: the Ray executor asks Ray for them (num_gpus) and
    # the worker sees its own in CUDA_VISIBLE_DEVICES; the local executor has none to give.
    gpus: int = 0

    def validate(self, limits: Limits) -> FunctionConfig:
        """Return self if every field is acceptable; else raise InvalidFunctionConfig."""
        validate_name(self.name)
        if not HANDLER_PATTERN.match(self.handler):
            raise InvalidFunctionConfig(
                f"handler {self.handler!r} must look like 'module.function' "
                "(e.g. 'handler.handler' for def handler(event, context) in handler.py)",
                code="invalid_handler",
            )
        if self.runtime not in SUPPORTED_RUNTIMES:
            raise InvalidFunctionConfig(
                f"runtime {self.runtime!r} is not supported; use one of "
                + ", ".join(SUPPORTED_RUNTIMES),
                code="invalid_runtime",
            )
        if not limits.memory_min_mb <= self.memory_mb <= limits.memory_max_mb:
            raise InvalidFunctionConfig(
                f"memory_mb {self.memory_mb} is outside {limits.memory_min_mb}-"
                f"{limits.memory_max_mb} MB",
                code="invalid_memory",
            )
        if not limits.timeout_min_s <= self.timeout_s <= limits.timeout_max_s:
            raise InvalidFunctionConfig(
                f"timeout_s {self.timeout_s} is outside {limits.timeout_min_s}-"
                f"{limits.timeout_max_s} seconds",
                code="invalid_timeout",
            )
        if len(self.description) > 256:
            raise InvalidFunctionConfig(
                "description is longer than 256 characters", code="invalid_description"
            )
        validate_environment(self.environment, limits)
        validate_secret_refs(self.secrets, self.environment, RESERVED_ENV_KEYS)
        self._validate_scaling(limits)
        self._validate_async(limits)
        validate_web_app(self.wsgi, self.asgi)
        if self.price_plan is not None and not NAME_PATTERN.match(self.price_plan):
            raise InvalidFunctionConfig(
                f"price_plan {self.price_plan!r} must name one of the server's price plans "
                "(1-64 letters, digits, '-', '_'), or be null for the default",
                code="invalid_price_plan",
            )
        self._validate_isolation(limits)
        return self

    def _validate_isolation(self, limits: Limits) -> None:
        _in_range(
            "ephemeral_storage_mb", self.ephemeral_storage_mb, limits.ephemeral_storage_min_mb,
            limits.ephemeral_storage_max_mb, "invalid_ephemeral_storage", " MB",
        )  # fmt: skip
        if self.network not in NETWORK_MODES:
            raise InvalidFunctionConfig(
                f"network {self.network!r} must be one of {', '.join(NETWORK_MODES)} "
                "('none': no network at all, not even loopback)",
                code="invalid_network",
            )
        _in_range("gpus", self.gpus, 0, MAX_GPUS, "invalid_gpus", " per worker")

    @property
    def worker_handler(self) -> str:
        """What workers load: the handler, or ``wsgi:module:app`` / ``asgi:module:app``."""
        return worker_handler(self.handler, self.wsgi, self.asgi)

    def _validate_async(self, limits: Limits) -> None:
        _in_range("maximum_retry_attempts", self.maximum_retry_attempts, 0, 2, "invalid_retries")
        _in_range(
            "maximum_event_age_s", self.maximum_event_age_s, limits.maximum_event_age_min_s,
            limits.maximum_event_age_max_s, "invalid_event_age", " seconds",
        )  # fmt: skip
        for key, target in (("on_success", self.on_success), ("on_failure", self.on_failure)):
            if target is not None and not NAME_PATTERN.match(target):
                raise InvalidFunctionConfig(
                    f"{key} {target!r} must name a function (1-64 letters, digits, '-', '_'), "
                    "or be null",
                    code="invalid_destination",
                )
            if target == self.name:
                raise InvalidFunctionConfig(
                    f"{key} may not be the function itself: each record would invoke it again",
                    code="invalid_destination",
                )

    def _validate_scaling(self, limits: Limits) -> None:
        reserved = self.reserved_concurrency
        if reserved is not None:
            _in_range(
                "reserved_concurrency", reserved, 0, limits.max_concurrency,
                "invalid_concurrency", "; use null for no reservation",
            )  # fmt: skip
        _in_range(
            "provisioned_concurrency", self.provisioned_concurrency, 0,
            limits.max_concurrency if reserved is None else reserved, "invalid_concurrency",
            "" if reserved is None else " (it may not exceed reserved_concurrency)",
        )  # fmt: skip
        _in_range(
            "concurrency_per_worker", self.concurrency_per_worker, 1,
            limits.max_concurrency_per_worker, "invalid_concurrency",
        )  # fmt: skip
        if self.idle_timeout_s is not None:
            _in_range(
                "idle_timeout_s", self.idle_timeout_s, 1, limits.idle_timeout_max_s,
                "invalid_idle_timeout", " seconds; use null for the server's default",
            )  # fmt: skip

    def with_changes(self, **changes: Any) -> FunctionConfig:
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "handler": self.handler,
            "runtime": self.runtime,
            "memory_mb": self.memory_mb,
            "timeout_s": self.timeout_s,
            "environment": dict(self.environment),
            "description": self.description,
            "reserved_concurrency": self.reserved_concurrency,
            "provisioned_concurrency": self.provisioned_concurrency,
            "concurrency_per_worker": self.concurrency_per_worker,
            "idle_timeout_s": self.idle_timeout_s,
            "maximum_retry_attempts": self.maximum_retry_attempts,
            "maximum_event_age_s": self.maximum_event_age_s,
            "on_success": self.on_success,
            "on_failure": self.on_failure,
            "wsgi": self.wsgi,
            "asgi": self.asgi,
            "price_plan": self.price_plan,
            "secrets": dict(self.secrets),
            "ephemeral_storage_mb": self.ephemeral_storage_mb,
            "network": self.network,
            "gpus": self.gpus,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FunctionConfig:
        """Build from a client's JSON object; unknown or mistyped fields are a clear error."""
        if not isinstance(data, dict):
            raise InvalidFunctionConfig("function configuration must be a JSON object")
        check_fields(data)
        if "name" not in data:
            raise InvalidFunctionConfig("a function needs a name", code="invalid_name")
        env = data.get("environment", {})
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
            raise InvalidFunctionConfig(
                "environment must map strings to strings", code="invalid_environment"
            )
        refs = data.get("secrets", {})
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in refs.items()):
            raise InvalidFunctionConfig(
                "secrets must map variable names to secret names", code="invalid_secrets"
            )
        return cls(**data)


# Each configuration field's JSON type, and whether null is allowed.
_FIELD_TYPES: dict[str, tuple[type, bool]] = {
    "name": (str, False),
    "handler": (str, False),
    "runtime": (str, False),
    "memory_mb": (int, False),
    "timeout_s": (int, False),
    "environment": (dict, False),
    "description": (str, False),
    "reserved_concurrency": (int, True),
    "provisioned_concurrency": (int, False),
    "concurrency_per_worker": (int, False),
    "idle_timeout_s": (int, True),
    "maximum_retry_attempts": (int, False),
    "maximum_event_age_s": (int, False),
    "on_success": (str, True),
    "on_failure": (str, True),
    "wsgi": (str, True),
    "asgi": (str, True),
    "price_plan": (str, True),
    "secrets": (dict, False),
    "ephemeral_storage_mb": (int, False),
    "network": (str, False),
    "gpus": (int, False),
}


def check_fields(data: dict[str, Any]) -> None:
    """Raise InvalidFunctionConfig for unknown or mistyped configuration fields."""
    unknown = sorted(set(data) - set(_FIELD_TYPES))
    if unknown:
        raise InvalidFunctionConfig(
            f"unknown configuration field(s): {', '.join(unknown)}; known: "
            + ", ".join(sorted(_FIELD_TYPES)),
            code="unknown_field",
        )
    for key, value in data.items():
        typ, nullable = _FIELD_TYPES[key]
        if value is None and nullable:
            continue
        if not isinstance(value, typ) or isinstance(value, bool):
            raise InvalidFunctionConfig(
                f"{key} must be {'null or ' if nullable else ''}of type {typ.__name__}, "
                f"got {type(value).__name__}",
                code="invalid_type",
            )


def _in_range(field: str, value: int, low: int, high: int, code: str, hint: str = "") -> None:
    if not low <= value <= high:
        raise InvalidFunctionConfig(f"{field} {value} is outside {low}-{high}{hint}", code=code)


def validate_name(name: str) -> str:
    """Raise InvalidFunctionConfig unless ``name`` is 1-64 letters, digits, '-' or '_'."""
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise InvalidFunctionConfig(
            f"invalid function name {name!r}: use 1-64 letters, digits, '-' or '_'",
            code="invalid_name",
        )
    return name


def validate_environment(env: dict[str, str], limits: Limits) -> None:
    for key in env:
        if not ENV_KEY_PATTERN.match(key):
            raise InvalidFunctionConfig(
                f"environment variable name {key!r} must start with a letter and hold only "
                "letters, digits and '_'",
                code="invalid_environment",
            )
        if key in RESERVED_ENV_KEYS or key.startswith("AWS_LAMBDA_"):
            raise InvalidFunctionConfig(
                f"environment variable {key!r} is reserved by the runtime",
                code="reserved_environment_variable",
            )
    size = sum(len(k.encode()) + len(v.encode()) for k, v in env.items())
    if size > limits.env_total_bytes:
        raise InvalidFunctionConfig(
            f"environment variables total {size} bytes, over the "
            f"{limits.env_total_bytes}-byte limit",
            code="invalid_environment",
        )


@dataclass(frozen=True, slots=True)
class FunctionRecord:
    """A deployed function as stored: its config, the code it runs and when it changed."""

    config: FunctionConfig
    code_sha256: str
    code_size: int
    layer_sha256: str | None
    version: str
    created_at: float
    updated_at: float

    @property
    def name(self) -> str:
        return self.config.name

    def to_dict(self) -> dict[str, Any]:
        out = self.config.to_dict()
        out.update(
            code_sha256=self.code_sha256,
            code_size=self.code_size,
            layer_sha256=self.layer_sha256,
            version=self.version,
            created_at=self.created_at,
            updated_at=self.updated_at,
        )
        return out
