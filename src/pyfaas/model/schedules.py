"""Schedules: a function invoked at the slots of a rate or cron expression."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

FIRE_ONCE = "fire_once"  # after downtime: one catch-up run for all the slots missed
SKIP = "skip"  # after downtime: the missed slots do not run at all
MISSED_RUNS = (FIRE_ONCE, SKIP)


@dataclass(frozen=True, slots=True)
class Schedule:
    """One schedule of one function, as stored.

    ``expression`` is the text the user gave (``rate(5 minutes)``, ``cron(0 12 * * ? *)`` or
    a 5-field cron line). ``input`` is the fixed event as JSON text, or None for EventBridge's
    Scheduled Event. Times are epoch seconds: ``anchor`` is where a rate's slots count from;
    every slot at or before ``handled_until`` has been fired or deliberately skipped.
    """

    id: str
    function: str
    expression: str
    timezone: str
    input: str | None
    enabled: bool
    missed_runs: str
    anchor: float
    handled_until: float
    created_at: float
    updated_at: float
    last_fired_at: float | None = None  # the slot time of the last event it sent
    last_request_id: str | None = None
    qualifier: str | None = None  # the version or alias it invokes (None: $LATEST)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "function": self.function,
            "expression": self.expression,
            "timezone": self.timezone,
            "input": None if self.input is None else json.loads(self.input),
            "enabled": self.enabled,
            "missed_runs": self.missed_runs,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "last_fired_at": self.last_fired_at,
            "last_request_id": self.last_request_id,
            "qualifier": self.qualifier,
        }
