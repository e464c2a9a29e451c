"""Errors in the AWS Lambda API's shape: ``x-amzn-ErrorType`` names the exception botocore
raises, the body carries ``Type`` and ``message``/``Message``.

pyfaas's own errors keep their stable code (``pyfaasCode`` in the body); their HTTP status
picks the Lambda exception name.
"""

from __future__ import annotations

from starlette.responses import Response

from pyfaas.api.responses import JSONResponse
from pyfaas.model import PyfaasError, TooManyRequests

# pyfaas codes whose Lambda exception is not the one of their HTTP status.
_BY_CODE = {
    "invalid_payload": "InvalidRequestContentException",
    "invalid_json": "InvalidRequestContentException",
}
_BY_STATUS = {
    400: "InvalidParameterValueException",
    401: "UnrecognizedClientException",
    403: "AccessDeniedException",
    404: "ResourceNotFoundException",
    409: "ResourceConflictException",
    411: "InvalidParameterValueException",
    412: "PreconditionFailedException",
    413: "RequestTooLargeException",
    429: "TooManyRequestsException",
}


class LambdaApiError(PyfaasError):
    """An error only the Lambda-compatible surface reports, with Lambda's exception name."""

    def __init__(self, status: int, error_type: str, message: str, *, code: str) -> None:
        super().__init__(message, code=code)
        self.status = status
        self.error_type = error_type


def unsupported(operation: str, hint: str = "") -> LambdaApiError:
    """The answer to a Lambda operation pyfaas does not implement (never a 500)."""
    return LambdaApiError(
        400,
        "UnsupportedOperationException",
        f"pyfaas does not implement the Lambda operation {operation}{hint}",
        code="unsupported_operation",
    )


def invalid_parameter(message: str, code: str = "invalid_parameter") -> LambdaApiError:
    return LambdaApiError(400, "InvalidParameterValueException", message, code=code)


def not_found(message: str, code: str = "function_not_found") -> LambdaApiError:
    return LambdaApiError(404, "ResourceNotFoundException", message, code=code)


def error_type(exc: PyfaasError) -> str:
    """The Lambda exception name for ``exc``."""
    if isinstance(exc, LambdaApiError):
        return exc.error_type
    found = _BY_CODE.get(exc.code) or _BY_STATUS.get(exc.status)
    return found or "ServiceException"


def lambda_error_response(exc: PyfaasError) -> Response:
    """``exc`` as the Lambda API answers it; a 5xx is always a ServiceException."""
    name = error_type(exc)
    status = exc.status
    if status >= 500 and name != "ServiceException":
        name = "ServiceException"
    body: dict[str, str] = {
        "Type": "Service" if status >= 500 else "User",
        "message": exc.message,
        "Message": exc.message,
        "pyfaasCode": exc.code,
    }
    headers = {"x-amzn-ErrorType": name}
    if isinstance(exc, TooManyRequests):
        body["Reason"] = exc.reason
        headers["Retry-After"] = str(max(1, round(exc.retry_after_s)))
    return JSONResponse(body, status_code=status, headers=headers)
