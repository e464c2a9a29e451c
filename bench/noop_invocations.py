"""What the server's writers get for a warm no-op invocation: its function version and result
(bench/telemetry_cost.py, bench/store_rows.py feed these to the writers and the store)."""

from __future__ import annotations

from pyfaas.model import FunctionVersion, InvocationResult
from pyfaas.model.invocation import new_request_id


def noop_version(code_dir: str) -> FunctionVersion:
    return FunctionVersion(
        name="noop", version="$LATEST", handler="app.handler", runtime="python3.11",
        memory_mb=128, timeout_s=3, environment=(), code_sha256="0" * 64, code_dir=code_dir,
    )  # fmt: skip


def noop_result() -> InvocationResult:
    """A warm invocation that printed nothing, with a new request id."""
    return InvocationResult(
        request_id=new_request_id(), body=b"{}", duration_ms=0.12, max_memory_used_mb=20,
        cpu_ms=0.1,
    )  # fmt: skip
