"""Schedules of a function: validation of what a client sends, and their life cycle."""

from __future__ import annotations

import json
import math
import secrets
import time
from typing import Any

from pyfaas.control.functions import FunctionService
from pyfaas.control.versions import VersionService
from pyfaas.events.schedule_expressions import parse
from pyfaas.events.schedules import Scheduler
from pyfaas.model import LATEST, InvalidRequest, Limits, NotFound, PayloadTooLarge
from pyfaas.model.schedules import FIRE_ONCE, MISSED_RUNS, Schedule
from pyfaas.model.versions import check_qualifier
from pyfaas.store.schedules import ScheduleStore

FIELDS = ("expression", "input", "enabled", "missed_runs", "timezone", "qualifier")
MAX_EXPRESSION = 256


class ScheduleService:
    """Creates, lists, changes and deletes the schedules of functions."""

    def __init__(
        self,
        store: ScheduleStore,
        functions: FunctionService,
        scheduler: Scheduler,
        limits: Limits,
        versions: VersionService | None = None,
    ) -> None:
        self._store = store
        self._functions = functions
        self._versions = versions  # None: schedules invoke $LATEST only
        self._scheduler = scheduler
        self._limits = limits

    async def create(self, function: str, fields: dict[str, Any]) -> Schedule:
        """A new schedule for ``function``. Raises FunctionNotFound, InvalidRequest (codes
        unknown_field, invalid_type, invalid_schedule_expression, invalid_timezone,
        invalid_missed_runs), PayloadTooLarge (an input over the async payload limit).
        Nothing is stored unless every field is valid."""
        values = self._checked(fields)
        if "expression" not in values:
            raise InvalidRequest(
                "a schedule needs an expression, e.g. rate(5 minutes) or cron(0 12 * * ? *)",
                code="invalid_schedule_expression",
            )
        parse(values["expression"], values.get("timezone", "UTC"))
        await self._functions.get(function)
        await self._check_target(function, values.get("qualifier"))
        now = time.time()
        schedule = Schedule(
            id=secrets.token_hex(8),
            function=function,
            expression=values["expression"],
            timezone=values.get("timezone", "UTC"),
            input=values.get("input"),
            enabled=values.get("enabled", True),
            missed_runs=values.get("missed_runs", FIRE_ONCE),
            anchor=float(math.floor(now)),
            handled_until=now,
            created_at=now,
            updated_at=now,
            qualifier=values.get("qualifier"),
        )
        await self._store.create(schedule)
        self._scheduler.wake()
        return schedule

    async def list(self, function: str) -> list[Schedule]:
        """Raises FunctionNotFound."""
        await self._functions.get(function)
        return await self._store.list_for(function)

    async def get(self, function: str, schedule_id: str) -> Schedule:
        """Raises NotFound (code schedule_not_found)."""
        schedule = await self._store.get(function, schedule_id)
        if schedule is None:
            raise _not_found(function, schedule_id)
        return schedule

    async def update(self, function: str, schedule_id: str, fields: dict[str, Any]) -> Schedule:
        """Change some fields. Enabling again, or a new expression or time zone, starts from
        now: slots that passed while it was disabled do not count as missed. Raises
        NotFound, InvalidRequest, PayloadTooLarge (nothing is changed)."""
        values = self._checked(fields)
        current = await self.get(function, schedule_id)
        expression = values.get("expression", current.expression)
        timezone = values.get("timezone", current.timezone)
        parse(expression, timezone)
        if "qualifier" in values:
            await self._check_target(function, values["qualifier"])
        now = time.time()
        if expression != current.expression or timezone != current.timezone:
            values.update(anchor=float(math.floor(now)), handled_until=now)
        elif values.get("enabled") and not current.enabled:
            values["handled_until"] = now
        values["updated_at"] = now
        updated = await self._store.update(function, schedule_id, values)
        if updated is None:
            raise _not_found(function, schedule_id)
        self._scheduler.wake()
        return updated

    async def delete(self, function: str, schedule_id: str) -> None:
        """Raises NotFound (code schedule_not_found)."""
        if not await self._store.delete(function, schedule_id):
            raise _not_found(function, schedule_id)

    def next_fire_at(self, schedule: Schedule) -> float | None:
        """When ``schedule`` fires next (None: disabled, or no slot to come)."""
        if not schedule.enabled:
            return None
        expression = parse(schedule.expression, schedule.timezone)
        return expression.next_after(schedule.handled_until, schedule.anchor)

    async def _check_target(self, function: str, qualifier: str | None) -> None:
        """Raise VersionNotFound / AliasNotFound unless ``qualifier`` exists."""
        if qualifier is not None and self._versions is not None:
            await self._versions.check_target(function, qualifier)

    def _checked(self, fields: dict[str, Any]) -> dict[str, Any]:
        """The fields given, validated; ``input`` becomes JSON text (None: no fixed input)."""
        unknown = sorted(set(fields) - set(FIELDS))
        if unknown:
            raise InvalidRequest(
                f"unknown schedule field(s): {', '.join(unknown)}; a schedule has "
                f"{', '.join(FIELDS)}",
                code="unknown_field",
            )
        values = dict(fields)
        if "expression" in values:
            expression = values["expression"]
            if not isinstance(expression, str) or not expression.strip():
                raise InvalidRequest(
                    "expression must be a string such as rate(5 minutes)",
                    code="invalid_schedule_expression",
                )
            if len(expression) > MAX_EXPRESSION:
                raise InvalidRequest(
                    f"expression is {len(expression)} characters; at most {MAX_EXPRESSION}",
                    code="invalid_schedule_expression",
                )
            values["expression"] = " ".join(expression.split())
        if "timezone" in values and not isinstance(values["timezone"], str):
            raise InvalidRequest(
                "timezone must be an IANA name such as UTC or Europe/Berlin",
                code="invalid_timezone",
            )
        if "qualifier" in values:
            values["qualifier"] = self._qualifier(values["qualifier"])
        if "enabled" in values and not isinstance(values["enabled"], bool):
            raise InvalidRequest("enabled must be true or false", code="invalid_type")
        if "missed_runs" in values and values["missed_runs"] not in MISSED_RUNS:
            raise InvalidRequest(
                f"missed_runs must be {' or '.join(MISSED_RUNS)} (what happens to the slots "
                f"that passed while no server ran), not {values['missed_runs']!r}",
                code="invalid_missed_runs",
            )
        if "input" in values and values["input"] is not None:
            text = json.dumps(values["input"], separators=(",", ":"))
            limit = self._limits.async_payload_bytes
            if len(text.encode()) > limit:
                raise PayloadTooLarge(
                    f"the schedule's input is {len(text.encode())} bytes as JSON; an event "
                    f"may be at most {limit} bytes"
                )
            values["input"] = text
        return values

    def _qualifier(self, value: object) -> str | None:
        """A schedule's qualifier: None or $LATEST (the function as deployed), a version
        number or an alias name. Raises InvalidRequest (invalid_qualifier)."""
        if value is None or value == LATEST:
            return None
        if not isinstance(value, str) or self._versions is None:
            raise InvalidRequest(
                f"qualifier must be a version number or alias name (a string), got {value!r}",
                code="invalid_qualifier",
            )
        check_qualifier(value)
        return value


def _not_found(function: str, schedule_id: str) -> NotFound:
    return NotFound(
        f"function {function!r} has no schedule {schedule_id!r}; "
        f"`pyfaas schedule ls {function}` lists them",
        code="schedule_not_found",
    )
