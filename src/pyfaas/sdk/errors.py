"""What the SDK raises: server answers, unreachable servers, and errors of the remote code.

All of them are :class:`pyfaas.model.PyfaasError` (one hierarchy, matched on ``code``).
"""

from __future__ import annotations

from pyfaas.model import PyfaasError


class ApiError(PyfaasError):
    """The server refused a request: ``status`` and ``code`` are the server's own."""

    def __init__(self, message: str, *, status: int, code: str) -> None:
        super().__init__(message, code=code)
        self.status = status


class ServerUnreachable(PyfaasError):
    """No answer from the server (refused, timed out, dropped)."""

    code = "server_unreachable"
    status = 503


class ShippingError(PyfaasError):
    """A function cannot be packed into a bundle: a module it needs has no source to ship."""

    code = "cannot_ship"
    status = 400


class SerializationError(PyfaasError):
    """Arguments or a result cannot be carried by the function's serializer."""

    code = "not_serializable"
    status = 400


class RemoteTraceback(Exception):
    """The remote traceback, as text: the ``__cause__`` of an exception re-raised locally."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return self.text


class RemoteError(PyfaasError):
    """The remote function failed with an exception this process cannot rebuild (its type is
    not importable here, or it is the platform's: ``Sandbox.Timedout``, ``Runtime.*``)."""

    code = "function_error"
    status = 200

    def __init__(
        self, error_type: str, message: str, *, request_id: str | None, traceback: str
    ) -> None:
        super().__init__(f"{error_type}: {message}")
        self.error_type = error_type
        self.error_message = message
        self.request_id = request_id
        self.remote_traceback = traceback
