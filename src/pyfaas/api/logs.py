"""``/v1/functions/{name}/logs``: invocation logs, by function and by request id."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from pyfaas.api.responses import JSONResponse
from pyfaas.api.services import services
from pyfaas.model import InvalidRequest

MAX_LIMIT = 10_000


async def function_logs(request: Request) -> Response:
    """Log records of a function's invocations, oldest first.
    ---
    summary: Read a function's logs
    parameters:
      - {name: name, in: path, required: true, schema: {type: string}}
      - {name: request_id, in: query, schema: {type: string}, description: one invocation only}
      - {name: after, in: query, schema: {type: integer}, description: "records with id > after
          (for following); without it, the newest `limit` records"}
      - {name: limit, in: query, schema: {type: integer, default: 100, maximum: 10000}}
    responses:
      200: {description: "{records: [{id, function, request_id, timestamp, text}], last_id}"}
      404: {description: function_not_found}
    """
    svc = services(request)
    name = request.path_params["name"]
    await svc.functions.get(name)
    after = int_param(request, "after", 0)
    limit = int_param(request, "limit", 100)
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidRequest(f"limit must be between 1 and {MAX_LIMIT}", code="invalid_limit")
    records = await svc.logs.query(
        name, request_id=request.query_params.get("request_id"), after_id=after, limit=limit
    )
    last_id = records[-1].id if records else after
    return JSONResponse({"records": [r.to_dict() for r in records], "last_id": last_id})


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
