"""The frame every Lambda API operation runs in: authenticate (SigV4), read the body within
its limit, run the operation, and answer any error in Lambda's shape."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from pyfaas.api.body import read_body
from pyfaas.api.lambda_api.errors import LambdaApiError, lambda_error_response
from pyfaas.api.lambda_api.naming import FunctionRef, parse_function_ref
from pyfaas.api.lambda_api.sigv4 import SigV4Verifier
from pyfaas.api.services import ApiServices, services
from pyfaas.control.versions import VersionService
from pyfaas.model import PyfaasError, ServiceUnavailable

log = logging.getLogger("pyfaas.api.lambda")

SMALL_BODY = 256 * 1024


@dataclass(frozen=True, slots=True)
class LambdaCall:
    """One authenticated call of a Lambda operation, its body read."""

    request: Request
    services: ApiServices
    body: bytes

    def json(self) -> dict[str, Any]:
        """The body as a JSON object (empty: {}); raises InvalidRequestContentException."""
        if not self.body.strip():
            return {}
        try:
            data = orjson.loads(self.body)
        except orjson.JSONDecodeError as exc:
            raise LambdaApiError(
                400,
                "InvalidRequestContentException",
                f"the request body is not valid JSON: {exc}",
                code="invalid_json",
            ) from None
        if not isinstance(data, dict):
            raise LambdaApiError(
                400,
                "InvalidRequestContentException",
                "the request body must be a JSON object",
                code="invalid_json",
            )
        return data

    def function(self) -> FunctionRef:
        """The function the path names (a name, an ARN or a partial ARN, maybe qualified)."""
        return parse_function_ref(self.request.path_params["FunctionName"])

    def query(self, key: str) -> str | None:
        if not self.request.scope["query_string"]:  # most calls: no query to parse
            return None
        return self.request.query_params.get(key)

    def versions(self) -> VersionService:
        """Published versions and aliases; raises ServiceUnavailable on a server without."""
        found = self.services.versions
        if found is None:
            raise ServiceUnavailable("versions and aliases are not available on this server")
        return found


Operation = Callable[[LambdaCall], Awaitable[Response]]


def lambda_operation(
    operation: Operation, *, max_body: Callable[[ApiServices], int] | None = None
) -> Callable[[Request], Awaitable[Response]]:
    """A Starlette endpoint running ``operation`` in the Lambda API's frame."""

    async def endpoint(request: Request) -> Response:
        try:
            svc = services(request)
            verifier: SigV4Verifier | None = getattr(request.app.state, "lambda_auth", None)
            if verifier is None:
                raise ServiceUnavailable("the server is starting or stopping; retry in a moment")
            signed = verifier.parse(request.headers)
            limit = max_body(svc) if max_body is not None else SMALL_BODY
            body = await read_body(request, limit, "the request body")
            if signed is not None:
                scope = request.scope
                verifier.verify(
                    signed,
                    method=request.method,
                    raw_path=(scope.get("raw_path") or scope["path"].encode()).decode("latin-1"),
                    raw_query=scope.get("query_string", b"").decode("latin-1"),
                    headers=scope["headers"],
                    body=body,
                )
            return await operation(LambdaCall(request, svc, body))
        except PyfaasError as exc:
            return lambda_error_response(exc)
        except Exception:
            log.exception("unexpected error in %s %s", request.method, request.url.path)
            return lambda_error_response(
                PyfaasError("internal error; the server log has details", code="internal_error")
            )

    endpoint.__name__ = operation.__name__
    endpoint.__doc__ = operation.__doc__
    return endpoint
