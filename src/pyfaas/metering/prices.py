"""Price plans: what usage costs, per GB-second and per request, in a plan's currency."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal, localcontext

from pyfaas.model import InvalidFunctionConfig, PricePlan
from pyfaas.model.usage import DEFAULT_PLAN

# billed ms x memory MB -> GB-seconds (Lambda counts 1 GB as 1024 MB).
_MS_MB_PER_GB_SECOND = Decimal(1000 * 1024)
_MILLION = Decimal(1_000_000)


class PriceBook:
    """The server's price plans by name; there is always a ``default`` one.

    Costs are exact Decimals: GB-seconds are billed ms x MB / 1,024,000 (a terminating
    fraction) and the prices are decimals, so nothing is rounded on the way.
    """

    def __init__(self, plans: Iterable[PricePlan] = ()) -> None:
        self._plans = {plan.name: plan for plan in plans}
        self._plans.setdefault(DEFAULT_PLAN, PricePlan())

    @property
    def default(self) -> PricePlan:
        return self._plans[DEFAULT_PLAN]

    def names(self) -> list[str]:
        return sorted(self._plans)

    def plan(self, name: str | None) -> PricePlan:
        """The plan called ``name`` (None: the default). A plan removed from the
        configuration since prices with the default one."""
        return self._plans.get(name or DEFAULT_PLAN, self.default)

    def check(self, name: str | None) -> None:
        """Raise InvalidFunctionConfig (invalid_price_plan) unless ``name`` is a plan."""
        if name is not None and name not in self._plans:
            raise InvalidFunctionConfig(
                f"price_plan {name!r} is not one of the server's price plans "
                f"({', '.join(self.names())}); use one of them or null for the default",
                code="invalid_price_plan",
            )


def gb_seconds(gb_ms_mb: int) -> Decimal:
    """GB-seconds from the sum of billed ms x memory MB."""
    with localcontext(prec=50):
        return Decimal(gb_ms_mb) / _MS_MB_PER_GB_SECOND


def cost(plan: PricePlan, gb_ms_mb: int, requests: int) -> Decimal:
    """What ``requests`` invocations using ``gb_ms_mb`` (billed ms x MB) cost on ``plan``."""
    with localcontext(prec=50):
        return (
            gb_seconds(gb_ms_mb) * plan.per_gb_second
            + Decimal(requests) * plan.per_million_requests / _MILLION
        )
