"""``/v1/functions/{name}/invoke``: synchronous and asynchronous (``Event``) invocation."""

from __future__ import annotations

import base64

from starlette.requests import Request
from starlette.responses import Response

from pyfaas.api.body import read_body
from pyfaas.api.responses import JSONResponse
from pyfaas.api.services import ApiServices, services
from pyfaas.model import InvalidRequest
from pyfaas.telemetry import format_invocation_log

LOG_TAIL_BYTES = 4096


async def invoke_function(request: Request) -> Response:
    """Run the function with the JSON body as its event and return its result; or, with
    X-Invocation-Type Event, queue it durably and answer 202 at once.
    ---
    summary: Invoke a function (synchronously, or asynchronously with X-Invocation-Type Event)
    parameters:
      - name: name
        in: path
        required: true
        description: "the function, or name:qualifier (a version number, an alias, $LATEST)"
        schema: {type: string}
      - name: qualifier
        in: query
        description: "a version number or alias to run instead of $LATEST"
        schema: {type: string}
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
        description: "the handler's JSON result; when X-Pyfaas-Function-Error is set, Lambda's
          error object (errorMessage, errorType, stackTrace)"
      202: {description: "Event: accepted and durable; {request_id}"}
      400: {description: invalid_payload}
      404: {description: "function_not_found, version_not_found, alias_not_found"}
      413: {description: payload_too_large}
    """
    svc = services(request)
    name = request.path_params["name"]
    if request.scope["query_string"]:
        name = qualified_name(name, request.query_params.get("qualifier"))
    kind = request.headers.get("x-invocation-type") or request.headers.get(
        "x-amz-invocation-type", "RequestResponse"
    )
    if kind == "Event":
        return await _submit(request, svc, name)
    if kind != "RequestResponse":
        raise InvalidRequest(
            f"X-Invocation-Type {kind!r} is not supported; use RequestResponse or Event",
            code="invalid_invocation_type",
        )
    payload = await read_body(request, svc.limits.sync_payload_bytes)
    result = await svc.invocations.invoke(
        name, payload, traceparent=request.headers.get("traceparent")
    )
    headers = {
        "x-pyfaas-request-id": result.request_id,
        "x-pyfaas-executed-version": result.version,
        "x-pyfaas-duration-ms": f"{result.duration_ms:.3f}",
    }
    if result.function_error:
        headers["x-pyfaas-function-error"] = result.function_error
    if result.init_duration_ms is not None:
        headers["x-pyfaas-init-duration-ms"] = f"{result.init_duration_ms:.3f}"
    if request.headers.get("x-pyfaas-log-type", "").lower() == "tail":
        fv = await svc.invocations.resolve(name)
        tail = format_invocation_log(fv, result).encode()[-LOG_TAIL_BYTES:]
        headers["x-pyfaas-log-result"] = base64.b64encode(tail).decode()
    return Response(result.body, media_type="application/json", headers=headers)


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
