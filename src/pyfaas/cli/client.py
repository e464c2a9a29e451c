"""Talking to a pyfaas server over HTTP, with errors a person can act on.

The CLI uses the SDK's :class:`pyfaas.sdk.Client`; this wrapper only turns its errors into
CliError (one line, no traceback).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import httpx

from pyfaas.model import PyfaasError
from pyfaas.sdk.client import DEFAULT_URL, Client, checked
from pyfaas.sdk.errors import ApiError

__all__ = ["DEFAULT_URL", "ApiClient", "CliError", "cli_error"]


class CliError(Exception):
    """An error shown to the user as one line, without a traceback."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


def cli_error(exc: PyfaasError) -> CliError:
    """The one line to show for an SDK error: the server's code in brackets, if any."""
    if isinstance(exc, ApiError) and not exc.code.startswith("http_"):
        return CliError(f"{exc.message} [{exc.code}]")
    return CliError(exc.message)


class ApiClient:
    """The SDK's Client, raising CliError."""

    def __init__(self, url: str | None, token: str | None, timeout: float = 960.0) -> None:
        self.sdk = Client(url, token, timeout=timeout)
        self.url = self.sdk.url

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """The server's answer; 400 or more (or none) raises CliError."""
        try:
            return checked(self.send(method, path, **kwargs))
        except PyfaasError as exc:
            raise cli_error(exc) from None

    def send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """The server's answer whatever its status; only a failed exchange raises CliError."""
        try:
            return self.sdk.send(method, path, **kwargs)
        except PyfaasError as exc:
            raise cli_error(exc) from None

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.request(method, path, **kwargs).json()

    def optional_json(self, method: str, path: str, **kwargs: Any) -> Any:
        """Like :meth:`json`, but None when the server answers 404 (nothing there)."""
        response = self.send(method, path, **kwargs)
        if response.status_code == 404:
            return None
        try:
            return checked(response).json()
        except PyfaasError as exc:
            raise cli_error(exc) from None

    @contextlib.contextmanager
    def stream(self, path: str, **kwargs: Any) -> Iterator[httpx.Response]:
        """GET ``path`` as a stream (no read timeout). An error answer raises CliError;
        httpx.TransportError (connection refused, dropped) is left to the caller to retry."""
        with contextlib.ExitStack() as stack:
            try:
                response = stack.enter_context(self.sdk.stream(path, **kwargs))
            except ApiError as exc:
                raise cli_error(exc) from None
            yield response
