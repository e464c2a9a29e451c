"""The ``context`` object a handler receives, shaped like AWS Lambda's Python runtime.

The shapes follow awslambdaric (the runtime Lambda itself runs), not the documentation's
prose: ``memory_limit_in_mb`` is the *string* from AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
``identity`` is a CognitoIdentity whose fields are None, and ``client_context`` is an object
(``.custom``, ``.env``, ``.client``) or None. Code written for Lambda relies on these shapes.
"""

from __future__ import annotations

import binascii
import json
import time

# typing is for the type checker only: importing it costs milliseconds of every cold start.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class CognitoIdentity:
    """The Cognito identity behind a mobile-SDK call; pyfaas has none, so both are None."""

    __slots__ = ("cognito_identity_id", "cognito_identity_pool_id")

    def __init__(self) -> None:
        self.cognito_identity_id: str | None = None
        self.cognito_identity_pool_id: str | None = None


class Client:
    """The mobile client application described in a client context."""

    __slots__ = (
        "app_package_name",
        "app_title",
        "app_version_code",
        "app_version_name",
        "installation_id",
    )

    def __init__(self, data: dict[str, Any]) -> None:
        for name in self.__slots__:
            setattr(self, name, data.get(name))


class ClientContext:
    """What the caller passed as client context: ``custom`` and ``env`` dicts, ``client``."""

    __slots__ = ("client", "custom", "env")

    def __init__(self, data: dict[str, Any]) -> None:
        self.custom: Any = data.get("custom")
        self.env: Any = data.get("env")
        client = data.get("client")
        self.client: Client | None = Client(client) if isinstance(client, dict) else None


def parse_client_context(raw: str | None) -> ClientContext | None:
    """Parse a client context given as JSON text or (Lambda's header form) base64 JSON.

    Anything that is not a JSON object gives None: a bad client context never fails a call.
    """
    if not raw:
        return None
    for text in (raw, None):
        try:
            if text is None:
                text = binascii.a2b_base64(raw, strict_mode=True).decode()
            data = json.loads(text)
        except ValueError:  # also binascii.Error and UnicodeDecodeError
            continue
        return ClientContext(data) if isinstance(data, dict) else None
    return None


class LambdaContext:
    """What AWS Lambda's Python runtime passes as the handler's second argument."""

    def __init__(
        self,
        *,
        function_name: str,
        function_version: str,
        invoked_function_arn: str,
        memory_limit_in_mb: str,
        aws_request_id: str,
        log_group_name: str,
        log_stream_name: str,
        deadline_ms: float,
        client_context: str | None = None,
        traceparent: str | None = None,
    ) -> None:
        self.function_name = function_name
        self.function_version = function_version
        self.invoked_function_arn = invoked_function_arn
        self.memory_limit_in_mb = memory_limit_in_mb
        self.aws_request_id = aws_request_id
        self.log_group_name = log_group_name
        self.log_stream_name = log_stream_name
        self.identity = CognitoIdentity()
        self.client_context = parse_client_context(client_context)
        # The caller's W3C trace context (pyfaas's, beyond Lambda's context): continue the
        # trace with OpenTelemetry's TraceContextTextMapPropagator().extract({"traceparent":
        # context.traceparent}). None when the invocation came without one.
        self.traceparent = traceparent
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before the invocation times out (0 once past). Non-blocking."""
        return max(0, int(self._deadline_ms - time.time() * 1000))

    def __repr__(self) -> str:
        return (
            f"LambdaContext(function_name={self.function_name!r}, "
            f"aws_request_id={self.aws_request_id!r})"
        )
