"""The one configuration object of a pyfaas server, from defaults, pyfaas.toml and PYFAAS_*."""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyfaas.model import ConfigurationError, Limits, PricePlan
from pyfaas.telemetry.tracing import EXPORTERS

EXECUTORS = ("local", "ray")
_FLOAT_SETTINGS = (
    "idle_timeout_s",
    "queue_wait_s",
    "retry_base_s",
    "event_lease_s",
    "source_backoff_s",
    "schedule_poll_s",
    "rollout_poll_s",
    "log_retention_s",
    "log_sweep_interval_s",
    "auth_failure_window_s",
    "token_cache_s",
)


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """Everything a server needs to start.

    Precedence, lowest first: defaults, the ``[server]`` and ``[limits]`` tables of
    ``pyfaas.toml``, ``PYFAAS_*`` environment variables, explicit overrides (CLI flags).
    """

    home: Path = Path(".pyfaas")
    database_url: str | None = None
    host: str = "127.0.0.1"
    port: int = 8080
    token: str | None = None
    # Where workers run: "local" processes, or "ray" actors on the Ray cluster at
    # ray_address (None: a local Ray started with the server, sized to this machine).
    executor: str = "local"
    ray_address: str | None = None
    idle_timeout_s: float = 600.0
    # How long a call past its concurrency limit waits for a slot before a 429.
    queue_wait_s: float = 1.0
    # Async invocations: the wait before the first retry of a failed event, doubled for each
    # further one (Lambda waits about a minute, then two).
    retry_base_s: float = 60.0
    # A claimed async event is this server's for this long unless renewed (it renews running
    # ones every third of it); after a crash, other servers on a shared PostgreSQL deliver it
    # again once it lapses. A SQLite server requeues at start what it had running.
    event_lease_s: float = 30.0
    # How often a server reads the schedules from the store (it also wakes for each slot);
    # a slot more than max(0.25 s, 3 x this) overdue counts as missed.
    schedule_poll_s: float = 1.0
    # How often a canary rollout's new version is measured (its error rate) while watched.
    rollout_poll_s: float = 1.0
    # Event sources: the wait before a failed batch's first retry and before reconnecting
    # to a broker that went away, doubled each time up to a minute.
    source_backoff_s: float = 1.0
    region: str = "us-east-1"
    account_id: str = "000000000000"
    deploy_dir: Path | None = None
    limits: Limits = field(default_factory=Limits)
    # Metering: record the usage of every invocation (off only to measure what it costs).
    metering: bool = True
    # Invocation logs: store each invocation's START, output, END and REPORT lines (off only
    # to measure what logging costs, together with metering: bench/invoke.py).
    invocation_logs: bool = True
    # OpenTelemetry spans per invocation: none, console (printed) or otlp (OTLP/HTTP to
    # OTEL_EXPORTER_OTLP_ENDPOINT); console and otlp need the otel extra.
    tracing: str = "none"
    # Price plans from pyfaas.toml's [prices.NAME] tables; "default" always exists (Lambda's
    # x86 prices unless [prices.default] or PYFAAS_PRICE_* say otherwise).
    price_plans: tuple[PricePlan, ...] = (PricePlan(),)
    # Log retention, applied by a sweeper every log_sweep_interval_s: records older than
    # log_retention_s go, and each function keeps its newest log_retention_bytes of log text
    # (0 turns either off).
    log_retention_s: float = 7 * 24 * 3600.0
    log_retention_bytes: int = 256 * 1024 * 1024
    log_sweep_interval_s: float = 60.0
    # Handler output waiting to be stored, all functions together; beyond it an invocation's
    # output is replaced by a marker line and counted as dropped.
    log_buffer_bytes: int = 64 * 1024 * 1024
    # Access control: the key secrets are encrypted with (else $home/secret.key), how many
    # failed authentications an address may have in a window before it gets 429s, how long
    # a verified API token is trusted from memory (revocation delay across servers), and
    # the most bytes of request headers.
    secret_key: str | None = field(default=None, repr=False)
    auth_failure_limit: int = 10
    auth_failure_window_s: float = 60.0
    token_cache_s: float = 1.0
    max_header_bytes: int = 16 * 1024
    # The Lambda API's SigV4 access keys (id, secret). With none and no token, a
    # loopback-bound server accepts any Lambda API request from loopback (dev mode).
    access_keys: tuple[tuple[str, str], ...] = ()
    # Workers in a bubblewrap sandbox: "auto" when the machine can, "off", or "required"
    # (refuse to start without it). `pyfaas doctor` says what is enforced.
    sandbox: str = "auto"

    @property
    def store_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.home / 'pyfaas.db').resolve()}"

    @property
    def is_loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    def check(self) -> ServerConfig:
        """Raise ConfigurationError for settings that cannot work; return self otherwise."""
        if self.executor not in EXECUTORS:
            raise ConfigurationError(
                f"executor {self.executor!r} is not available; use one of {', '.join(EXECUTORS)}"
            )
        if self.ray_address and self.executor != "ray":
            raise ConfigurationError("ray_address is set but executor is not ray")
        if self.executor == "ray" and self.sandbox == "required":
            raise ConfigurationError(
                "sandbox = required, but the Ray executor runs workers without the sandbox; "
                "use sandbox auto or off with executor ray"
            )
        if not 0 <= self.port <= 65535:
            raise ConfigurationError(f"port {self.port} is not a TCP port (0-65535)")
        if not self.is_loopback and not self.token:
            raise ConfigurationError(
                f"refusing to listen on {self.host} without an API token: set PYFAAS_TOKEN "
                "(or --token) so that only callers holding it get in, or bind to 127.0.0.1"
            )
        if self.idle_timeout_s <= 0:
            raise ConfigurationError("idle_timeout_s must be positive")
        if not 0 <= self.queue_wait_s <= 60:
            raise ConfigurationError("queue_wait_s must be between 0 and 60 seconds")
        if not 0 <= self.retry_base_s <= 3600:
            raise ConfigurationError("retry_base_s must be between 0 and 3600 seconds")
        if not 1 <= self.event_lease_s <= 3600:
            raise ConfigurationError("event_lease_s must be between 1 and 3600 seconds")
        if not 0.01 <= self.schedule_poll_s <= 60:
            raise ConfigurationError("schedule_poll_s must be between 0.01 and 60 seconds")
        if not 0.01 <= self.rollout_poll_s <= 60:
            raise ConfigurationError("rollout_poll_s must be between 0.01 and 60 seconds")
        if not 0.01 <= self.source_backoff_s <= 60:
            raise ConfigurationError("source_backoff_s must be between 0.01 and 60 seconds")
        if self.tracing not in EXPORTERS:
            raise ConfigurationError(
                f"tracing must be one of {', '.join(EXPORTERS)}, not {self.tracing!r}"
            )
        if self.limits.max_concurrency < 1:
            raise ConfigurationError("limits.max_concurrency must be at least 1")
        if self.limits.batch_max_items < 1:
            raise ConfigurationError("limits.batch_max_items must be at least 1")
        if self.log_retention_s < 0 or self.log_retention_bytes < 0:
            raise ConfigurationError(
                "log_retention_s and log_retention_bytes must be 0 (keep) or positive"
            )
        if not 0.01 <= self.log_sweep_interval_s <= 86400:
            raise ConfigurationError("log_sweep_interval_s must be between 0.01 and 86400 seconds")
        if self.log_buffer_bytes < 1024:
            raise ConfigurationError("log_buffer_bytes must be at least 1024")
        if self.auth_failure_limit < 1 or not 0.1 <= self.auth_failure_window_s <= 86400:
            raise ConfigurationError(
                "auth_failure_limit must be at least 1 and auth_failure_window_s between "
                "0.1 and 86400 seconds"
            )
        if not 0 <= self.token_cache_s <= 60:
            raise ConfigurationError("token_cache_s must be between 0 and 60 seconds")
        if not 1024 <= self.max_header_bytes <= 1024 * 1024:
            raise ConfigurationError("max_header_bytes must be between 1024 and 1048576")
        if self.sandbox not in ("auto", "off", "required"):
            raise ConfigurationError(f"sandbox must be auto, off or required, got {self.sandbox!r}")
        return self

    @classmethod
    def load(
        cls,
        *,
        file: Path | None = None,
        env: Mapping[str, str] | None = None,
        **overrides: Any,
    ) -> ServerConfig:
        """Build the configuration; raises ConfigurationError naming the bad setting."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        limits: dict[str, Any] = {}
        plans: dict[str, Any] = {}
        path = file or Path(env.get("PYFAAS_CONFIG", "pyfaas.toml"))
        if path.is_file():
            try:
                doc = tomllib.loads(path.read_text())
            except tomllib.TOMLDecodeError as exc:
                raise ConfigurationError(f"{path}: {exc}") from None
            values.update(doc.get("server", {}))
            limits.update(doc.get("limits", {}))
            plans.update(doc.get("prices", {}))
        elif file is not None:
            raise ConfigurationError(f"configuration file {file} does not exist")
        for f in dataclasses.fields(cls):
            if f.name not in ("limits", "price_plans") and f"PYFAAS_{f.name.upper()}" in env:
                values[f.name] = env[f"PYFAAS_{f.name.upper()}"]
        for f in dataclasses.fields(Limits):
            if f"PYFAAS_LIMIT_{f.name.upper()}" in env:
                limits[f.name] = env[f"PYFAAS_LIMIT_{f.name.upper()}"]
        values.update({k: v for k, v in overrides.items() if v is not None})
        try:
            built_limits = Limits(**{k: int(v) for k, v in limits.items()})
            config = cls(
                limits=built_limits, price_plans=_price_plans(plans, env), **_coerce(values)
            )
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(f"bad configuration value: {exc}") from None
        # Workers run in their own directories: every path they are given must be absolute.
        return dataclasses.replace(
            config,
            home=config.home.resolve(),
            deploy_dir=config.deploy_dir.resolve() if config.deploy_dir else None,
        ).check()


def _coerce(values: dict[str, Any]) -> dict[str, Any]:
    known = {f.name: f for f in dataclasses.fields(ServerConfig)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ConfigurationError(f"unknown server setting(s): {', '.join(unknown)}")
    out: dict[str, Any] = {}
    for key, value in values.items():
        if key in ("home", "deploy_dir"):
            out[key] = Path(value)
        elif key == "port":
            out[key] = int(value)
        elif key in _FLOAT_SETTINGS:
            out[key] = float(value)
        elif key in ("metering", "invocation_logs"):
            out[key] = _boolean(key, value)
        elif key in ("log_retention_bytes", "log_buffer_bytes") or key in (
            "auth_failure_limit",
            "max_header_bytes",
        ):
            out[key] = int(value)
        elif key == "access_keys":
            out[key] = _access_keys(value)
        else:
            out[key] = value
    return out


def _boolean(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ConfigurationError(f"{key} must be true or false, got {value!r}")


def _price_plans(tables: dict[str, Any], env: Mapping[str, str]) -> tuple[PricePlan, ...]:
    """The [prices.NAME] tables, with PYFAAS_PRICE_* applied to the default plan."""
    plans = {name: dict(fields) for name, fields in tables.items() if isinstance(fields, dict)}
    bad = sorted(name for name, fields in tables.items() if not isinstance(fields, dict))
    if bad:
        raise ConfigurationError(f"[prices] entries must be tables ([prices.NAME]): {bad}")
    default = plans.setdefault("default", {})
    for key in ("per_gb_second", "per_million_requests", "currency"):
        if f"PYFAAS_PRICE_{key.upper()}" in env:
            default[key] = env[f"PYFAAS_PRICE_{key.upper()}"]
    return tuple(PricePlan.parse(name, fields) for name, fields in sorted(plans.items()))


_ACCESS_KEY_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")


def _access_keys(value: Any) -> tuple[tuple[str, str], ...]:
    """``ID:SECRET,ID:SECRET`` (env), a list of ``ID:SECRET`` or a table ``{ID = SECRET}``."""
    if isinstance(value, dict):
        pairs = [(str(k), str(v)) for k, v in value.items()]
    elif isinstance(value, str | list | tuple):
        items = value.split(",") if isinstance(value, str) else [str(v) for v in value]
        pairs = []
        for item in (i.strip() for i in items):
            if item:
                key_id, _, secret = item.partition(":")
                pairs.append((key_id, secret))
    else:
        raise ConfigurationError("access_keys must be 'ID:SECRET,ID:SECRET' or a table")
    for key_id, secret in pairs:
        if not _ACCESS_KEY_ID.match(key_id) or not secret:
            raise ConfigurationError(
                f"access_keys: {key_id!r} needs an id of 1-128 letters, digits, '_' or '-' and "
                "a non-empty secret, written ID:SECRET"
            )
    return tuple(pairs)
