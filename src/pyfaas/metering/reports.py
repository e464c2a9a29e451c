"""Usage reports: usage and cost by function, version, hour or day over a time range."""

from __future__ import annotations

import csv
import io
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from pyfaas.metering.prices import PriceBook, cost, gb_seconds
from pyfaas.metering.writer import UsageWriter
from pyfaas.model import InvalidRequest, validate_name
from pyfaas.store.usage import UsageStore, UsageTotals

GROUPS = ("function", "version", "day", "hour")
FORMATS = ("json", "csv")
DEFAULT_SPAN_S = 30 * 86400
_RELATIVE = re.compile(r"^(\d+)([smhd])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# The sums of a report row, in the order CSV columns list them.
_SUMS = (
    "invocations",
    "successes",
    "errors",
    "timeouts",
    "crashes",
    "cold_starts",
    "duration_us",
    "billed_ms",
    "gb_ms_mb",
    "cpu_us",
    "init_us",
)


def parse_time(raw: str, what: str, now: float) -> float:
    """Epoch seconds from ``raw``: epoch seconds, an ISO 8601 date or date-time (UTC
    unless it has an offset), or a span back from now (``90s``, ``15m``, ``24h``, ``7d``).
    Raises InvalidRequest (invalid_range)."""
    raw = raw.strip()
    relative = _RELATIVE.match(raw)
    if relative:
        return now - int(relative[1]) * _UNIT_S[relative[2]]
    try:
        return float(raw)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidRequest(
            f"{what} {raw!r} is not a time: use an ISO 8601 date or time (2026-11-25, "
            "2026-11-25T10:00:00Z), epoch seconds, or a span back from now (30m, 24h, 7d)",
            code="invalid_range",
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


@dataclass(frozen=True, slots=True)
class UsageQuery:
    """A validated report request: records started in [start, end), grouped by ``group_by``
    (a subset of function, version, day, hour), of one function or all."""

    start: float
    end: float
    group_by: tuple[str, ...] = ("function",)
    function: str | None = None
    format: str = "json"

    @classmethod
    def parse(cls, params: Mapping[str, str], now: float | None = None) -> UsageQuery:
        """From query parameters ``start``, ``end``, ``group_by`` (comma-separated),
        ``function``, ``format``. Raises InvalidRequest with codes invalid_range,
        invalid_group_by, invalid_format, invalid_name, unknown_field."""
        unknown = sorted(set(params) - {"start", "end", "group_by", "function", "format"})
        if unknown:
            raise InvalidRequest(
                f"unknown parameter(s) {', '.join(unknown)}; known: start, end, group_by, "
                "function, format",
                code="unknown_field",
            )
        now = time.time() if now is None else now
        end = parse_time(params["end"], "end", now) if "end" in params else now
        start = (
            parse_time(params["start"], "start", now) if "start" in params else end - DEFAULT_SPAN_S
        )
        if not start < end:
            raise InvalidRequest(
                f"the range is empty: start ({_iso(start)}) must come before end ({_iso(end)})",
                code="invalid_range",
            )
        group_by = _parse_group_by(params.get("group_by", "function"))
        fmt = params.get("format", "json")
        if fmt not in FORMATS:
            raise InvalidRequest(
                f"format {fmt!r} is not one of {', '.join(FORMATS)}", code="invalid_format"
            )
        function = params.get("function")
        if function is not None:
            validate_name(function)
        return cls(start=start, end=end, group_by=group_by, function=function, format=fmt)


def _parse_group_by(raw: str) -> tuple[str, ...]:
    groups = tuple(g.strip() for g in raw.split(",") if g.strip())
    bad = [g for g in groups if g not in GROUPS]
    if bad:
        raise InvalidRequest(
            f"group_by {', '.join(map(repr, bad))} is not one of {', '.join(GROUPS)} "
            "(comma-separated, e.g. function,day)",
            code="invalid_group_by",
        )
    if len(set(groups)) != len(groups):
        raise InvalidRequest(f"group_by {raw!r} names a group twice", code="invalid_group_by")
    if "day" in groups and "hour" in groups:
        raise InvalidRequest("group_by day or by hour, not both", code="invalid_group_by")
    if "version" in groups and "function" not in groups:
        groups = ("function", *groups)  # a version number means nothing without its function
    # Columns in a fixed order, whatever order they were asked in.
    return tuple(g for g in GROUPS if g in groups)


@dataclass(frozen=True, slots=True)
class UsageReport:
    """Rows of usage sums and their cost, one per group and currency, and totals per
    currency. Amounts (GB-seconds, cost) are exact decimal strings."""

    query: UsageQuery
    rows: list[dict[str, Any]]
    totals: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return {
            "start": _iso(self.query.start),
            "end": _iso(self.query.end),
            "group_by": list(self.query.group_by),
            "function": self.query.function,
            "rows": self.rows,
            "totals": self.totals,
        }

    def to_csv(self) -> str:
        """One line per row; columns: the groups, then the sums, GB-seconds, cost, currency."""
        columns = [*self.query.group_by, *_COLUMNS]
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for row in self.rows:
            writer.writerow({k: row[k] for k in columns})
        return buffer.getvalue()


_COLUMNS = (
    "invocations",
    "successes",
    "errors",
    "timeouts",
    "crashes",
    "cold_starts",
    "duration_ms",
    "billed_ms",
    "cpu_ms",
    "init_ms",
    "max_memory_mb",
    "gb_seconds",
    "cost",
    "currency",
)


class UsageService:
    """Answers usage queries; what ran just now is included (pending records go first)."""

    def __init__(self, store: UsageStore, writer: UsageWriter, prices: PriceBook) -> None:
        self._store = store
        self._writer = writer
        self._prices = prices

    async def report(self, query: UsageQuery) -> UsageReport:
        await self._writer.flush()
        bucket = next((g for g in ("hour", "day") if g in query.group_by), None)
        totals = await self._store.usage_totals(
            start=query.start,
            end=query.end,
            function=query.function,
            by_version="version" in query.group_by,
            bucket=bucket,
        )
        groups: dict[tuple[Any, ...], dict[str, Any]] = {}
        for t in totals:
            plan = self._prices.plan(t.price_plan)
            key = (*_group_key(t, query.group_by), plan.currency)
            row = groups.get(key)
            if row is None:
                row = groups[key] = _empty_row(t, query.group_by, plan.currency)
            for name in _SUMS:
                row[name] += getattr(t, name)
            row["max_memory_mb"] = max(row["max_memory_mb"], t.max_memory_mb)
            row["cost"] += cost(plan, t.gb_ms_mb, t.invocations)
        rows = [_finish(row) for _, row in sorted(groups.items(), key=lambda kv: _sort(kv[0]))]
        return UsageReport(query, rows, _totals(rows))


def _group_key(t: UsageTotals, group_by: tuple[str, ...]) -> tuple[Any, ...]:
    values = {"function": t.function, "version": t.version, "day": t.bucket, "hour": t.bucket}
    return tuple(values[g] for g in group_by)


def _sort(key: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple("" if k is None else k for k in key)


def _empty_row(t: UsageTotals, group_by: tuple[str, ...], currency: str) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for group in group_by:
        if group == "function":
            row["function"] = t.function
        elif group == "version":
            row["version"] = t.version
        elif group == "day":
            row["day"] = datetime.fromtimestamp((t.bucket or 0) * 86400, UTC).date().isoformat()
        else:
            row["hour"] = _iso((t.bucket or 0) * 3600)
    row.update(dict.fromkeys(_SUMS, 0), max_memory_mb=0, cost=Decimal(0), currency=currency)
    return row


def _finish(row: dict[str, Any]) -> dict[str, Any]:
    """The groups, then the sums in the units a reader wants (ms, GB-seconds), the exact
    decimals as strings, in the order of the CSV columns."""
    out = {k: v for k, v in row.items() if k in GROUPS}
    computed = {
        "duration_ms": row["duration_us"] / 1000,
        "cpu_ms": row["cpu_us"] / 1000,
        "init_ms": row["init_us"] / 1000,
        "gb_seconds": _decimal(gb_seconds(row["gb_ms_mb"])),
        "cost": _decimal(row["cost"]),
    }
    for column in _COLUMNS:
        out[column] = computed[column] if column in computed else row[column]
    return out


def _totals(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by_currency: dict[str, dict[str, Any]] = {}
    for row in rows:
        total = by_currency.setdefault(
            row["currency"],
            {"currency": row["currency"], "invocations": 0, "billed_ms": 0, "cost": Decimal(0)},
        )
        total["invocations"] += row["invocations"]
        total["billed_ms"] += row["billed_ms"]
        total["cost"] += Decimal(row["cost"])
    return [{**t, "cost": _decimal(t["cost"])} for _, t in sorted(by_currency.items())]


def _decimal(value: Decimal) -> str:
    """A plain decimal string, no exponent, no trailing zeros ("0.0000006625")."""
    text = f"{value:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")
