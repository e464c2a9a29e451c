"""The console's pages. Each handler reads what it shows from the services in a fixed
number of queries (never one per function) and renders a template; the page's script then
uses the API itself, under ``/console/api/v1/...``, for invoking, logs and redrive."""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from pyfaas.api.console.render import html_errors, render
from pyfaas.api.console.session import LOGIN, clear_cookie, context
from pyfaas.api.console.views import (
    error_summary,
    function_charts,
    overview_rows,
    redact_environment,
    redact_value,
    usage_chart,
)
from pyfaas.api.schedules import render as render_schedule
from pyfaas.api.services import services
from pyfaas.metering import UsageQuery
from pyfaas.metering.activity import SPANS
from pyfaas.model import NotFound, ServiceUnavailable
from pyfaas.model.events import DEAD

DLQ_PAGE = 200
# Overview rows laid out for the first paint; the rest follow right after it.
FIRST_ROWS = 60
# Set by the versions-and-aliases work: the function page shows that section only then.
VERSIONS_ROUTE = "/v1/functions/{name}/versions"


def _metering_off() -> ServiceUnavailable:
    return ServiceUnavailable("metering is off on this server (metering = false): no usage")


@html_errors
async def overview(request: Request) -> Response:
    svc = services(request)
    records, backlog = await asyncio.gather(svc.functions.list(), svc.events.backlog())
    recent = await svc.activity.recent() if svc.activity is not None else {}
    stats = {r.name: svc.scaler.stats(r.name) for r in records}
    rows = overview_rows(records, stats, recent, backlog)
    return render(request, "overview.html", title="Functions", rows=rows, first_rows=FIRST_ROWS)


@html_errors
async def function_page(request: Request) -> Response:
    svc = services(request)
    name = request.path_params["name"]
    record = await svc.functions.get(name)
    schedules, sources, counts = await asyncio.gather(
        svc.schedules.list(name), svc.sources.list(name), svc.events.counts(name)
    )
    try:
        url = str(request.base_url).rstrip("/") + (await svc.urls.get(name)).path + "/"
    except NotFound:
        url = None
    for source in sources:
        source["url"] = redact_value("url", str(source.get("url", "")))
    config = record.to_dict()
    config.pop("environment", None)
    span = _span(request)
    return render(
        request,
        "function.html",
        title=name,
        record=record,
        config=config,
        environment=redact_environment(record.config.environment),
        stats=asdict(svc.scaler.stats(name)),
        log_stats=svc.logs.stats(name).to_dict(),
        url=url,
        schedules=[render_schedule(svc.schedules, s) for s in schedules],
        sources=sources,
        async_counts=counts,
        charts=await _charts(request, name, span),
        span=span,
        spans=list(SPANS),
        has_versions=any(getattr(r, "path", "") == VERSIONS_ROUTE for r in request.app.routes),
    )


@html_errors
async def function_charts_fragment(request: Request) -> Response:
    """The charts of a function alone (the page's script swaps them in after an invoke)."""
    svc = services(request)
    name = request.path_params["name"]
    await svc.functions.get(name)
    span = _span(request)
    return render(request, "charts.html", charts=await _charts(request, name, span), span=span)


def _span(request: Request) -> str:
    return request.query_params.get("range", "1h")


async def _charts(request: Request, name: str, span: str) -> list[object]:
    activity = services(request).activity
    if activity is None:
        return []
    return list(function_charts(await activity.series(name, span)))


@html_errors
async def usage_page(request: Request) -> Response:
    svc = services(request)
    params = {"group_by": "function,day", "start": request.query_params.get("start", "30d")}
    if request.query_params.get("function"):
        params["function"] = request.query_params["function"]
    query = UsageQuery.parse(params)
    if svc.usage is None:
        raise _metering_off()
    report = await svc.usage.report(query)
    csv_link = "/console/api/v1/usage?" + urlencode({**params, "format": "csv"})
    return render(
        request,
        "usage.html",
        title="Usage and cost",
        report=report.to_dict(),
        charts=usage_chart(report.rows),
        start=params["start"],
        function=params.get("function", ""),
        csv_link=csv_link,
    )


@html_errors
async def async_page(request: Request) -> Response:
    svc = services(request)
    function = request.query_params.get("function") or None
    backlog, dead = await asyncio.gather(
        svc.events.backlog(),
        svc.events.list_events(status=DEAD, function=function, limit=DLQ_PAGE),
    )
    return render(
        request,
        "async.html",
        title="Async",
        backlog=sorted(backlog.items()),
        dead=[{**e.to_dict(), "summary": error_summary(e.last_error)} for e in dead],
        function=function or "",
        limit=DLQ_PAGE,
    )


async def login_page(request: Request) -> Response:
    return render(
        request,
        "login.html",
        title="Log in",
        next=_safe_next(request.query_params.get("next")),
        expired=request.query_params.get("expired") == "1",
    )


async def logout(request: Request) -> Response:
    target = LOGIN if context(request).token_required else "/console/"
    response = RedirectResponse(target, status_code=303)
    clear_cookie(response)
    return response


async def console_root(request: Request) -> Response:
    return RedirectResponse("/console/", status_code=308)


def _safe_next(raw: str | None) -> str:
    """Where to go after logging in: a console page, never another site."""
    if raw and raw.startswith("/console/") and "//" not in raw and "\\" not in raw:
        return raw
    return "/console/"


PAGE_ROUTES = [
    Route("/console/", overview, methods=["GET"], include_in_schema=False),
    Route("/console/functions/{name}", function_page, methods=["GET"], include_in_schema=False),
    Route(
        "/console/functions/{name}/charts",
        function_charts_fragment,
        methods=["GET"],
        include_in_schema=False,
    ),
    Route("/console/usage", usage_page, methods=["GET"], include_in_schema=False),
    Route("/console/async", async_page, methods=["GET"], include_in_schema=False),
]
