"""Invocations: payload checks, synchronous runs, async submissions, and the log of each call."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import orjson

from pyfaas.control.functions import FunctionService
from pyfaas.control.secrets import redact
from pyfaas.events import Enqueuer
from pyfaas.metering import UsageWriter
from pyfaas.model import (
    LATEST,
    FunctionVersion,
    InvalidPayload,
    InvalidRequest,
    InvocationRequest,
    InvocationResult,
    Limits,
    PayloadTooLarge,
    new_request_id,
)
from pyfaas.scaling import Scaler
from pyfaas.store.events import NewEvent
from pyfaas.telemetry import LogWriter
from pyfaas.telemetry.tracing import Tracing, valid_traceparent

MAX_IDEMPOTENCY_KEY = 256


class InvocationService:
    """Runs invocations of functions and records their logs; accepts async events."""

    def __init__(
        self,
        functions: FunctionService,
        scaler: Scaler,
        logs: LogWriter,
        limits: Limits,
        enqueuer: Enqueuer,
        usage: UsageWriter | None = None,
        tracing: Tracing | None = None,
        resolve: Callable[[str], Awaitable[FunctionVersion]] | None = None,
        log_invocations: bool = True,
    ) -> None:
        self._functions = functions
        # Resolves "name", "name:3", "name:alias" (control.versions); else $LATEST only.
        self.resolve = resolve or functions.resolve
        self._scaler = scaler
        self._logs = logs
        self._log_invocations = log_invocations  # False: invocation_logs = false
        self._limits = limits
        self._enqueuer = enqueuer
        self._usage = usage  # None: metering is off
        self._tracing = tracing or Tracing()

    def check_payload(self, payload: bytes, limit: int, kind: str = "synchronous") -> bytes:
        """Return the payload to pass on (``{}`` when empty).

        Raises PayloadTooLarge over ``limit`` and InvalidPayload when it is not JSON.
        """
        if len(payload) > limit:
            raise PayloadTooLarge(
                f"payload is {len(payload)} bytes; the limit for {kind} invocations "
                f"is {limit} bytes",
            )
        if not payload.strip():
            return b"{}"
        try:
            orjson.loads(payload)
        except orjson.JSONDecodeError as exc:
            raise InvalidPayload(f"payload is not valid JSON: {exc}") from None
        return payload

    async def invoke(
        self,
        name: str,
        payload: bytes,
        *,
        traceparent: str | None = None,
        client_context: str | None = None,
        payload_checked: bool = False,
    ) -> InvocationResult:
        """Run ``name`` (or ``name:qualifier``) with ``payload`` and wait for its result;
        ``client_context`` (base64
        JSON, Lambda's X-Amz-Client-Context) reaches the handler as ``context.client_context``,
        ``traceparent`` (W3C) as ``context.traceparent``.

        Raises FunctionNotFound, PayloadTooLarge, InvalidPayload, TooManyRequests (throttled
        by reserved or server concurrency); ``payload_checked``: the caller already checked
        the payload (check_payload or control.batches.split_batch). Handler errors, timeouts
        and crashes are not raised: they come back as a result with ``function_error`` set.
        """
        if ":" not in name:  # the hot path: $LATEST, straight from the cache
            fv = await self._functions.resolve(name)
            arn = fv.arn
        else:
            fv = await self.resolve(name)
            # Lambda's context names the qualifier the caller invoked.
            arn = f"{fv.arn}:{name.partition(':')[2]}"
        if not payload_checked:
            payload = self.check_payload(payload, self._limits.sync_payload_bytes)
        request = InvocationRequest(
            request_id=new_request_id(),
            payload=payload,
            invoked_function_arn=arn,
            traceparent=valid_traceparent(traceparent),
            client_context=client_context,
        )
        return await self.run(fv, request, trigger="http")

    async def run(
        self, fv: FunctionVersion, request: InvocationRequest, trigger: str = "other"
    ) -> InvocationResult:
        """One invocation through admission and the executor; its log and its usage record
        go to their writers (unless invocation_logs or metering is off), and its span (when
        tracing is on) to the exporter. Every invocation passes here: sync, async deliveries,
        triggers. A throttled call raises TooManyRequests and is not metered (it never ran).
        """
        started = time.time()
        if self._tracing.enabled:
            with self._tracing.invocation(fv, request, trigger) as (traced, outcome):
                result = await self._scaler.invoke(fv, traced)
                outcome.append(result)
        else:
            result = await self._scaler.invoke(fv, request)
        if fv.secret_values:
            result = redact(result, fv.secret_values)
        if self._log_invocations:
            self._logs.submit_invocation(fv, result, started)
        if self._usage is not None:
            self._usage.record(fv, result, started)
        return result

    async def submit(
        self, name: str, payload: bytes, idempotency_key: str | None = None
    ) -> tuple[str, bool]:
        """Accept an asynchronous invocation; return (request id, new?) once it is durable.

        A repeated ``idempotency_key`` for the same function returns the first submission's
        request id with new=False, and enqueues nothing. Raises FunctionNotFound,
        PayloadTooLarge, InvalidPayload, InvalidRequest (nothing is enqueued).
        """
        await self.resolve(name)  # a weighted alias is drawn again at each attempt
        name, _, qualifier = name.partition(":")
        payload = self.check_payload(payload, self._limits.async_payload_bytes, "asynchronous")
        if idempotency_key is not None and not 1 <= len(idempotency_key) <= MAX_IDEMPOTENCY_KEY:
            raise InvalidRequest(
                f"an idempotency key is 1-{MAX_IDEMPOTENCY_KEY} characters",
                code="invalid_idempotency_key",
            )
        return await self._enqueuer.submit(
            NewEvent(
                request_id=new_request_id(),
                function=name,
                payload=payload,
                idempotency_key=idempotency_key,
                enqueued_at=time.time(),
                qualifier=qualifier if qualifier and qualifier != LATEST else None,
            )
        )
