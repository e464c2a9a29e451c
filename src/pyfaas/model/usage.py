"""Usage: what one invocation consumed, and the price plans that turn usage into cost."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import NamedTuple

from pyfaas.model.errors import ConfigurationError

# How an invocation ended, as usage records say it. Throttled calls never ran: no record.
SUCCESS = "success"
ERROR = "error"  # the handler raised, or its result could not be marshalled
TIMEOUT = "timeout"
CRASH = "crash"  # the worker died, ran out of memory, exited, or the handler could not load
OUTCOMES = (SUCCESS, ERROR, TIMEOUT, CRASH)

DEFAULT_PLAN = "default"
_PLAN_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_CURRENCY = re.compile(r"^[A-Za-z]{1,16}$")


class UsageRecord(NamedTuple):
    """One invocation as metered. Times are microseconds except ``billed_ms``.

    ``started_at`` is the epoch second the call was asked for; ``duration_us`` the handler's
    run time as the worker measured it; ``billed_ms`` that, rounded up to a whole
    millisecond (1 ms at least). ``cpu_us`` is the worker's user+system CPU time during the
    call (None when the worker died before saying), ``init_us`` the cold start's wait (None
    when warm). ``price_plan`` is the plan the function named when it ran.

    A named tuple, not a dataclass: one is made for every invocation, and a tuple of plain
    values is quick to make, goes to the database driver as it is, and is left alone by
    the cyclic garbage collector.
    """

    function: str
    version: str
    request_id: str
    started_at: float
    duration_us: int
    billed_ms: int
    memory_mb: int
    max_memory_mb: int
    cpu_us: int | None
    init_us: int | None
    outcome: str
    price_plan: str = DEFAULT_PLAN


@dataclass(frozen=True, slots=True)
class PricePlan:
    """Prices of compute (per GB-second: memory size x billed duration) and of requests.

    Defaults are AWS Lambda's x86 on-demand prices in us-east-1. Amounts are Decimals:
    costs are exact sums, never float approximations.
    """

    name: str = DEFAULT_PLAN
    per_gb_second: Decimal = Decimal("0.0000166667")
    per_million_requests: Decimal = Decimal("0.20")
    currency: str = "USD"

    @classmethod
    def parse(cls, name: str, fields: dict[str, object]) -> PricePlan:
        """Build from configuration (``per_gb_second``, ``per_million_requests``,
        ``currency``; missing ones default). Raises ConfigurationError naming the field."""
        if not _PLAN_NAME.match(name):
            raise ConfigurationError(
                f"price plan name {name!r}: use 1-64 letters, digits, '-' or '_'"
            )
        unknown = sorted(set(fields) - {"per_gb_second", "per_million_requests", "currency"})
        if unknown:
            raise ConfigurationError(
                f"price plan {name!r}: unknown field(s) {', '.join(unknown)}; known: "
                "per_gb_second, per_million_requests, currency"
            )
        base = cls()
        currency = str(fields.get("currency", base.currency))
        if not _CURRENCY.match(currency):
            raise ConfigurationError(
                f"price plan {name!r}: currency {currency!r} must be 1-16 letters (e.g. USD)"
            )
        return cls(
            name=name,
            per_gb_second=_amount(name, "per_gb_second", fields, base.per_gb_second),
            per_million_requests=_amount(
                name, "per_million_requests", fields, base.per_million_requests
            ),
            currency=currency.upper(),
        )


def _amount(plan: str, key: str, fields: dict[str, object], default: Decimal) -> Decimal:
    raw = fields.get(key)
    if raw is None:
        return default
    if isinstance(raw, bool) or not isinstance(raw, str | int | float):
        raise ConfigurationError(f"price plan {plan!r}: {key} must be a number, got {raw!r}")
    try:
        # str() first: a TOML float 0.0000166667 must not carry binary noise into costs.
        value = Decimal(str(raw))
    except InvalidOperation:
        raise ConfigurationError(
            f"price plan {plan!r}: {key} must be a number, got {raw!r}"
        ) from None
    if not value.is_finite() or value < 0:
        raise ConfigurationError(f"price plan {plan!r}: {key} must be 0 or more, got {raw!r}")
    return value


def billed_ms(duration_ms: float) -> int:
    """Lambda bills whole milliseconds, rounded up, with a 1 ms minimum."""
    return max(1, math.ceil(duration_ms))
