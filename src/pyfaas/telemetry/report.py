"""Lambda-style log lines around each invocation: START, the handler's output, END, REPORT."""

from __future__ import annotations

from pyfaas.model import FunctionVersion, InvocationResult
from pyfaas.store.logs import LogRow, invocation_row, record_text


def invocation_log_row(fv: FunctionVersion, result: InvocationResult, started: float) -> LogRow:
    """The record of one invocation of ``fv`` asked for at epoch ``started``: its output and
    the figures of its REPORT line (the store makes the lines when the record is read)."""
    return invocation_row(
        fv.name,
        result.request_id,
        started,
        result.logs,
        result.version,
        result.duration_ms,
        fv.memory_mb,
        result.max_memory_used_mb,
        result.init_duration_ms,
    )


def format_invocation_log(fv: FunctionVersion, result: InvocationResult) -> str:
    """Return the whole log of one invocation as Lambda writes it to CloudWatch (the same
    text its stored record reads as)."""
    return record_text(invocation_log_row(fv, result, 0.0))
