"""The one error hierarchy of pyfaas.

Every error a client can see is a :class:`PyfaasError` with a stable ``code`` (what programs
match on), an HTTP ``status`` and a message that says what to fix. The API renders them as
``{"error": {"code": ..., "message": ...}}``.
"""

from __future__ import annotations


class PyfaasError(Exception):
    """Base of every error pyfaas reports to a client."""

    status: int = 500
    code: str = "internal_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def to_dict(self) -> dict[str, object]:
        return {"error": {"code": self.code, "message": self.message}}


class InvalidRequest(PyfaasError):
    """The request is malformed or a value is out of range (HTTP 400)."""

    status = 400
    code = "invalid_request"


class InvalidPayload(InvalidRequest):
    """The invocation payload is not valid JSON."""

    code = "invalid_payload"


class InvalidFunctionConfig(InvalidRequest):
    """A function's configuration (name, handler, memory, timeout, env) is not acceptable."""

    code = "invalid_config"


class InvalidBundle(InvalidRequest):
    """A code bundle cannot be accepted: unsafe paths, bad archive, unimportable handler."""

    code = "invalid_bundle"


class Unauthorized(PyfaasError):
    """The request carries no valid API token (HTTP 401)."""

    status = 401
    code = "unauthorized"


class NotFound(PyfaasError):
    """A named resource does not exist (HTTP 404)."""

    status = 404
    code = "not_found"


class FunctionNotFound(NotFound):
    """No function has this name."""

    code = "function_not_found"

    def __init__(self, name: str) -> None:
        super().__init__(f"function {name!r} does not exist; `pyfaas ls` lists the deployed ones")
        self.name = name


class Conflict(PyfaasError):
    """The request conflicts with the current state (HTTP 409)."""

    status = 409
    code = "conflict"


class FunctionExists(Conflict):
    """A function with this name already exists and the request asked to create it."""

    code = "function_exists"

    def __init__(self, name: str) -> None:
        super().__init__(
            f"function {name!r} already exists; update it with PUT /v1/functions/{name} "
            "(the CLI's `pyfaas deploy` does that unless --no-overwrite is given)"
        )
        self.name = name


class LengthRequired(PyfaasError):
    """An upload did not declare its size (HTTP 411)."""

    status = 411
    code = "length_required"


class PayloadTooLarge(PyfaasError):
    """A request body is over its configured limit (HTTP 413)."""

    status = 413
    code = "payload_too_large"


class TooManyRequests(PyfaasError):
    """Concurrency limits are reached; retry later (HTTP 429)."""

    status = 429
    code = "too_many_requests"

    def __init__(self, message: str, *, retry_after_s: float = 1.0, reason: str = "") -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
        self.reason = reason


class ServiceUnavailable(PyfaasError):
    """pyfaas cannot serve the request right now (HTTP 503), e.g. while shutting down."""

    status = 503
    code = "service_unavailable"


class WorkerLost(ServiceUnavailable):
    """The platform lost the worker mid-invocation (its Ray actor or node died): not the
    handler's doing, and not the server stopping, so the caller may retry at once (HTTP 503;
    the handler may have run in part). The async dispatcher queues the event again at once."""

    code = "worker_lost"


class ConfigurationError(PyfaasError):
    """The server's configuration cannot work (raised at start-up, before serving)."""

    code = "invalid_server_config"


class Forbidden(PyfaasError):
    """The API token is valid but may not do this (HTTP 403)."""

    status = 403
    code = "insufficient_scope"
