"""What the API needs from the rest of pyfaas, handed over by the server at start-up."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from starlette.requests import Request
from starlette.types import Scope

from pyfaas.control import (
    EventService,
    FunctionService,
    InvocationService,
    LogQueryService,
    MetricsService,
)
from pyfaas.control.access import TokenService
from pyfaas.control.rollouts import RolloutService
from pyfaas.control.schedules import ScheduleService
from pyfaas.control.secrets import SecretService
from pyfaas.control.urls import FunctionUrlService
from pyfaas.control.versions import VersionService
from pyfaas.executor.sandbox import Isolation
from pyfaas.metering import ActivityService, UsageService
from pyfaas.model import Limits, ServiceUnavailable
from pyfaas.scaling import Scaler
from pyfaas.sources import SourceService


@dataclass(frozen=True, slots=True)
class ApiServices:
    functions: FunctionService
    invocations: InvocationService
    events: EventService
    logs: LogQueryService
    scaler: Scaler
    limits: Limits
    upload_dir: Path
    urls: FunctionUrlService
    schedules: ScheduleService
    sources: SourceService
    usage: UsageService | None = None  # None: metering is off
    metrics: MetricsService | None = None
    tokens: TokenService | None = None  # access control (None: a server without a token)
    secrets: SecretService | None = None
    versions: VersionService | None = None
    rollouts: RolloutService | None = None
    isolation: Isolation | None = None  # what workers get on this machine (pyfaas doctor)
    activity: ActivityService | None = None  # None: metering is off


def services(request: Request) -> ApiServices:
    """The server's services; raises ServiceUnavailable while it starts or stops."""
    return scope_services(request.scope)


def scope_services(scope: Scope) -> ApiServices:
    """:func:`services` for an ASGI endpoint, which has a scope and no Request."""
    found: ApiServices | None = getattr(scope["app"].state, "services", None)
    if found is None:
        raise ServiceUnavailable("the server is starting or stopping; retry in a moment")
    return found
