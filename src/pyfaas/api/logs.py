"""``/v1/functions/{name}/logs``: invocation logs, searched or followed (server-sent events)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from pyfaas.api.responses import JSONResponse
from pyfaas.api.services import ApiServices, services
from pyfaas.control import LogQueryService
from pyfaas.model import InvalidRequest, LogQuery
from pyfaas.telemetry import record_view

MAX_LIMIT = 10_000
MAX_FILTER = 1024


async def function_logs(request: Request) -> Response:
    """Log records of a function's invocations, oldest first.
    ---
    summary: Read a function's logs
    parameters:
      - {name: name, in: path, required: true, schema: {type: string}}
      - {name: request_id, in: query, schema: {type: string}, description: one invocation only}
      - {name: filter, in: query, schema: {type: string}, description: "records containing this
          text (case-sensitive); each record's text then holds only its matching lines"}
      - {name: since, in: query, schema: {type: string}, description: "records at or after this
          time: seconds since the epoch or ISO 8601 (2026-11-25T10:00:00Z)"}
      - {name: until, in: query, schema: {type: string}, description: "records at or before
          this time, as since"}
      - {name: after, in: query, schema: {type: integer}, description: "cursor: records with
          id > after (for following); without it, the newest `limit` records"}
      - {name: limit, in: query, schema: {type: integer, default: 100, minimum: 1, maximum: 10000}}
    responses:
      200: {description: "{records: [{id, function, request_id, timestamp, text, structured:
          [{line, fields}]}], last_id}; structured lists the lines of text that are JSON
          objects; last_id is the cursor to continue from (`after`, or Last-Event-ID of the
          stream)"}
      400: {description: "invalid_time_range, invalid_cursor, invalid_limit, invalid_query"}
      404: {description: function_not_found}
    """
    svc, query = await _function_query(request)
    limit = int_param(request, "limit", 100)
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidRequest(f"limit must be between 1 and {MAX_LIMIT}", code="invalid_limit")
    after = _cursor(request.query_params.get("after"), "after")
    if after:
        await svc.logs.check_cursor(after)
    records, last_id = await svc.logs.page(dataclasses.replace(query, after_id=after, limit=limit))
    return JSONResponse(
        {"records": [record_view(r, query.contains) for r in records], "last_id": last_id}
    )


async def follow_logs(request: Request) -> Response:
    """Follow a function's log: records as they are stored, as server-sent events.
    ---
    summary: Follow a function's logs (text/event-stream)
    parameters:
      - {name: name, in: path, required: true, schema: {type: string}}
      - {name: Last-Event-ID, in: header, schema: {type: integer}, description: "resume after
          this record id (what EventSource sends when it reconnects); wins over `after`"}
      - {name: after, in: query, schema: {type: integer}, description: "resume after this
          record id; without a cursor, `since` or the records stored from now on"}
      - {name: since, in: query, schema: {type: string}, description: "start at this time
          (seconds since the epoch or ISO 8601)"}
      - {name: request_id, in: query, schema: {type: string}}
      - {name: filter, in: query, schema: {type: string}}
    responses:
      200: {description: "`id: <record id>` / `event: log` / `data: <record as in GET logs>`
          per record, oldest first; a `: keep-alive` comment every 15 s without records"}
      400: {description: "invalid_time_range, invalid_cursor, invalid_query"}
      404: {description: function_not_found}
    """
    svc, query = await _function_query(request)
    if query.until is not None:
        raise InvalidRequest(
            "a follow has no end: leave out until (or read the range with GET .../logs)",
            code="invalid_time_range",
        )
    raw = request.headers.get("last-event-id") or request.query_params.get("after")
    after = None if raw is None else _cursor(raw, "Last-Event-ID or after")
    if after is None:
        # Fixed now, not when the stream starts: nothing stored in between is missed.
        after = await svc.logs.start_cursor(query)
    else:
        await svc.logs.check_cursor(after)
    return StreamingResponse(
        _events(svc.logs, query, after),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


async def _events(logs: LogQueryService, query: LogQuery, after: int) -> AsyncIterator[bytes]:
    cursor = after
    # Sent at once, so a client knows it is connected before the first record.
    yield b": following\n\n"
    async for record in logs.follow(query, after):
        if record is None:
            yield b": keep-alive\n\n"
            continue
        cursor = max(cursor, record.id)
        data = orjson.dumps(record_view(record, query.contains))
        yield b"id: %d\nevent: log\ndata: %s\n\n" % (cursor, data)


async def _function_query(request: Request) -> tuple[ApiServices, LogQuery]:
    """The services and the query's filters; raises FunctionNotFound or InvalidRequest."""
    svc = services(request)
    name = request.path_params["name"]
    await svc.functions.get(name)
    return svc, _log_query(request, name)


def _log_query(request: Request, name: str) -> LogQuery:
    params = request.query_params
    contains = params.get("filter") or None
    if contains is not None and len(contains) > MAX_FILTER:
        raise InvalidRequest(
            f"filter is {len(contains)} characters; at most {MAX_FILTER}", code="invalid_query"
        )
    since = parse_time(params.get("since"), "since")
    until = parse_time(params.get("until"), "until")
    if since is not None and until is not None and since > until:
        raise InvalidRequest(
            f"since ({params['since']}) is after until ({params['until']}): swap them",
            code="invalid_time_range",
        )
    return LogQuery(
        name,
        request_id=params.get("request_id") or None,
        contains=contains,
        since=since,
        until=until,
    )


def parse_time(raw: str | None, key: str) -> float | None:
    """Seconds since the epoch from a number or an ISO 8601 time (UTC unless it says).

    Raises InvalidRequest (``invalid_time_range``) for anything else.
    """
    if raw is None or raw == "":
        return None
    try:
        value = float(raw)
    except ValueError:
        try:
            parsed = datetime.fromisoformat(raw)
        except ValueError:
            raise InvalidRequest(
                f"{key} must be seconds since the epoch or an ISO 8601 time such as "
                f"2026-11-25T10:00:00Z, got {raw!r}",
                code="invalid_time_range",
            ) from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.timestamp()
    if not math.isfinite(value) or value < 0:
        raise InvalidRequest(
            f"{key} must be a time at or after 1970-01-01, got {raw!r}", code="invalid_time_range"
        )
    return value


def _cursor(raw: str | None, key: str) -> int:
    if raw is None:
        return 0
    try:
        value = int(raw)
    except ValueError:
        raise InvalidRequest(
            f"{key} is a log record id (an integer), got {raw!r}", code="invalid_cursor"
        ) from None
    if value < 0:
        raise InvalidRequest(f"{key} must not be negative, got {value}", code="invalid_cursor")
    return value


def int_param(request: Request, key: str, default: int) -> int:
    raw = request.query_params.get(key)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise InvalidRequest(
            f"{key} must be an integer, got {raw!r}", code="invalid_query"
        ) from None
