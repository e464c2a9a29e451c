"""``/v1/functions/{name}/invoke``: synchronous invocation."""

from __future__ import annotations

import base64

from starlette.requests import Request
from starlette.responses import Response

from pyfaas.api.body import read_body
from pyfaas.api.services import services
from pyfaas.telemetry import format_invocation_log

LOG_TAIL_BYTES = 4096


async def invoke_function(request: Request) -> Response:
    """Run the function with the JSON body as its event and return its result.
    ---
    summary: Invoke a function synchronously
    parameters:
      - {name: name, in: path, required: true, schema: {type: string}}
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
      400: {description: invalid_payload}
      404: {description: function_not_found}
      413: {description: payload_too_large}
    """
    svc = services(request)
    name = request.path_params["name"]
    payload = await read_body(request, svc.limits.sync_payload_bytes)
    result = await svc.invocations.invoke(name, payload)
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
        fv = await svc.functions.resolve(name)
        tail = format_invocation_log(fv, result).encode()[-LOG_TAIL_BYTES:]
        headers["x-pyfaas-log-result"] = base64.b64encode(tail).decode()
    return Response(result.body, media_type="application/json", headers=headers)
