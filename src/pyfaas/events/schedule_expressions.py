"""Schedule expressions: EventBridge's ``rate(...)`` and ``cron(...)``, and 5-field cron lines.

- ``rate(N unit)``: every N minutes, hours or days (``minute``/``hour``/``day`` when N is 1,
  the plural otherwise, as EventBridge insists). pyfaas also takes ``second(s)``, an extension
  for tests and fast loops. Slots count from the schedule's anchor (its creation time).
- ``cron(minutes hours day-of-month month day-of-week year)``: EventBridge's six fields, with
  ``? L W #``; day-of-week is 1-7 = SUN-SAT; exactly one of the day fields is ``?``. Refused
  because croniter cannot compute them: ``LW``, years after 2099.
- ``minute hour day-of-month month day-of-week``: a standard cron line (day-of-week 0-7, 0 and
  7 = Sunday; names; ``@hourly``, ``@daily``...). No ``? L W #`` there.

croniter computes the slots of both cron forms, in the schedule's time zone.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, CroniterError, croniter

from pyfaas.model import InvalidRequest

CODE = "invalid_schedule_expression"
FORMS = (
    "use rate(5 minutes), cron(0 12 * * ? *) (EventBridge: minutes hours day-of-month month "
    "day-of-week year) or a 5-field cron line such as */5 * * * *"
)
RATE_UNITS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
MAX_RATE_S = 100 * 365 * 86400
_RATE = re.compile(r"rate\((.*)\)", re.DOTALL)
_CRON = re.compile(r"cron\((.*)\)", re.DOTALL)
_ITEM = re.compile(r"(\*|([0-9A-Za-z]+)(?:-([0-9A-Za-z]+))?)(?:/(\d+))?")
_MONTH_NAMES = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_MONTHS = {m: i for i, m in enumerate(_MONTH_NAMES, 1)}
_DAYS = {d: i for i, d in enumerate(("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"))}
_UNIX_ALIASES = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")


class ScheduleExpression(Protocol):
    """The slots of an expression, as epoch seconds. ``anchor`` is where a rate counts from
    (cron ignores it). None: no such slot (a cron expression limited to past years)."""

    def next_after(self, t: float, anchor: float) -> float | None: ...

    def latest_until(self, t: float, anchor: float) -> float | None: ...


@dataclass(frozen=True, slots=True)
class Rate:
    """Every ``period_s`` seconds from the anchor (the anchor itself is not a slot)."""

    period_s: int

    def next_after(self, t: float, anchor: float) -> float | None:
        k = max(math.floor((t - anchor) / self.period_s) + 1, 1)
        return anchor + k * self.period_s

    def latest_until(self, t: float, anchor: float) -> float | None:
        k = math.floor((t - anchor) / self.period_s)
        return anchor + k * self.period_s if k >= 1 else None


@dataclass(frozen=True, slots=True)
class Cron:
    """A cron expression in croniter's syntax, evaluated in ``zone``."""

    fields: str
    zone: tzinfo

    def next_after(self, t: float, anchor: float) -> float | None:
        try:
            slot: float = croniter(self.fields, datetime.fromtimestamp(t, self.zone)).get_next(
                float
            )
        except CroniterBadDateError:
            return None
        return slot

    def latest_until(self, t: float, anchor: float) -> float | None:
        # get_prev is strict; slots are whole seconds, so from floor(t) + 1 it finds <= t.
        start = datetime.fromtimestamp(math.floor(t) + 1, self.zone)
        try:
            slot: float = croniter(self.fields, start).get_prev(float)
        except CroniterBadDateError:
            return None
        return slot


def zone(name: str) -> tzinfo:
    """The IANA time zone ``name``; raises InvalidRequest (code invalid_timezone). UTC needs
    no time zone database (a machine may have none)."""
    if name == "UTC":
        return UTC
    try:
        if len(name) > 64:
            raise ValueError(name)
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise InvalidRequest(
            f"time zone {name!r} is not an IANA time zone name such as UTC or Europe/Berlin",
            code="invalid_timezone",
        ) from None


@functools.lru_cache(maxsize=1024)
def parse(text: str, timezone: str = "UTC") -> Rate | Cron:
    """Parse a schedule expression. Raises InvalidRequest with code
    invalid_schedule_expression (saying what is wrong) or invalid_timezone."""
    tz = zone(timezone)
    stripped = text.strip()
    if (m := _RATE.fullmatch(stripped)) is not None:
        return _rate(text, m.group(1))
    if (m := _CRON.fullmatch(stripped)) is not None:
        return _eventbridge_cron(text, m.group(1), tz)
    if stripped.startswith(("rate", "cron")):
        raise _bad(text, "write rate(...) or cron(...) with the whole expression in parentheses")
    return _unix_cron(text, stripped, tz)


def _bad(text: str, why: str) -> InvalidRequest:
    return InvalidRequest(f"schedule expression {text!r}: {why}", code=CODE)


def _rate(text: str, inner: str) -> Rate:
    parts = inner.split()
    if len(parts) != 2:
        raise _bad(text, "a rate is rate(VALUE UNIT), e.g. rate(5 minutes) or rate(1 hour)")
    value, unit = parts
    if not re.fullmatch(r"[1-9][0-9]*", value):
        raise _bad(text, f"the rate's value {value!r} must be a whole number of at least 1")
    count = int(value)
    singular = unit.removesuffix("s")
    if singular not in RATE_UNITS:
        raise _bad(text, f"unknown unit {unit!r}: use minutes, hours, days (or seconds)")
    wanted = singular if count == 1 else singular + "s"
    if unit != wanted:
        raise _bad(
            text,
            f"write rate({count} {wanted}): the unit is singular for 1 and plural otherwise",
        )
    period = count * RATE_UNITS[singular]
    if period > MAX_RATE_S:
        raise _bad(text, "the rate is longer than 100 years")
    return Rate(period)


@dataclass(frozen=True, slots=True)
class _Field:
    name: str
    low: int
    high: int
    names: dict[str, int] | None = None
    shift: int = 0  # added to numbers for croniter (EventBridge's day-of-week 1-7 -> 0-6)


_MINUTE = _Field("minutes", 0, 59)
_HOUR = _Field("hours", 0, 23)
_DOM = _Field("day-of-month", 1, 31)
_MONTH = _Field("month", 1, 12, _MONTHS)
_EB_DOW = _Field("day-of-week", 1, 7, _DAYS, shift=-1)
_YEAR = _Field("year", 1970, 2099)
_UNIX_DOW = _Field("day-of-week", 0, 7, _DAYS)
_EB_FIELDS = (_MINUTE, _HOUR, _DOM, _MONTH, _EB_DOW, _YEAR)
_UNIX_FIELDS = (_MINUTE, _HOUR, _DOM, _MONTH, _UNIX_DOW)


def _eventbridge_cron(text: str, inner: str, tz: tzinfo) -> Cron:
    parts = inner.split()
    if len(parts) == 5:
        raise _bad(
            text,
            "EventBridge cron has 6 fields (minutes hours day-of-month month day-of-week "
            "year); write a standard 5-field cron line without cron(...)",
        )
    if len(parts) != 6:
        raise _bad(
            text,
            f"cron(...) takes 6 fields (minutes hours day-of-month month day-of-week year), "
            f"not {len(parts)}",
        )
    dom, dow = parts[2], parts[4]
    if (dom == "?") == (dow == "?"):
        raise _bad(
            text,
            "put ? in exactly one of day-of-month and day-of-week (the other one decides "
            "the days), e.g. cron(0 12 * * ? *) or cron(0 12 ? * MON-FRI *)",
        )
    out = [
        _field(text, spec, raw, eventbridge=True)
        for spec, raw in zip(_EB_FIELDS, parts, strict=True)
    ]
    # croniter's 7-field form: minute hour day month day-of-week second year.
    return _checked(text, " ".join([*out[:5], "0", out[5]]), tz)


def _unix_cron(text: str, line: str, tz: tzinfo) -> Cron:
    if line.lower() in _UNIX_ALIASES:
        return _checked(text, line.lower(), tz)
    parts = line.split()
    if len(parts) != 5:
        raise _bad(text, f"not a schedule expression ({len(parts)} fields); {FORMS}")
    for item in re.split(r"[\s,]+", line):
        if "?" in item or "#" in item or re.fullmatch(r"[0-9]*[LW]|LW", item.upper()):
            raise _bad(
                text,
                f"{item!r}: ? L W # are EventBridge cron features; write them as "
                "cron(minutes hours day-of-month month day-of-week year)",
            )
    out = [
        _field(text, spec, raw, eventbridge=False)
        for spec, raw in zip(_UNIX_FIELDS, parts, strict=True)
    ]
    return _checked(text, " ".join(out), tz)


def _field(text: str, spec: _Field, raw: str, *, eventbridge: bool) -> str:
    """One field in croniter's syntax; raises InvalidRequest naming the field."""
    if raw == "?":
        if spec not in (_DOM, _EB_DOW):
            raise _bad(text, f"? stands only in day-of-month or day-of-week, not in {spec.name}")
        return "*"
    items = raw.split(",")
    out = []
    for item in items:
        special = _special(text, spec, item, single=len(items) == 1) if eventbridge else None
        out.append(special if special is not None else _item(text, spec, item))
    return ",".join(out)


def _special(text: str, spec: _Field, item: str, *, single: bool) -> str | None:
    """EventBridge's L, W and # items in croniter's spelling; None for an ordinary item."""
    upper = item.upper()
    if spec is _DOM:
        if upper == "L":
            return "l"
        if upper == "LW":
            raise _bad(text, "LW (last weekday of the month) is not supported; use L or 15W")
        if upper.endswith("W"):
            day = _value(text, spec, item[:-1])
            if not single:
                raise _bad(text, f"{item} (nearest weekday) must be the only day-of-month value")
            return f"{day}w"
    if spec is _EB_DOW:
        if upper == "L":
            return "6"  # the last day of the week: Saturday
        if upper.endswith("L"):
            return f"l{_value(text, spec, item[:-1]) + spec.shift}"
        if "#" in item:
            if not single:
                raise _bad(text, f"{item} (nth weekday) must be the only day-of-week value")
            weekday, _, nth = item.partition("#")
            if not re.fullmatch(r"[1-5]", nth):
                raise _bad(text, f"in {item!r}, the week after # must be 1-5")
            return f"{_value(text, spec, weekday) + spec.shift}#{nth}"
    if "#" in item or (upper.endswith(("L", "W")) and not upper.isalpha()):
        raise _bad(text, f"{item!r} is not allowed in the {spec.name} field")
    return None


def _item(text: str, spec: _Field, item: str) -> str:
    m = _ITEM.fullmatch(item)
    if m is None:
        raise _bad(
            text,
            f"{item!r} in the {spec.name} field is not a value, a range (a-b), a list (a,b), "
            "* or a step (*/n, a-b/n)",
        )
    base, low, high, step = m.groups()
    out = "*" if base == "*" else str(_value(text, spec, low) + spec.shift)
    if high is not None:
        out += f"-{_value(text, spec, high) + spec.shift}"
    if step is not None:
        if int(step) < 1:
            raise _bad(text, f"the step in {item!r} must be at least 1")
        out += f"/{int(step)}"
    return out


def _value(text: str, spec: _Field, token: str) -> int:
    if token.isdigit():
        number = int(token)
        if not spec.low <= number <= spec.high:
            extra = " (= SUN-SAT)" if spec is _EB_DOW else ""
            if spec is _YEAR and number > spec.high:
                extra = " (croniter computes no later years)"
            raise _bad(
                text,
                f"{number} is out of range for {spec.name}: {spec.low}-{spec.high}{extra}",
            )
        if spec is _UNIX_DOW and number == 7:
            return 0
        return number
    if spec.names is not None and token.upper() in spec.names:
        # croniter takes numbers; EventBridge's day numbers are shifted back by the caller.
        return spec.names[token.upper()] - spec.shift
    what = f"a {spec.name} name ({', '.join(spec.names)}) or " if spec.names else ""
    raise _bad(text, f"{token!r} in the {spec.name} field is not {what}a number")


def _checked(text: str, fields: str, tz: tzinfo) -> Cron:
    """Let croniter confirm the expression and that it still has a slot to come."""
    cron = Cron(fields, tz)
    try:
        upcoming = cron.next_after(datetime.now(UTC).timestamp(), 0.0)
    except CroniterError as exc:
        reason = re.sub(r"^\[.*?\]\s*", "", str(exc)).strip() or "croniter refuses it"
        raise _bad(text, reason) from None
    if upcoming is None:
        raise _bad(text, "no date matches it from now on")
    return cron
