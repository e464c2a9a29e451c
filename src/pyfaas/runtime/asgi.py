"""pyfaas's ASGI adapter (ASGI 3, http and lifespan): a 2.0 event becomes an http scope
whose body the app receives in chunks; the response messages it sends are collected into
one 2.0 response.

Each worker has one event loop for its whole life, made when the worker starts (not in the
template it may be forked from): the lifespan task, connection pools and background tasks
of the app live on it. The loop runs only while an invocation does, as on Lambda.
"""

from __future__ import annotations

import asyncio
import sys
import traceback
from urllib.parse import unquote

from pyfaas.runtime.bootstrap import InitError, WorkerLifecycle
from pyfaas.runtime.http_payload import HttpRequest, build_response, internal_error, parse_event

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from typing import Any

    Message = dict[str, Any]

# The request body reaches the app in chunks of this size (http.request, more_body).
BODY_CHUNK_BYTES = 64 * 1024
_HTTP_VERSIONS = {"HTTP/1.0": "1.0", "HTTP/2": "2", "HTTP/2.0": "2"}


class AsgiHandler(WorkerLifecycle):
    """``handler(event, context)`` for an ASGI 3 application.

    :meth:`start` makes the worker's event loop and runs the lifespan startup (raises
    InitError web_app_startup_failed if the app reports failure; an app without lifespan
    support runs without it). An exception out of the app is logged and answered with a 500.
    """

    def __init__(self, app: Callable[..., Any]) -> None:
        self.app = app
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lifespan: _Lifespan | None = None
        self._state: dict[str, Any] = {}

    def start(self) -> None:
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        self._lifespan = _Lifespan(self.app, self._state)
        try:
            self._loop.run_until_complete(self._lifespan.startup())
        except InitError:
            raise
        except Exception as exc:
            traceback.print_exc()
            raise InitError(
                "web_app_startup_failed", f"the ASGI lifespan startup raised {exc!r}"
            ) from None

    def stop(self) -> None:
        loop, self._loop = self._loop, None
        if loop is None:
            return
        try:
            if self._lifespan is not None:
                loop.run_until_complete(self._lifespan.shutdown())
        except Exception:
            traceback.print_exc()
        finally:
            loop.close()

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The worker's event loop (made by :meth:`start`): a worker serving several
        invocations at once runs them on it, as tasks of :meth:`handle_async`."""
        return self._loop

    def __call__(self, event: dict[str, Any], context: object) -> dict[str, Any]:
        if self._loop is None:
            self.start()  # called outside a pyfaas worker (a test, a script)
        assert self._loop is not None
        return self._loop.run_until_complete(self._handle(event, context))

    def handle_async(self, event: dict[str, Any], context: object) -> Awaitable[dict[str, Any]]:
        return self._handle(event, context)

    async def _handle(self, event: dict[str, Any], context: object) -> dict[str, Any]:
        request = parse_event(event)
        scope = http_scope(request)
        scope.update({"state": dict(self._state), "aws.event": event, "aws.context": context})
        exchange = _Exchange(request.body)
        try:
            await self.app(scope, exchange.receive, exchange.send)
        except Exception:
            traceback.print_exc()
            # A complete response is the app's own error page (Starlette sends its 500, then
            # re-raises); anything less never reached the client and becomes a plain 500.
            if not exchange.complete:
                return internal_error()
        finally:
            exchange.finished.set()
        if exchange.status is None or not exchange.complete:
            what = "started" if exchange.status is None else "finished"
            print(f"the ASGI app returned without having {what} its response", file=sys.stderr)
            return internal_error()
        body = b"" if request.method == "HEAD" else b"".join(exchange.body)
        return build_response(exchange.status, exchange.headers, body)


def http_scope(request: HttpRequest) -> dict[str, Any]:
    """The ASGI http scope for ``request`` (without state and the aws.* keys)."""
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": _HTTP_VERSIONS.get(request.protocol.upper(), "1.1"),
        "method": request.method,
        "scheme": request.scheme,
        # As uvicorn does behind --root-path: path includes root_path.
        "path": request.prefix + unquote(request.raw_path),
        "raw_path": (request.prefix + request.raw_path).encode(),
        "query_string": request.query_string.encode(),
        "root_path": request.prefix,
        "headers": [(name.encode("latin-1"), value.encode()) for name, value in request.headers],
        "client": (request.source_ip, 0),
        "server": (request.host, request.port),
    }


class _Exchange:
    """One request's receive and send: the body in chunks, then (once the response is
    complete) http.disconnect; the response messages collected."""

    def __init__(self, body: bytes) -> None:
        self._body = body
        self._offset = 0
        self._body_sent = False
        self.finished = asyncio.Event()
        self.status: int | None = None
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.complete = False

    async def receive(self) -> Message:
        if not self._body_sent:
            chunk = self._body[self._offset : self._offset + BODY_CHUNK_BYTES]
            self._offset += len(chunk)
            self._body_sent = self._offset >= len(self._body)
            return {"type": "http.request", "body": chunk, "more_body": not self._body_sent}
        # The client stays connected until the response is complete (apps that listen for a
        # disconnect while streaming must not stop early).
        await self.finished.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            if self.status is not None:
                raise RuntimeError("http.response.start sent twice")
            self.status = int(message["status"])
            self.headers = [(bytes(k), bytes(v)) for k, v in message.get("headers", [])]
        elif kind == "http.response.body":
            if self.status is None:
                raise RuntimeError("http.response.body sent before http.response.start")
            if self.complete:
                raise RuntimeError("http.response.body sent after the response was complete")
            self.body.append(bytes(message.get("body", b"")))
            if not message.get("more_body", False):
                self.complete = True
                self.finished.set()
        else:
            raise RuntimeError(f"unexpected ASGI message {kind!r} in an http exchange")


class _Lifespan:
    """The app's lifespan protocol, driven from the worker's start and stop."""

    def __init__(self, app: Callable[..., Any], state: dict[str, Any]) -> None:
        self._app = app
        self._state = state
        self._inbox: asyncio.Queue[Message] | None = None
        self._reply: asyncio.Future[Message | None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._answered = False

    async def startup(self) -> None:
        """Raises InitError when the app answers lifespan.startup.failed."""
        self._inbox = asyncio.Queue()
        self._task = asyncio.get_running_loop().create_task(self._run())
        reply = await self._ask("lifespan.startup")
        if reply is not None and reply["type"] == "lifespan.startup.failed":
            raise InitError(
                "web_app_startup_failed",
                "the ASGI app's lifespan startup failed: "
                + (reply.get("message") or "(no message; see the log)"),
            )

    async def shutdown(self) -> None:
        if self._task is None or self._task.done():
            return  # no lifespan support, or it has ended
        reply = await self._ask("lifespan.shutdown")
        if reply is not None and reply["type"] == "lifespan.shutdown.failed":
            print(f"ASGI lifespan shutdown failed: {reply.get('message', '')}", file=sys.stderr)
        await asyncio.wait([self._task], timeout=1.0)

    async def _ask(self, kind: str) -> Message | None:
        """Send ``kind`` and wait for the app's answer (None if it returned first)."""
        assert self._inbox is not None and self._task is not None
        self._reply = asyncio.get_running_loop().create_future()
        if self._task.done():
            return None
        await self._inbox.put({"type": kind})
        return await self._reply

    async def _receive(self) -> Message:
        assert self._inbox is not None
        return await self._inbox.get()

    async def _send(self, message: Message) -> None:
        self._answered = True
        if self._reply is not None and not self._reply.done():
            self._reply.set_result(message)

    async def _run(self) -> None:
        scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}}
        scope["state"] = self._state
        try:
            await self._app(scope, self._receive, self._send)
        except Exception as exc:
            if self._answered:
                traceback.print_exc()
            else:  # as uvicorn's "auto": an app that rejects the lifespan scope runs without
                print(
                    f"the ASGI app does not support lifespan ({type(exc).__name__}: {exc}); "
                    "running without startup and shutdown",
                    file=sys.stderr,
                )
        finally:
            if self._reply is not None and not self._reply.done():
                self._reply.set_result(None)
