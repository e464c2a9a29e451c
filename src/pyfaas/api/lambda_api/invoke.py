"""Invoke (RequestResponse, Event, DryRun) and the legacy InvokeAsync."""

from __future__ import annotations

import base64
import binascii

import orjson
from starlette.responses import Response

from pyfaas.api.invoke import LOG_TAIL_BYTES
from pyfaas.api.lambda_api.errors import LambdaApiError, invalid_parameter
from pyfaas.api.lambda_api.operation import LambdaCall
from pyfaas.api.responses import JSONResponse
from pyfaas.api.services import ApiServices
from pyfaas.model import LATEST
from pyfaas.telemetry import format_invocation_log

INVOCATION_TYPES = ("RequestResponse", "Event", "DryRun")
MAX_CLIENT_CONTEXT = 3583  # Lambda's limit on the base64 header


def max_invoke_body(svc: ApiServices) -> int:
    return svc.limits.sync_payload_bytes


async def invoke(call: LambdaCall) -> Response:
    """Invoke: run the function and answer its result (RequestResponse), queue the event
    durably and answer 202 (Event), or only check that it could run (DryRun, 204). A
    ``Qualifier`` (or a qualified name) runs a version or an alias (drawn by its weights);
    ``X-Amz-Executed-Version`` is the version that ran."""
    headers = call.request.headers
    name = call.function().qualified(call.query("Qualifier"))
    kind = headers.get("x-amz-invocation-type", "RequestResponse")
    if kind not in INVOCATION_TYPES:
        raise invalid_parameter(
            f"InvocationType {kind!r} must be one of {', '.join(INVOCATION_TYPES)}",
            code="invalid_invocation_type",
        )
    log_type = headers.get("x-amz-log-type", "None")
    if log_type not in ("None", "Tail"):
        raise invalid_parameter(
            f"LogType {log_type!r} must be None or Tail", code="invalid_log_type"
        )
    client_context = _client_context(headers.get("x-amz-client-context"))
    svc = call.services
    if kind == "DryRun":
        await svc.invocations.resolve(name)
        return Response(status_code=204)
    if kind == "Event":
        request_id, _ = await svc.invocations.submit(name, call.body)
        return Response(status_code=202, headers={"x-amzn-RequestId": request_id})
    result = await svc.invocations.invoke(
        name,
        call.body,
        traceparent=headers.get("traceparent"),
        client_context=client_context,
    )
    out = {
        "x-amzn-RequestId": result.request_id,
        "X-Amz-Executed-Version": result.version,
    }
    if result.function_error:
        out["X-Amz-Function-Error"] = result.function_error
    if log_type == "Tail":
        base = name.partition(":")[0]
        ran = base if result.version == LATEST else f"{base}:{result.version}"
        fv = await svc.invocations.resolve(ran)
        tail = format_invocation_log(fv, result).encode()[-LOG_TAIL_BYTES:]
        out["X-Amz-Log-Result"] = base64.b64encode(tail).decode()
    return Response(result.body, media_type="application/json", headers=out)


async def invoke_async(call: LambdaCall) -> Response:
    """InvokeAsync (deprecated on AWS, still in botocore): an Event invocation."""
    name = call.function().latest()
    request_id, _ = await call.services.invocations.submit(name, call.body)
    return JSONResponse({"Status": 202}, status_code=202, headers={"x-amzn-RequestId": request_id})


def _client_context(raw: str | None) -> str | None:
    """The header as given, once sure it is base64 of a JSON object (as Lambda requires)."""
    if raw is None:
        return None
    problem = None
    if len(raw) > MAX_CLIENT_CONTEXT:
        problem = f"is {len(raw)} characters; at most {MAX_CLIENT_CONTEXT} are allowed"
    else:
        try:
            data = orjson.loads(binascii.a2b_base64(raw, strict_mode=True))
        except (binascii.Error, ValueError):
            data = None
        if not isinstance(data, dict):
            problem = "must be a JSON object, base64-encoded"
    if problem is not None:
        raise LambdaApiError(
            400,
            "InvalidRequestContentException",
            f"ClientContext {problem}",
            code="invalid_client_context",
        )
    return raw
