"""InvocationResults in Lambda's shapes: the worker's reply, and what the platform reports
when the handler never replied (init failure, timeout, crash, memory)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from pyfaas.model import FunctionVersion, InvocationRequest, InvocationResult

# Lambda's errorType for each way loading a handler fails.
_INIT_ERROR_TYPES = {
    "handler_not_found": "Runtime.HandlerNotFound",
    "handler_syntax_error": "Runtime.UserCodeSyntaxError",
}


def from_reply(
    fv: FunctionVersion,
    request: InvocationRequest,
    reply: dict[str, Any],
    init_ms: float | None,
    start_kind: str | None = None,
) -> tuple[InvocationResult, bool]:
    """The result a worker sent, and whether that worker may serve again."""
    max_rss_mb = reply["max_rss_kb"] // 1024
    body, error, reusable = reply["body"], reply["error"], not reply["recycle"]
    if max_rss_mb > fv.memory_mb:
        # Lambda stops a function past its memory size; RLIMIT_AS has headroom over it (see
        # environment.py), so the worker's peak RSS after the call is the check.
        reason = f"memory used ({max_rss_mb} MB) exceeds the function's {fv.memory_mb} MB"
        body = _error_body("Runtime.OutOfMemory", _exited(request, reason))
        error, reusable = True, False
    result = InvocationResult(
        request_id=request.request_id,
        body=body,
        function_error="Unhandled" if error else None,
        duration_ms=reply["duration_ms"],
        init_duration_ms=init_ms,
        max_memory_used_mb=max_rss_mb,
        logs=reply["logs"],
        version=fv.version,
        start_kind=start_kind,
        cpu_ms=reply.get("cpu_ms"),
    )
    return result, reusable


def init_failed(
    fv: FunctionVersion, request: InvocationRequest, code: str, message: str, logs: str
) -> InvocationResult:
    """The handler could not be loaded for this invocation's cold start."""
    error_type = _INIT_ERROR_TYPES.get(code, "Runtime.ImportModuleError")
    return error_result(fv, request, error_type, message, logs=logs)


def timed_out(
    fv: FunctionVersion,
    request: InvocationRequest,
    init_ms: float | None,
    logs: str,
    start_kind: str | None = None,
) -> InvocationResult:
    """The handler outran fv.timeout_s; ``logs`` is what it wrote until then."""
    message = (
        f"RequestId: {request.request_id} Error: Task timed out after {fv.timeout_s:.2f} seconds"
    )
    when = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    if logs and not logs.endswith("\n"):
        logs += "\n"
    return error_result(
        fv,
        request,
        "Sandbox.Timedout",
        message,
        init_ms=init_ms,
        duration_ms=fv.timeout_s * 1000.0,
        logs=f"{logs}{when} {message}\n",
        start_kind=start_kind,
    )


def crashed(
    fv: FunctionVersion,
    request: InvocationRequest,
    init_ms: float | None,
    reason: str,
    start_kind: str | None = None,
    duration_ms: float = 0.0,
) -> InvocationResult:
    """The worker died mid-invocation; ``reason`` like "exit status 3", "signal: killed";
    ``duration_ms`` from sending the invocation to seeing the worker gone."""
    return error_result(
        fv,
        request,
        "Runtime.ExitError",
        _exited(request, reason),
        init_ms=init_ms,
        start_kind=start_kind,
        duration_ms=duration_ms,
    )


def error_result(
    fv: FunctionVersion,
    request: InvocationRequest,
    error_type: str,
    message: str,
    *,
    init_ms: float | None = None,
    duration_ms: float = 0.0,
    logs: str = "",
    start_kind: str | None = None,
) -> InvocationResult:
    """An "Unhandled" result the platform reports on the handler's behalf."""
    return InvocationResult(
        request_id=request.request_id,
        body=_error_body(error_type, message),
        function_error="Unhandled",
        duration_ms=duration_ms,
        init_duration_ms=init_ms,
        logs=logs,
        version=fv.version,
        start_kind=start_kind,
    )


def _exited(request: InvocationRequest, reason: str) -> str:
    return f"RequestId: {request.request_id} Error: Runtime exited with error: {reason}"


def _error_body(error_type: str, message: str) -> bytes:
    return json.dumps({"errorMessage": message, "errorType": error_type}).encode()
