"""Log records: what a function wrote during one invocation, plus the platform's lines."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class LogRecord:
    """One chunk of an invocation's log (START ... END/REPORT), as stored.

    ``id`` is assigned by the store, increasing; 0 before it is stored. ``timestamp`` is
    seconds since the epoch.
    """

    function: str
    request_id: str
    timestamp: float
    text: str
    id: int = 0

    def to_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "function": self.function,
            "request_id": self.request_id,
            "timestamp": self.timestamp,
            "text": self.text,
        }
