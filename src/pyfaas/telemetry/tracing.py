"""OpenTelemetry spans for invocations, and the W3C trace context handed to handlers.

Tracing is off unless the server is started with ``tracing`` = ``console`` (spans printed to
the server's output) or ``otlp`` (spans sent by OTLP/HTTP to ``OTEL_EXPORTER_OTLP_ENDPOINT``,
default http://localhost:4318); both need the ``otel`` extra (``pip install 'pyfaas[otel]'``).

Either way, a caller's ``traceparent`` reaches the handler as ``context.traceparent``: as it
came when tracing is off, or as the invocation span's own (a child of the caller's) when on.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
from collections.abc import Iterator
from typing import Any

from pyfaas.model import ConfigurationError, FunctionVersion, InvocationRequest, InvocationResult

EXPORTERS = ("none", "console", "otlp")

# version-traceid-parentid-flags, lower-case hex (W3C Trace Context, level 1).
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")


def valid_traceparent(value: str | None) -> str | None:
    """``value`` if it is a well-formed traceparent header, else None (W3C: a malformed one
    is ignored, not an error)."""
    if value is None:
        return None
    value = value.strip().lower()
    return value if _TRACEPARENT.match(value) and not value.startswith("ff") else None


class Tracing:
    """Makes one span per invocation when an exporter is configured; otherwise does nothing
    but pass the caller's trace context on."""

    def __init__(self, exporter: str = "none", *, service_name: str = "pyfaas") -> None:
        if exporter not in EXPORTERS:
            raise ConfigurationError(
                f"tracing must be one of {', '.join(EXPORTERS)}, not {exporter!r}"
            )
        self.exporter = exporter
        self._tracer: Any = None
        self._provider: Any = None
        if exporter != "none":
            self._tracer, self._provider = _make_tracer(exporter, service_name)

    @property
    def enabled(self) -> bool:
        return self._tracer is not None

    @contextlib.contextmanager
    def invocation(
        self, fv: FunctionVersion, request: InvocationRequest, trigger: str
    ) -> Iterator[tuple[InvocationRequest, list[InvocationResult]]]:
        """A span around one invocation. Yields the request to run (carrying the span's
        traceparent) and a list the caller appends the result to, for the span's outcome."""
        outcome: list[InvocationResult] = []
        if self._tracer is None:
            yield request, outcome
            return
        from opentelemetry import trace
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        propagator = TraceContextTextMapPropagator()
        parent = propagator.extract(
            {"traceparent": request.traceparent} if request.traceparent else {}
        )
        attributes = {
            "faas.invocation_id": request.request_id,
            "faas.name": fv.name,
            "faas.version": fv.version,
            "faas.trigger": trigger,
            "cloud.resource_id": fv.arn,
        }
        with self._tracer.start_as_current_span(
            f"invoke {fv.name}",
            context=parent,
            kind=trace.SpanKind.SERVER,
            attributes=attributes,
        ) as span:
            carrier: dict[str, str] = {}
            propagator.inject(carrier)
            traced = _with_traceparent(request, carrier.get("traceparent"))
            yield traced, outcome
            if outcome:
                result = outcome[0]
                span.set_attribute("faas.coldstart", result.init_duration_ms is not None)
                if result.function_error:
                    span.set_status(trace.Status(trace.StatusCode.ERROR, result.function_error))

    def close(self) -> None:
        if self._provider is not None:
            self._provider.shutdown()
            self._provider = self._tracer = None


def _with_traceparent(request: InvocationRequest, traceparent: str | None) -> InvocationRequest:
    return dataclasses.replace(request, traceparent=traceparent)


def _make_tracer(exporter: str, service_name: str) -> tuple[Any, Any]:
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
        from opentelemetry.sdk.trace.export import (
            BatchSpanProcessor,
            ConsoleSpanExporter,
            SimpleSpanProcessor,
        )
    except ImportError:
        raise ConfigurationError(
            f"tracing = {exporter} needs OpenTelemetry: pip install 'pyfaas[otel]'"
        ) from None
    processor: SpanProcessor
    if exporter == "console":
        processor = SimpleSpanProcessor(ConsoleSpanExporter())
    else:
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError:
            raise ConfigurationError(
                "tracing = otlp needs the OTLP exporter: pip install 'pyfaas[otel]'"
            ) from None
        processor = BatchSpanProcessor(OTLPSpanExporter())
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    provider.add_span_processor(processor)
    return provider.get_tracer("pyfaas"), provider
