"""Rendering errors as ``{"error": {"code", "message"}}`` with stable codes."""

from __future__ import annotations

import logging

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from pyfaas.api.responses import JSONResponse
from pyfaas.model import PyfaasError, TooManyRequests

log = logging.getLogger("pyfaas.api")

_HTTP_CODES = {404: "route_not_found", 405: "method_not_allowed"}


def error_response(status: int, code: str, message: str, **extra: str) -> Response:
    return JSONResponse({"error": {"code": code, "message": message, **extra}}, status_code=status)


async def pyfaas_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, PyfaasError)
    if isinstance(exc, TooManyRequests):
        # Lambda's TooManyRequestsException carries a Reason; Retry-After is whole seconds.
        response = error_response(exc.status, exc.code, exc.message, reason=exc.reason)
        response.headers["Retry-After"] = str(max(1, round(exc.retry_after_s)))
        return response
    return error_response(exc.status, exc.code, exc.message)


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    message = exc.detail
    if exc.status_code == 404:
        message = f"no such endpoint: {request.method} {request.url.path}"
    elif exc.status_code == 405:
        message = f"{request.method} is not allowed on {request.url.path}"
    return error_response(exc.status_code, code, message)


async def unexpected_error(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, "internal_error", "internal error; the server log has details")
