"""``pyfaas.Client``: call any function by name, sync or async, and the rest of the HTTP API.

Everything the SDK and the CLI say to a server goes through this class. Failures become
:class:`ApiError` (the server's code and message) or :class:`ServerUnreachable`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import CodeType
from typing import Any

import httpx
import orjson

from pyfaas.sdk.errors import ApiError, SerializationError, ServerUnreachable
from pyfaas.sdk.http1 import ConnectionDropped, Http1Connection, RawResponse, proxy_for
from pyfaas.sdk.remote_exceptions import rebuild_exception

DEFAULT_URL = "http://127.0.0.1:8080"
# Sync calls may run for a function's whole timeout (900 s at most) plus a cold start.
DEFAULT_TIMEOUT_S = 960.0
_LIMITS = httpx.Limits(max_connections=None, max_keepalive_connections=256)


@dataclass(frozen=True, slots=True)
class InvokeResponse:
    """One synchronous invocation's answer: the body (the JSON result, or Lambda's error
    object when ``function_error`` is set) and what the server said about the run."""

    body: bytes
    request_id: str
    function_error: str | None
    duration_ms: float | None
    init_duration_ms: float | None
    log_tail: str | None = None

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


class Client:
    """A pyfaas server at ``url`` (default ``PYFAAS_URL``, else http://127.0.0.1:8080),
    with ``token`` (default ``PYFAAS_TOKEN``). Thread-safe; the async methods work on any
    event loop (one connection pool per loop)."""

    def __init__(
        self, url: str | None = None, token: str | None = None, *, timeout: float | None = None
    ) -> None:
        self.url = (url or os.environ.get("PYFAAS_URL") or DEFAULT_URL).rstrip("/")
        token = token or os.environ.get("PYFAAS_TOKEN")
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._timeout = DEFAULT_TIMEOUT_S if timeout is None else timeout
        self._sync: httpx.Client | None = None
        self._async: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient] = (
            weakref.WeakKeyDictionary()
        )

    def __repr__(self) -> str:
        return f"Client({self.url!r})"

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the sync connection pool (async pools close with their event loop)."""
        if self._sync is not None:
            self._sync.close()
            self._sync = None

    async def aclose(self) -> None:
        """Close the running event loop's connection pool."""
        client = self._async.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.aclose()

    # --- HTTP -------------------------------------------------------------------------------

    @property
    def http(self) -> httpx.Client:
        """The underlying httpx.Client (created on first use)."""
        if self._sync is None:
            self._sync = httpx.Client(
                base_url=self.url, headers=self._headers, timeout=self._timeout, limits=_LIMITS
            )
        return self._sync

    def _http_async(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        client = self._async.get(loop)
        if client is None:
            client = httpx.AsyncClient(
                base_url=self.url, headers=self._headers, timeout=self._timeout, limits=_LIMITS
            )
            self._async[loop] = client
        return client

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One request; an answer of 400 or more raises ApiError, no answer
        ServerUnreachable."""
        return checked(self.send(method, path, **kwargs))

    def send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One request, its answer whatever the status; no answer raises ServerUnreachable."""
        try:
            return self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise self._unreachable(exc) from None

    async def request_async(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """``request`` on the running event loop."""
        try:
            response = await self._http_async().request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise self._unreachable(exc) from None
        return checked(response)

    @contextlib.contextmanager
    def stream(self, path: str, **kwargs: Any) -> Iterator[httpx.Response]:
        """GET ``path`` as a stream without a read timeout. An error answer raises ApiError;
        httpx.TransportError (refused, dropped) is left to the caller, who may reconnect."""
        timeout = httpx.Timeout(10.0, read=None)
        with self.http.stream("GET", path, timeout=timeout, **kwargs) as response:
            if response.status_code >= 400:
                response.read()
                checked(response)
            yield response

    def _unreachable(self, exc: Exception) -> ServerUnreachable:
        """The error for ``exc``: httpx's, or an OSError of Http1Connection's."""
        if isinstance(exc, httpx.TimeoutException | TimeoutError):  # TimeoutError is an OSError
            return ServerUnreachable(f"the server at {self.url} did not answer in time")
        refused = isinstance(exc, OSError) and not isinstance(exc, ConnectionDropped)
        if isinstance(exc, httpx.ConnectError) or refused:
            return ServerUnreachable(
                f"cannot reach the pyfaas server at {self.url}: is it running? Start one with "
                "`pyfaas serve` (or `make run`), or point --url/PYFAAS_URL at it."
            )
        return ServerUnreachable(f"request to {self.url} failed: {exc}")

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.request(method, path, **kwargs).json()

    # --- invoking ---------------------------------------------------------------------------

    def invoke_raw(self, name: str, body: bytes, *, log_tail: bool = False) -> InvokeResponse:
        """Invoke ``name`` synchronously with ``body`` (JSON bytes). A function error is
        in the response, not raised: see ``invoke`` for that."""
        response = self.request(
            "POST", _invoke_path(name), content=body, headers=_invoke_headers(log_tail)
        )
        return _invoke_response(response)

    async def invoke_raw_async(
        self, name: str, body: bytes, *, log_tail: bool = False
    ) -> InvokeResponse:
        response = await self.request_async(
            "POST", _invoke_path(name), content=body, headers=_invoke_headers(log_tail)
        )
        return _invoke_response(response)

    def connection(self) -> Http1Connection | None:
        """A keep-alive connection of its own, for many invocations one after the other
        (``invoke_raw_on``, ``invoke_batch_on``); ``Function.map`` runs one per call it
        keeps in flight. None when a proxy applies to the server's URL (HTTP_PROXY...):
        only httpx goes through proxies, so use the ``*_async`` methods then."""
        if proxy_for(self.url) is not None:
            return None
        return Http1Connection(self.url, self._headers, self._timeout)

    async def invoke_raw_on(
        self, connection: Http1Connection, name: str, body: bytes
    ) -> InvokeResponse:
        """``invoke_raw_async`` over ``connection`` instead of the httpx pool (much less
        work per call). Raises ApiError and ServerUnreachable as ``invoke_raw`` does."""
        raw = await self._post_on(connection, _invoke_path(name), body, _INVOKE_HEADERS)
        return _invoke_answer(raw.headers, raw.body)

    async def _post_on(
        self,
        connection: Http1Connection,
        path: str,
        body: bytes,
        headers: dict[str, str],
        stream_to: Callable[[bytes], None] | None = None,
    ) -> RawResponse:
        """POST over ``connection``; an answer of 400 or more raises ApiError, none
        ServerUnreachable (the connection is closed then)."""
        try:
            raw = await connection.post(path, body, headers, stream_to)
        except (OSError, TimeoutError) as exc:
            connection.close()
            raise self._unreachable(exc) from None
        refusal = _refusal(raw.status, raw.body)
        if refusal is not None:
            raise refusal
        return raw

    def invoke_batch_raw(self, name: str, bodies: Sequence[bytes]) -> list[BatchAnswer]:
        """Invoke ``name`` once per body (JSON bytes each, on one line) in one request; each
        runs as an invocation of its own. The answers in the order of the bodies: an
        InvokeResponse (a function error is in it, not raised), or the ApiError of a body
        that did not run (throttled...). A refused batch raises ApiError."""
        answers: list[BatchAnswer | None] = [None] * len(bodies)

        def keep(index: int, answer: BatchAnswer) -> None:
            answers[index] = answer

        lines = BatchLines(keep)
        try:
            with self.http.stream(
                "POST", _batch_path(name), content=batch_body(bodies), headers=_BATCH_HEADERS
            ) as response:
                if response.status_code >= 400:
                    response.read()
                    checked(response)
                for piece in response.iter_bytes():
                    lines.feed(piece)
        except httpx.HTTPError as exc:
            raise self._unreachable(exc) from None
        return _all_answered(answers)

    async def invoke_batch_async(
        self, name: str, bodies: Sequence[bytes], on_answer: Callable[[int, BatchAnswer], None]
    ) -> None:
        """``invoke_batch_raw`` on the running event loop, each answer handed to
        ``on_answer(index, answer)`` as it arrives (in the order the invocations finish).
        Raises ApiError when the batch is refused, ServerUnreachable when the answer breaks
        off (bodies not answered by then may or may not have run)."""
        lines = BatchLines(on_answer)
        try:
            async with self._http_async().stream(
                "POST", _batch_path(name), content=batch_body(bodies), headers=_BATCH_HEADERS
            ) as response:
                if response.status_code >= 400:
                    await response.aread()
                    checked(response)
                async for piece in response.aiter_bytes():
                    lines.feed(piece)
        except httpx.HTTPError as exc:
            raise self._unreachable(exc) from None

    async def invoke_batch_on(
        self,
        connection: Http1Connection,
        name: str,
        bodies: Sequence[bytes],
        on_answer: Callable[[int, BatchAnswer], None],
    ) -> None:
        """``invoke_batch_async`` over ``connection`` instead of the httpx pool."""
        lines = BatchLines(on_answer)
        path, body = _batch_path(name), batch_body(bodies)
        await self._post_on(connection, path, body, _BATCH_HEADERS, lines.feed)

    def invoke(self, name: str, event: Any = None) -> Any:
        """Run ``name`` with ``event`` (any JSON value; None sends ``{}``) and return its
        result. A function error raises: the builtin exception type when the remote one is
        a builtin (ValueError...), else RemoteError; the remote traceback is attached."""
        return result_of(self.invoke_raw(name, _event_body(event)))

    async def invoke_async(self, name: str, event: Any = None) -> Any:
        """``invoke`` on the running event loop."""
        return result_of(await self.invoke_raw_async(name, _event_body(event)))

    def submit_raw(self, name: str, body: bytes, *, idempotency_key: str | None = None) -> str:
        """Queue an asynchronous invocation (durable once this returns); its request id."""
        headers = _submit_headers(idempotency_key)
        response = self.request("POST", _invoke_path(name), content=body, headers=headers)
        return str(response.json()["request_id"])

    async def submit_raw_async(
        self, name: str, body: bytes, *, idempotency_key: str | None = None
    ) -> str:
        headers = _submit_headers(idempotency_key)
        response = await self.request_async(
            "POST", _invoke_path(name), content=body, headers=headers
        )
        return str(response.json()["request_id"])

    def submit(self, name: str, event: Any = None, *, idempotency_key: str | None = None) -> str:
        """Queue ``name`` with ``event`` asynchronously; returns the request id, which
        ``invocation(request_id)`` reports on."""
        return self.submit_raw(name, _event_body(event), idempotency_key=idempotency_key)

    def invocation(self, request_id: str) -> dict[str, Any]:
        """Where an async invocation stands: status, attempts, last_error, result..."""
        result: dict[str, Any] = self.json("GET", f"/v1/invocations/{request_id}")
        return result

    async def invocation_async(self, request_id: str) -> dict[str, Any]:
        result: dict[str, Any] = (
            await self.request_async("GET", f"/v1/invocations/{request_id}")
        ).json()
        return result

    # --- functions and usage ----------------------------------------------------------------

    def deploy(self, config: Mapping[str, Any], code: bytes, *, create_only: bool = False) -> Any:
        """Create or update the function ``config["name"]`` with ``code`` (zip bytes)."""
        data = {"config": json.dumps(dict(config))}
        files = {"code": ("code.zip", code, "application/zip")}
        if create_only:
            return self.json("POST", "/v1/functions", data=data, files=files)
        return self.json("PUT", f"/v1/functions/{config['name']}", data=data, files=files)

    def function(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self.json("GET", f"/v1/functions/{name}")
        return result

    def functions(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.json("GET", "/v1/functions")["functions"]
        return result

    def delete(self, name: str) -> None:
        self.request("DELETE", f"/v1/functions/{name}")

    def usage(
        self,
        *,
        function: str | None = None,
        start: str | None = None,
        end: str | None = None,
        group_by: Sequence[str] = ("function",),
    ) -> dict[str, Any]:
        """The usage and cost report of ``/v1/usage`` (rows and totals per currency)."""
        params = {"group_by": ",".join(group_by), "format": "json"}
        for key, value in (("function", function), ("start", start), ("end", end)):
            if value is not None:
                params[key] = value
        result: dict[str, Any] = self.json("GET", "/v1/usage", params=params)
        return result


BatchAnswer = InvokeResponse | ApiError


class BatchLines:
    """Splits the streamed answer of a batch into its lines and hands each event's answer
    to ``on_answer(index, answer)``."""

    def __init__(self, on_answer: Callable[[int, BatchAnswer], None]) -> None:
        self._on_answer = on_answer
        self._rest = b""

    def feed(self, piece: bytes) -> None:
        """Take the next piece of the answer (any size; a line may span pieces)."""
        if self._rest:
            piece = self._rest + piece
        *lines, self._rest = piece.split(b"\n")
        for line in lines:
            index, answer = _batch_answer(line)
            self._on_answer(index, answer)


def _batch_answer(line: bytes) -> tuple[int, BatchAnswer]:
    try:
        item = orjson.loads(line)
        body = orjson.dumps(item.get("body"))
    except orjson.JSONDecodeError:  # orjson reads integers of 64 bits at most
        item = json.loads(line)
        body = json.dumps(item.get("body")).encode()
    index = int(item["index"])
    if "error" in item:
        error = item["error"]
        return index, ApiError(
            str(error["message"]), status=int(item["status"]), code=str(error["code"])
        )
    return index, InvokeResponse(
        body=body,
        request_id=item["request_id"],
        function_error=item.get("function_error"),
        duration_ms=item.get("duration_ms"),
        init_duration_ms=item.get("init_duration_ms"),
    )


def batch_body(bodies: Sequence[bytes]) -> bytes:
    """The body of a batch request: one event per line. Raises SerializationError for an
    event that spans lines (pretty-printed JSON)."""
    for body in bodies:
        if b"\n" in body:
            raise SerializationError("an event of a batch must be JSON on one line")
    return b"\n".join(bodies)


def _all_answered(answers: list[BatchAnswer | None]) -> list[BatchAnswer]:
    missing = [i for i, answer in enumerate(answers) if answer is None]
    if missing:
        raise ServerUnreachable(f"the batch's answer ended without events {missing[:10]}")
    return [a for a in answers if a is not None]


def result_of(
    response: InvokeResponse,
    namespaces: Sequence[Mapping[str, Any]] = (),
    shipped_code: CodeType | None = None,
) -> Any:
    """The decoded JSON result, or the remote exception raised again (its type looked up in
    ``namespaces``, then builtins; see rebuild_exception)."""
    if response.function_error is None:
        return response.json()
    error = _error_object(response.body)
    raise rebuild_exception(error, response.request_id, namespaces, shipped_code)


def _error_object(body: bytes) -> dict[str, Any]:
    try:
        error = json.loads(body)
    except ValueError:
        error = None
    if not isinstance(error, dict):
        return {"errorType": "Unknown", "errorMessage": body.decode("utf-8", errors="replace")}
    return error


def checked(response: httpx.Response) -> httpx.Response:
    """``response`` if its status is under 400, else ApiError with the server's code."""
    refusal = _refusal(response.status_code, response.content)
    if refusal is not None:
        raise refusal
    return response


def _refusal(status: int, body: bytes) -> ApiError | None:
    """The ApiError an answer with ``status`` and ``body`` stands for; None under 400."""
    if status < 400:
        return None
    try:
        error = json.loads(body)["error"]
        message, code = str(error["message"]), str(error["code"])
    except (ValueError, KeyError, TypeError):
        text = body.decode("utf-8", errors="replace")
        message = f"the server answered {status}: {text[:200]}"
        code = f"http_{status}"
    return ApiError(message, status=status, code=code)


def _invoke_path(name: str) -> str:
    return f"/v1/functions/{name}/invoke"


def _batch_path(name: str) -> str:
    return f"/v1/functions/{name}/invoke-batch"


_INVOKE_HEADERS = {"Content-Type": "application/json"}
_BATCH_HEADERS = {"Content-Type": "application/x-ndjson"}


def _invoke_headers(log_tail: bool) -> dict[str, str]:
    headers = dict(_INVOKE_HEADERS)
    if log_tail:
        headers["X-Pyfaas-Log-Type"] = "Tail"
    return headers


def _submit_headers(idempotency_key: str | None) -> dict[str, str]:
    headers = {"Content-Type": "application/json", "X-Invocation-Type": "Event"}
    if idempotency_key:
        headers["X-Idempotency-Key"] = idempotency_key
    return headers


def _event_body(event: Any) -> bytes:
    if event is None:
        return b"{}"
    try:
        return json.dumps(event, allow_nan=False).encode()
    except (TypeError, ValueError) as exc:
        raise SerializationError(f"the event cannot be sent as JSON: {exc}") from None


def _invoke_response(response: httpx.Response) -> InvokeResponse:
    return _invoke_answer(response.headers, response.content)


def _invoke_answer(headers: Mapping[str, str], body: bytes) -> InvokeResponse:
    """An invocation's answer from its headers (names lower-case) and body."""
    tail = headers.get("x-pyfaas-log-result")
    return InvokeResponse(
        body=body,
        request_id=headers.get("x-pyfaas-request-id", ""),
        function_error=headers.get("x-pyfaas-function-error"),
        duration_ms=_float(headers.get("x-pyfaas-duration-ms")),
        init_duration_ms=_float(headers.get("x-pyfaas-init-duration-ms")),
        log_tail=None if tail is None else _b64_text(tail),
    )


def _float(value: str | None) -> float | None:
    return None if value is None else float(value)


def _b64_text(value: str) -> str:
    return base64.b64decode(value).decode(errors="replace")
