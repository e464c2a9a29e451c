"""Async invocations after acceptance: ``/v1/invocations/{id}`` and the dead-letter queue."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from pyfaas.api.body import read_json_object
from pyfaas.api.logs import int_param
from pyfaas.api.responses import JSONResponse
from pyfaas.api.services import services
from pyfaas.model import InvalidRequest
from pyfaas.model.events import DEAD

MAX_LIST = 1000


async def invocation_status(request: Request) -> Response:
    """Where an asynchronous invocation stands.
    ---
    summary: Status of an async invocation
    parameters: [{name: request_id, in: path, required: true, schema: {type: string}}]
    responses:
      200:
        description: "{request_id, function, status (queued, running, succeeded, failed,
          dead), attempts, failures, last_error, condition, result (the handler's result once
          succeeded, else null), ...}"
      404: {description: invocation_not_found}
    """
    event = await services(request).events.status(request.path_params["request_id"])
    return JSONResponse(event.to_dict(with_result=True))


async def list_invocations(request: Request) -> Response:
    """Async invocations, most recently changed first.
    ---
    summary: List async invocations
    parameters:
      - {name: status, in: query, schema: {type: string}}
      - {name: function, in: query, schema: {type: string}}
      - {name: limit, in: query, schema: {type: integer, default: 100, minimum: 1, maximum: 1000}}
    responses:
      200: {description: "{invocations: [...]}"}
      400: {description: "invalid_query, invalid_limit"}
    """
    events = await services(request).events.list_events(
        status=request.query_params.get("status"),
        function=request.query_params.get("function"),
        limit=_limit(request),
    )
    return JSONResponse({"invocations": [e.to_dict() for e in events]})


async def list_dead_letters(request: Request) -> Response:
    """The dead-letter queue: events whose retries ran out or that grew too old.
    ---
    summary: List the dead-letter queue
    parameters:
      - {name: function, in: query, schema: {type: string}}
      - {name: limit, in: query, schema: {type: integer, default: 100, minimum: 1, maximum: 1000}}
    responses:
      200: {description: "{events: [...]}"}
      400: {description: invalid_limit}
    """
    events = await services(request).events.list_events(
        status=DEAD, function=request.query_params.get("function"), limit=_limit(request)
    )
    return JSONResponse({"events": [e.to_dict() for e in events]})


async def show_dead_letter(request: Request) -> Response:
    """One event of the dead-letter queue, with its payload and last error.
    ---
    summary: Show a dead event
    parameters: [{name: request_id, in: path, required: true, schema: {type: string}}]
    responses:
      200: {description: the event with its payload}
      404: {description: invocation_not_found}
    """
    event = await services(request).events.dead_letter(request.path_params["request_id"])
    return JSONResponse(event.to_dict(with_payload=True))


async def redrive_dead_letters(request: Request) -> Response:
    """Queue dead events again, with fresh retries and age.
    ---
    summary: Redrive the dead-letter queue
    requestBody:
      content:
        application/json:
          schema:
            type: object
            properties:
              request_ids: {type: array, items: {type: string}}
              function: {type: string}
              all: {type: boolean, description: "every dead event (when nothing else is named)"}
    responses:
      200: {description: "{redriven: [request ids]}"}
      400: {description: invalid_request}
    """
    body = await read_json_object(request, 1024 * 1024, "the redrive request")
    unknown = sorted(set(body) - {"request_ids", "function", "all"})
    ids, function = body.get("request_ids"), body.get("function")
    if unknown:
        raise InvalidRequest(f"unknown field(s): {', '.join(unknown)}", code="unknown_field")
    if ids is not None and not (
        isinstance(ids, list) and all(isinstance(i, str) for i in ids) and ids
    ):
        raise InvalidRequest("request_ids must be a non-empty list of strings")
    if function is not None and not isinstance(function, str):
        raise InvalidRequest("function must be a function name")
    if ids is None and function is None and body.get("all") is not True:
        raise InvalidRequest(
            "name what to redrive: request_ids, a function, or all: true for every dead event"
        )
    moved = await services(request).events.redrive(request_ids=ids, function=function)
    return JSONResponse({"redriven": moved})


def _limit(request: Request) -> int:
    limit = int_param(request, "limit", 100)
    if not 1 <= limit <= MAX_LIST:
        raise InvalidRequest(f"limit must be between 1 and {MAX_LIST}", code="invalid_limit")
    return limit
