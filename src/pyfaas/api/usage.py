"""``/v1/usage``: usage and cost reports, and ``/metrics`` for Prometheus."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from pyfaas.api.responses import JSONResponse
from pyfaas.api.services import services
from pyfaas.metering import UsageQuery
from pyfaas.model import ServiceUnavailable

# The text format prometheus_client's generate_latest writes.
PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"


async def usage_report(request: Request) -> Response:
    """Usage and cost over a time range, by function, version, day or hour.
    ---
    summary: Usage and cost report
    parameters:
      - {name: start, in: query, schema: {type: string}, description: "ISO 8601 date or time
          (UTC unless it has an offset), epoch seconds, or a span back from now (24h, 7d);
          default: 30 days before end"}
      - {name: end, in: query, schema: {type: string}, description: "exclusive; default now"}
      - {name: group_by, in: query, schema: {type: string, default: function},
          description: "comma-separated: function, version, day, hour"}
      - {name: function, in: query, schema: {type: string}}
      - {name: format, in: query, schema: {type: string, enum: [json, csv], default: json}}
    responses:
      200: {description: "{start, end, group_by, rows: [...], totals: [...]}, or CSV"}
      400: {description: "invalid_range, invalid_group_by, invalid_format, invalid_name,
        unknown_field"}
      503: {description: "metering is off on this server"}
    """
    svc = services(request)
    query = UsageQuery.parse(dict(request.query_params))
    if svc.usage is None:
        raise ServiceUnavailable("metering is off on this server (metering = false)")
    report = await svc.usage.report(query)
    if query.format == "csv":
        return Response(report.to_csv(), media_type="text/csv; charset=utf-8")
    return JSONResponse(report.to_dict())


async def prometheus_metrics(request: Request) -> Response:
    """Prometheus metrics of invocations, workers and the async queue, per function.
    ---
    summary: Prometheus metrics
    responses:
      200: {description: "Prometheus text exposition format"}
    """
    svc = services(request)
    if svc.metrics is None:
        raise ServiceUnavailable("metrics are not available on this server")
    return Response(await svc.metrics.render(), media_type=PROMETHEUS_TEXT)
