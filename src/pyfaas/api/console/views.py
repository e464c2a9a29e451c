"""What the console's pages show, computed from the services' answers: overview rows,
redacted environments, the charts of a function and of usage."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from markupsafe import Markup

from pyfaas.api.console.charts import Series, chart
from pyfaas.metering import Activity, ActivityPoint
from pyfaas.model import FunctionRecord
from pyfaas.scaling import ScalingStats

REDACTED = "••••••••"
# Names of variables that usually hold credentials.
_SECRET_NAME = re.compile(
    r"SECRET|PASSW|PASSWD|PWD|TOKEN|API_?KEY|ACCESS_?KEY|PRIVATE|CREDENTIAL|AUTH|SESSION|"
    r"SIGNING|SALT|CERT|DSN|CONNECTION_?STRING",
    re.IGNORECASE,
)
# user:password@ in a URL (a database or broker URL in any variable).
_URL_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^:/@\s]*:)[^@/\s]+(?P<tail>@)", re.I)


def looks_secret(name: str) -> bool:
    return _SECRET_NAME.search(name) is not None


def redact_value(name: str, value: str) -> str:
    """The value as the console shows it: hidden when the name looks like a secret's, and
    without the password of any URL in it."""
    if looks_secret(name):
        return REDACTED
    return _URL_PASSWORD.sub(lambda m: m["head"] + REDACTED + m["tail"], value)


def redact_environment(env: Mapping[str, str]) -> list[tuple[str, str, bool]]:
    """(name, shown value, redacted?) per variable, by name."""
    return [(k, redact_value(k, v), redact_value(k, v) != v) for k, v in sorted(env.items())]


def error_summary(last_error: str | None) -> str:
    """``errorType: errorMessage`` of a Lambda error object; other text as it is."""
    if not last_error:
        return ""
    try:
        error = json.loads(last_error)
    except ValueError:
        return last_error
    if not isinstance(error, dict) or "errorMessage" not in error:
        return last_error
    kind = error.get("errorType")
    return f"{kind}: {error['errorMessage']}" if kind else str(error["errorMessage"])


@dataclass(frozen=True, slots=True)
class OverviewRow:
    """One function on the overview."""

    name: str
    description: str
    memory_mb: int
    status: str
    stats: ScalingStats
    activity: Activity
    queued: int
    dead: int
    updated_at: float


def status_of(stats: ScalingStats) -> str:
    """``running`` (calls in flight), ``warm`` (idle workers), ``cold`` (no worker)."""
    if stats.in_flight or stats.workers_busy:
        return "running"
    if stats.workers_idle:
        return "warm"
    return "cold"


def overview_rows(
    records: Sequence[FunctionRecord],
    stats: Mapping[str, ScalingStats],
    recent: Mapping[str, Activity],
    backlog: Mapping[str, tuple[int, float | None, int]],
) -> list[OverviewRow]:
    rows = []
    for r in records:
        depth, _, dead = backlog.get(r.name, (0, None, 0))
        s = stats[r.name]
        rows.append(
            OverviewRow(
                name=r.name,
                description=r.config.description,
                memory_mb=r.config.memory_mb,
                status=status_of(s),
                stats=s,
                activity=recent.get(r.name, Activity()),
                queued=depth,
                dead=dead,
                updated_at=r.updated_at,
            )
        )
    return rows


def _label(at: float, step_s: float) -> str:
    moment = datetime.fromtimestamp(at, UTC)
    return moment.strftime("%m-%d" if step_s >= 86400 else "%H:%M")


def function_charts(points: Sequence[ActivityPoint]) -> list[Markup]:
    """Invocations and errors, duration percentiles, concurrency, cold starts."""
    step = points[1].at - points[0].at if len(points) > 1 else 60.0
    labels = [_label(p.at, step) for p in points]
    a = [p.activity for p in points]
    return [
        chart(
            "Invocations",
            labels,
            [
                Series("invocations", [float(x.invocations) for x in a], "s-calls"),
                Series("errors", [float(x.errors) for x in a], "s-errors"),
            ],
        ),
        chart(
            "Duration",
            labels,
            [
                Series("p50", [x.p50_ms for x in a], "s-p50"),
                Series("p99", [x.p99_ms for x in a], "s-p99"),
            ],
            unit=" ms",
        ),
        chart(
            "Concurrency (average in flight)",
            labels,
            [Series("concurrency", [round(x.concurrency, 6) for x in a], "s-concurrency")],
        ),
        chart(
            "Cold starts",
            labels,
            [Series("cold starts", [float(x.cold_starts) for x in a], "s-cold")],
        ),
    ]


def usage_chart(rows: Sequence[Mapping[str, Any]]) -> list[Markup]:
    """Per day over all functions: invocations, and the cost in each currency."""
    days = sorted({str(r["day"]) for r in rows})
    calls = dict.fromkeys(days, 0.0)
    costs: dict[str, dict[str, Decimal]] = {}
    for r in rows:
        calls[str(r["day"])] += float(r["invocations"])
        per_day = costs.setdefault(str(r["currency"]), dict.fromkeys(days, Decimal(0)))
        per_day[str(r["day"])] += Decimal(str(r["cost"]))
    labels = [d[5:] for d in days]
    charts = [
        chart(
            "Invocations per day",
            labels,
            [Series("invocations", [calls[d] for d in days], "s-calls")],
            bars=True,
        )
    ]
    for currency, per_day in sorted(costs.items()):
        charts.append(
            chart(
                f"Cost per day ({currency})",
                labels,
                [Series(currency, [float(per_day[d]) for d in days], "s-cost")],
                bars=True,
            )
        )
    return charts
