"""Lambda-style log lines around each invocation: START, the handler's output, END, REPORT."""

from __future__ import annotations

from pyfaas.model import FunctionVersion, InvocationResult
from pyfaas.model.usage import billed_ms


def format_invocation_log(fv: FunctionVersion, result: InvocationResult) -> str:
    """Return the whole log of one invocation as Lambda writes it to CloudWatch."""
    rid = result.request_id
    report = (
        f"REPORT RequestId: {rid}\tDuration: {result.duration_ms:.2f} ms\t"
        f"Billed Duration: {billed_ms(result.duration_ms)} ms\t"
        f"Memory Size: {fv.memory_mb} MB\tMax Memory Used: {result.max_memory_used_mb} MB"
    )
    if result.init_duration_ms is not None:
        report += f"\tInit Duration: {result.init_duration_ms:.2f} ms"
    body = result.logs
    if body and not body.endswith("\n"):
        body += "\n"
    return (
        f"START RequestId: {rid} Version: {result.version}\n{body}END RequestId: {rid}\n{report}\n"
    )
