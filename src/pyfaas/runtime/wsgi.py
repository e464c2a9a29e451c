"""pyfaas's WSGI adapter (PEP 3333): a 2.0 event becomes an environ, the app's response a 2.0
response. The whole response is collected (Lambda answers in one piece), then returned."""

from __future__ import annotations

import io
import sys
import traceback
from urllib.parse import unquote_to_bytes

from pyfaas.runtime.http_payload import HttpRequest, build_response, internal_error, parse_event

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


class WsgiHandler:
    """``handler(event, context)`` for a WSGI application.

    An exception out of the app is logged (in the invocation's log) and answered with a
    500; an app that catches its own errors (Flask, Django) answers with its own error page.
    An event that is not a 2.0 event raises BadEvent: the invocation fails.
    """

    def __init__(self, app: Callable[..., Any]) -> None:
        self.app = app

    def __call__(self, event: dict[str, Any], context: object) -> dict[str, Any]:
        request = parse_event(event)
        environ = wsgi_environ(request)
        environ["aws.event"], environ["aws.context"] = event, context
        try:
            status, headers, body = self._run(environ)
        except Exception:
            traceback.print_exc()
            return internal_error()
        return build_response(status, headers, b"" if request.method == "HEAD" else body)

    def _run(self, environ: dict[str, Any]) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        started: list[Any] = []
        chunks: list[bytes] = []

        def start_response(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Callable[[bytes], None]:
            if started and exc_info is None:
                raise AssertionError("start_response called twice without exc_info")
            # With exc_info the app replaces its response; nothing was sent yet, so it may.
            started[:] = [status, headers]
            return chunks.append  # the legacy write() callable

        result = self.app(environ, start_response)
        try:
            for chunk in result:
                if not isinstance(chunk, bytes):
                    raise TypeError(f"a WSGI app must yield bytes, not {type(chunk).__name__}")
                chunks.append(chunk)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        if not started:
            raise RuntimeError("the WSGI app returned without calling start_response")
        status, headers = started
        raw = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in headers]
        return int(status.split(" ", 1)[0]), raw, b"".join(chunks)


def wsgi_environ(request: HttpRequest) -> dict[str, Any]:
    """The environ for ``request``. Strings carry bytes as latin-1, as PEP 3333 wants."""
    environ: dict[str, Any] = {
        "REQUEST_METHOD": request.method,
        "SCRIPT_NAME": request.prefix,
        "PATH_INFO": unquote_to_bytes(request.raw_path).decode("latin-1"),
        "QUERY_STRING": request.query_string,
        "SERVER_NAME": request.host,
        "SERVER_PORT": str(request.port),
        "SERVER_PROTOCOL": request.protocol,
        "REMOTE_ADDR": request.source_ip,
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": request.scheme,
        "wsgi.input": io.BytesIO(request.body),
        "wsgi.input_terminated": True,
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    if request.body:
        environ["CONTENT_LENGTH"] = str(len(request.body))
    for name, value in request.headers:
        key = name.upper().replace("-", "_")
        if key == "CONTENT_LENGTH":
            continue  # the body's real length, set above
        if key != "CONTENT_TYPE":
            key = "HTTP_" + key
        value = value.encode().decode("latin-1")
        environ[key] = f"{environ[key]},{value}" if key in environ else value
    return environ
