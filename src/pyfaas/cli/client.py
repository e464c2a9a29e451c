"""Talking to a pyfaas server over HTTP, with errors a person can act on."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import httpx

DEFAULT_URL = "http://127.0.0.1:8080"


class CliError(Exception):
    """An error shown to the user as one line, without a traceback."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


class ApiClient:
    """A thin wrapper over httpx that turns failures into CliError."""

    def __init__(self, url: str | None, token: str | None, timeout: float = 960.0) -> None:
        self.url = (url or os.environ.get("PYFAAS_URL") or DEFAULT_URL).rstrip("/")
        token = token or os.environ.get("PYFAAS_TOKEN")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        response = self.send(method, path, **kwargs)
        if response.status_code >= 400:
            raise CliError(_describe_error(response))
        return response

    def send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """The server's answer whatever its status; only a failed exchange raises CliError."""
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.ConnectError:
            raise CliError(
                f"cannot reach the pyfaas server at {self.url}: is it running? "
                "Start one with `pyfaas serve` (or `make run`), or point --url/PYFAAS_URL at it."
            ) from None
        except httpx.TimeoutException:
            raise CliError(f"the server at {self.url} did not answer in time") from None
        except httpx.HTTPError as exc:
            raise CliError(f"request to {self.url} failed: {exc}") from None
        return response

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.request(method, path, **kwargs).json()

    def optional_json(self, method: str, path: str, **kwargs: Any) -> Any:
        """Like :meth:`json`, but None when the server answers 404 (nothing there)."""
        response = self.send(method, path, **kwargs)
        if response.status_code == 404:
            return None
        if response.status_code >= 400:
            raise CliError(_describe_error(response))
        return response.json()

    @contextlib.contextmanager
    def stream(self, path: str, **kwargs: Any) -> Iterator[httpx.Response]:
        """GET ``path`` as a stream (no read timeout). An error answer raises CliError;
        httpx.TransportError (connection refused, dropped) is left to the caller to retry."""
        timeout = httpx.Timeout(10.0, read=None)
        with self._http.stream("GET", path, timeout=timeout, **kwargs) as response:
            if response.status_code >= 400:
                response.read()
                raise CliError(_describe_error(response))
            yield response


def _describe_error(response: httpx.Response) -> str:
    try:
        error = response.json()["error"]
        return f"{error['message']} [{error['code']}]"
    except (ValueError, KeyError, TypeError):
        return f"the server answered {response.status_code}: {response.text[:200]}"
