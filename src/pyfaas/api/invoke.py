"""``/v1/functions/{name}/invoke``: synchronous and asynchronous (``Event``) invocation;
``/v1/functions/{name}/invoke-batch``: many synchronous invocations in one request."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from pyfaas.api.body import read_body, receive_body
from pyfaas.api.responses import JSONResponse
from pyfaas.api.services import ApiServices, scope_services, services
from pyfaas.control.batches import BatchOutcome, BatchRun, split_batch
from pyfaas.model import InvalidRequest, TooManyRequests
from pyfaas.telemetry import format_invocation_log

LOG_TAIL_BYTES = 4096


_INVOKE_HEADERS = frozenset(
    (b"x-invocation-type", b"x-amz-invocation-type", b"traceparent", b"x-pyfaas-log-type")
)


class InvokeEndpoint:
    """``POST /v1/functions/{name}/invoke`` as a plain ASGI app: the hot path of the native
    API builds no Request and no Response, and its headers are read in one pass. Errors it
    raises reach the app's exception handlers like any route's."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.post(scope, receive, send)

    async def post(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the function with the JSON body as its event and return its result; or, with
        X-Invocation-Type Event, queue it durably and answer 202 at once.
        ---
        summary: Invoke a function (synchronously, or asynchronously with X-Invocation-Type Event)
        parameters:
          - $ref: "#/components/parameters/QualifiedFunction"
          - $ref: "#/components/parameters/Qualifier"
          - name: X-Invocation-Type
            in: header
            description: "RequestResponse (default) or Event (async: 202 once the event is
              durable). X-Amz-Invocation-Type is read too."
            schema: {type: string, enum: [RequestResponse, Event]}
          - name: X-Idempotency-Key
            in: header
            description: "Event only: a repeated key for the same function is accepted once
              (202 with the first request id and X-Pyfaas-Duplicate true)"
            schema: {type: string}
          - name: X-Pyfaas-Log-Type
            in: header
            description: "Tail: return the last 4 KB of the invocation's log, base64, in
              X-Pyfaas-Log-Result"
            schema: {type: string, enum: [None, Tail]}
        requestBody:
          content:
            application/json: {schema: {description: "the event; empty means {}"}}
        responses:
          200:
            description: "the handler's JSON result; when X-Pyfaas-Function-Error is set,
              Lambda's error object (errorMessage, errorType, stackTrace)"
          202: {description: "Event: accepted and durable; {request_id}"}
          400: {description: invalid_payload}
          404: {description: "function_not_found, version_not_found, alias_not_found"}
          413: {description: payload_too_large}
        """
        svc = scope_services(scope)
        name: str = scope["path_params"]["name"]
        if scope["query_string"]:
            name = qualified_name(name, QueryParams(scope["query_string"]).get("qualifier"))
        # The first of each header counts (as Starlette's Headers.get); one pass.
        found: dict[bytes, bytes] = {}
        declared = None
        for key, value in scope["headers"]:
            if key == b"content-length":
                if declared is None:
                    declared = value.decode("latin-1")
            elif key in _INVOKE_HEADERS and key not in found:
                found[key] = value
        kind = (
            found.get(b"x-invocation-type")
            or found.get(b"x-amz-invocation-type", b"RequestResponse")
        ).decode("latin-1")
        if kind == "Event":
            response = await _submit(Request(scope, receive), svc, name)
            await response(scope, receive, send)
            return
        if kind != "RequestResponse":
            raise InvalidRequest(
                f"X-Invocation-Type {kind!r} is not supported; use RequestResponse or Event",
                code="invalid_invocation_type",
            )
        payload = await receive_body(receive, declared, svc.limits.sync_payload_bytes)
        traceparent = found.get(b"traceparent")
        result = await svc.invocations.invoke(
            name,
            payload,
            traceparent=None if traceparent is None else traceparent.decode("latin-1"),
        )
        headers = [
            (b"x-pyfaas-request-id", result.request_id.encode("latin-1")),
            (b"x-pyfaas-executed-version", result.version.encode("latin-1")),
            (b"x-pyfaas-duration-ms", b"%.3f" % result.duration_ms),
        ]
        if result.function_error:
            headers.append((b"x-pyfaas-function-error", result.function_error.encode("latin-1")))
        if result.init_duration_ms is not None:
            headers.append((b"x-pyfaas-init-duration-ms", b"%.3f" % result.init_duration_ms))
        if found.get(b"x-pyfaas-log-type", b"").lower() == b"tail":
            fv = await svc.invocations.resolve(name)
            tail = format_invocation_log(fv, result).encode()[-LOG_TAIL_BYTES:]
            headers.append((b"x-pyfaas-log-result", base64.b64encode(tail)))
        body = result.body
        headers.append((b"content-length", b"%d" % len(body)))
        headers.append((b"content-type", b"application/json"))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def qualified_name(name: str, qualifier: str | None) -> str:
    """``name`` with the ``qualifier`` query parameter applied. Raises InvalidRequest
    (invalid_qualifier) when the path names another qualifier."""
    if qualifier is None:
        return name
    base, sep, given = name.partition(":")
    if sep and given != qualifier:
        raise InvalidRequest(
            f"the path names qualifier {given!r} and the query {qualifier!r}; give one",
            code="invalid_qualifier",
        )
    return f"{base}:{qualifier}"


async def _submit(request: Request, svc: ApiServices, name: str) -> Response:
    payload = await read_body(request, svc.limits.async_payload_bytes, "asynchronous payload")
    key = request.headers.get("x-idempotency-key")
    request_id, new = await svc.invocations.submit(name, payload, key)
    headers = {"x-pyfaas-request-id": request_id}
    if not new:
        headers["x-pyfaas-duplicate"] = "true"
    return JSONResponse({"request_id": request_id}, status_code=202, headers=headers)


async def invoke_batch(request: Request) -> Response:
    """Run the function once per line of the body (one JSON event per line), each event an
    invocation of its own, and stream one line per result as each finishes.
    ---
    summary: Invoke a function once per event of a batch (synchronously), results streamed
    description: "Each event runs as if sent alone to /invoke: its own request id, admission
      (one event may be throttled while the others run), timeout, log and usage record. The
      whole batch is checked before any event runs. Answer lines come in the order the
      invocations finish; `index` says which event (0-based) each is for."
    parameters:
      - $ref: "#/components/parameters/QualifiedFunction"
      - $ref: "#/components/parameters/Qualifier"
      - name: concurrency
        in: query
        description: "events of this batch run at once (default 1: one after the other)"
        schema: {type: integer, minimum: 1}
    requestBody:
      required: true
      content:
        application/x-ndjson:
          schema: {type: array, items: {}, description: "the events, one JSON value per
            line; at most batch_max_items (1000) events and sync_payload_bytes (6 MB) in
            all"}
    responses:
      200:
        description: "application/x-ndjson, one line per event: {index, status: 200,
          request_id, version, duration_ms, function_error, init_duration_ms, body} (body is
          the handler's result, or Lambda's error object when function_error is set), or
          {index, status, error: {code, message}} for an event that did not run (429
          too_many_requests...)"
      400: {description: "invalid_payload (a line that is empty or not JSON), empty_batch,
        too_many_batch_items, invalid_concurrency, invalid_invocation_type"}
      404: {description: "function_not_found, version_not_found, alias_not_found"}
      413: {description: payload_too_large}
    """
    svc = services(request)
    name = request.path_params["name"]
    concurrency = 1
    if request.scope["query_string"]:
        name = qualified_name(name, request.query_params.get("qualifier"))
        concurrency = _batch_concurrency(
            request.query_params.get("concurrency"), svc.limits.batch_max_items
        )
    kind = request.headers.get("x-invocation-type", "RequestResponse")
    if kind != "RequestResponse":
        raise InvalidRequest(
            f"X-Invocation-Type {kind!r} is not supported by invoke-batch, which runs events "
            "synchronously; submit async events one by one to /invoke",
            code="invalid_invocation_type",
        )
    body = await read_body(request, svc.limits.sync_payload_bytes, "batch")
    payloads = split_batch(body, svc.limits.batch_max_items)
    await svc.invocations.resolve(name)  # an unknown function or alias: 404, nothing runs
    run = BatchRun(
        svc.invocations,
        name,
        payloads,
        concurrency=concurrency,
        traceparent=request.headers.get("traceparent"),
    )
    return StreamingResponse(
        _answer_lines(run),
        media_type="application/x-ndjson",
        headers={"x-pyfaas-batch-items": str(len(payloads))},
    )


def _batch_concurrency(given: str | None, most: int) -> int:
    if given is None:
        return 1
    if not (given.isascii() and given.isdigit()) or not 1 <= int(given) <= most:
        raise InvalidRequest(
            f"concurrency must be a whole number from 1 to {most}, not {given!r}",
            code="invalid_concurrency",
        )
    return int(given)


async def _answer_lines(run: BatchRun) -> AsyncIterator[bytes]:
    async for group in run.outcomes():
        yield b"".join(_answer_line(outcome) for outcome in group)


def _answer_line(outcome: BatchOutcome) -> bytes:
    result = outcome.result
    if result is None:
        assert outcome.refusal is not None
        exc = outcome.refusal
        error: dict[str, Any] = {"code": exc.code, "message": exc.message}
        if isinstance(exc, TooManyRequests):
            error["reason"] = exc.reason
        line: dict[str, Any] = {"index": outcome.index, "status": exc.status, "error": error}
        return orjson.dumps(line) + b"\n"
    body, init = result.body, result.init_duration_ms
    line = {
        "index": outcome.index,
        "status": 200,
        "request_id": result.request_id,
        "version": result.version,
        "duration_ms": round(result.duration_ms, 3),
        "function_error": result.function_error,
        "init_duration_ms": None if init is None else round(init, 3),
        # The result is JSON already; one that spans lines (none the runtime writes) is
        # parsed and written again to keep one answer per line.
        "body": orjson.Fragment(body) if b"\n" not in body else orjson.loads(body),
    }
    return orjson.dumps(line) + b"\n"
