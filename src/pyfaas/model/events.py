"""Asynchronous invocations: an accepted event, from the queue to its outcome."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

QUEUED = "queued"
RUNNING = "running"
SUCCEEDED = "succeeded"
FAILED = "failed"  # the last attempt failed; a retry waits until next_attempt_at
DEAD = "dead"  # in the dead-letter queue: retries exhausted or too old
STATUSES = (QUEUED, RUNNING, SUCCEEDED, FAILED, DEAD)


@dataclass(frozen=True, slots=True)
class AsyncEvent:
    """One accepted asynchronous invocation and where it stands.

    ``request_id`` stays the same across retries. ``attempts`` counts deliveries started,
    ``failures`` the ones that ended in a function error, timeout or crash. Times are epoch
    seconds. ``last_error`` is the last failure's Lambda error object (JSON text) or reason.
    """

    request_id: str
    function: str
    payload: bytes
    status: str
    attempts: int
    failures: int
    enqueued_at: float
    updated_at: float
    next_attempt_at: float
    lease_until: float | None = None
    idempotency_key: str | None = None
    last_error: str | None = None
    condition: str | None = None  # why it is dead: RetriesExhausted, EventAgeExceeded
    qualifier: str | None = None  # the version or alias invoked (None: $LATEST)

    @property
    def qualified_function(self) -> str:
        """``function`` or ``function:qualifier``: what each attempt resolves."""
        return self.function if self.qualifier is None else f"{self.function}:{self.qualifier}"

    result: bytes | None = None  # the handler's JSON result, once it succeeded

    def to_dict(self, *, with_payload: bool = False, with_result: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "request_id": self.request_id,
            "function": self.function,
            "status": self.status,
            "attempts": self.attempts,
            "failures": self.failures,
            "enqueued_at": self.enqueued_at,
            "updated_at": self.updated_at,
            "next_attempt_at": self.next_attempt_at if self.status in (QUEUED, FAILED) else None,
            "idempotency_key": self.idempotency_key,
            "last_error": self.last_error,
            "condition": self.condition,
            "qualifier": self.qualifier,
        }
        if with_payload:
            out["payload"] = self.payload.decode("utf-8", errors="replace")
        if with_result:
            out["result"] = None if self.result is None else _json_or_text(self.result)
        return out


def _json_or_text(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", errors="replace")
