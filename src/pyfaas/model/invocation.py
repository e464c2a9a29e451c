"""Invocations: what runs (a function version), what is asked of it, and what came back."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field

# UUID version 7 (RFC 9562): 48 bits of Unix time in ms, the version, 12 random bits, the
# variant, 62 random bits.
_UUID7_FIXED_BITS = (0x7 << 76) | (0b10 << 62)
_UUID7_RANDOM_A = ((1 << 12) - 1) << 64
_UUID7_RANDOM_B = (1 << 62) - 1


def new_request_id() -> str:
    """A UUID string, version 7: the time in ms, then 74 random bits (unique, not secret: no
    syscall needed). Ids made later sort after earlier ones (from the next ms on), so the
    indexes on request ids (logs, async events) grow at their end, like those on time,
    instead of changing a random page of the index for every invocation.

    Formatted directly: uuid.UUID's checks and properties cost the invoke path ~3 us."""
    rand = random.getrandbits(74)  # bits 62-73 go to rand_a, 0-61 to rand_b
    bits = (
        (time.time_ns() // 1_000_000) << 80
        | _UUID7_FIXED_BITS
        | (rand << 2) & _UUID7_RANDOM_A
        | rand & _UUID7_RANDOM_B
    )
    h = f"{bits:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


@dataclass(frozen=True, slots=True)
class FunctionVersion:
    """One immutable, runnable function version: everything a worker needs to start.

    ``code_dir`` is the unpacked, read-only bundle (the worker's LAMBDA_TASK_ROOT);
    ``layer_dir`` holds the installed requirements, or is None when there are none.
    Two FunctionVersions with the same ``pool_key`` may share warm workers. The scaling
    settings (reserved/provisioned concurrency, idle timeout) are not part of the pool key:
    changing them keeps the warm workers.
    """

    name: str
    version: str
    handler: str
    runtime: str
    memory_mb: int
    timeout_s: int
    environment: tuple[tuple[str, str], ...]
    code_sha256: str
    code_dir: str
    layer_dir: str | None = None
    region: str = "us-east-1"
    account_id: str = "000000000000"
    concurrency_per_worker: int = 1
    reserved_concurrency: int | None = None
    provisioned_concurrency: int = 0
    idle_timeout_s: float | None = None
    maximum_retry_attempts: int = 2
    maximum_event_age_s: int = 6 * 3600
    on_success: str | None = None
    on_failure: str | None = None
    price_plan: str = "default"  # the price plan its usage is costed with (metering)
    # Values of the secrets in ``environment``: redacted from what invocations report.
    secret_values: tuple[str, ...] = ()
    ephemeral_storage_mb: int = 512  # the size of the workers' writable /tmp
    network: str = "host"  # "none": no network namespace shared with the host
    gpus: int = 0  # accelerators per worker (the Ray executor's num_gpus)

    @property
    def pool_key(self) -> tuple[object, ...]:
        return (
            self.name,
            self.version,
            self.handler,
            self.memory_mb,
            self.timeout_s,
            self.environment,
            self.code_sha256,
            self.layer_dir,
            self.concurrency_per_worker,
            self.ephemeral_storage_mb,
            self.network,
            self.gpus,
        )

    @property
    def arn(self) -> str:
        return f"arn:aws:lambda:{self.region}:{self.account_id}:function:{self.name}"


@dataclass(frozen=True, slots=True)
class InvocationRequest:
    """One call of a function. ``payload`` is the event as JSON bytes (already validated)."""

    request_id: str
    payload: bytes
    invoked_function_arn: str = ""
    client_context: str | None = None
    traceparent: str | None = None  # W3C trace context, handed to the handler


@dataclass(frozen=True, slots=True)
class InvocationResult:
    """What an invocation produced.

    ``body`` is JSON bytes: the handler's result, or Lambda's error object
    (errorMessage/errorType/stackTrace) when ``function_error`` is set ("Unhandled").
    ``logs`` is what the handler wrote to stdout/stderr/logging during the call, truncated
    to the server's per-invocation limit. Durations are milliseconds. On a cold start,
    ``init_duration_ms`` is the time from asking for a worker to its handler being ready,
    and ``start_kind`` says how that worker came to be: "spawn", "zygote", "template" or
    "ray" (a Ray actor).
    """

    request_id: str
    body: bytes
    function_error: str | None = None
    duration_ms: float = 0.0
    init_duration_ms: float | None = None
    max_memory_used_mb: int = 0
    logs: str = ""
    version: str = "$LATEST"
    extra: dict[str, object] = field(default_factory=dict)
    start_kind: str | None = None
    # The worker's user+system CPU time during the call; None when it died before saying.
    cpu_ms: float | None = None

    @property
    def cold_start(self) -> bool:
        return self.init_duration_ms is not None
