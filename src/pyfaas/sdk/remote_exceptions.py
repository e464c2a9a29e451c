"""Raising a remote function's exception locally, with the remote traceback attached.

The server reports Lambda's error object: ``errorType`` (the class name), ``errorMessage``
and ``stackTrace``. The type is rebuilt when its name is found (in the namespaces the caller
gives, such as the function's own globals, then among the builtins); else RemoteError.
"""

from __future__ import annotations

import builtins
import linecache
import re
from collections.abc import Mapping, Sequence
from types import CodeType
from typing import Any

from pyfaas.sdk.errors import RemoteError, RemoteTraceback
from pyfaas.sdk.shipping import ENTRY_MODULE

_DYNAMIC_FRAME = re.compile(r'  File "<dynamic-code>", line (?P<line>\d+), in (?P<name>\S+)\n')


def rebuild_exception(
    error: Mapping[str, Any],
    request_id: str | None,
    namespaces: Sequence[Mapping[str, Any]],
    shipped_code: CodeType | None = None,
) -> Exception:
    """The exception to raise for ``error``; ``__cause__`` holds the remote traceback.

    ``shipped_code``: the code of a function shipped by value. cloudpickle names its file
    ``<dynamic-code>``; its frames get the real file and source line back from here."""
    error_type = str(error.get("errorType") or "Unknown")
    message = str(error.get("errorMessage", ""))
    text = (
        f"Traceback of request {request_id or '?'} on the server (most recent call last):\n"
        f"{user_frames(error, shipped_code)}{error_type}: {message}"
    )
    cls = _exception_type(error_type, namespaces)
    exc = _instantiate(cls, message) if cls is not None else None
    if exc is None:
        exc = RemoteError(error_type, message, request_id=request_id, traceback=text)
    exc.__cause__ = RemoteTraceback(text)
    # Readable on any exception type, rebuilt or not.
    exc.remote_traceback = text  # type: ignore[attr-defined]
    exc.request_id = request_id  # type: ignore[attr-defined]
    return exc


def user_frames(error: Mapping[str, Any], shipped_code: CodeType | None = None) -> str:
    """The frames of ``error``'s stackTrace that are the user's, as text (see
    rebuild_exception for ``shipped_code``)."""
    stack = error.get("stackTrace") or []
    if not isinstance(stack, list):
        stack = [str(stack)]
    # The bundle's entry module is the SDK's, not the user's: its frame is left out.
    return "".join(
        _located(str(frame), shipped_code)
        for frame in stack
        if f"/{ENTRY_MODULE}.py" not in str(frame)
    )


def _located(frame: str, code: CodeType | None) -> str:
    if code is None:
        return frame
    match = _DYNAMIC_FRAME.match(frame)
    if match is None or match["name"] != code.co_name:
        return frame
    line = linecache.getline(code.co_filename, int(match["line"])).strip()
    located = f'  File "{code.co_filename}", line {match["line"]}, in {match["name"]}\n'
    return located + (f"    {line}\n" if line else "")


def _exception_type(name: str, namespaces: Sequence[Mapping[str, Any]]) -> type[Exception] | None:
    if not name.isidentifier():
        return None  # the platform's: Sandbox.Timedout, Runtime.MarshalError...
    for namespace in [*namespaces, vars(builtins)]:
        found = namespace.get(name)
        if isinstance(found, type) and issubclass(found, Exception):
            return found
    return None


def _instantiate(cls: type[Exception], message: str) -> Exception | None:
    try:
        return cls(message)
    except Exception:
        # A constructor that wants other arguments: build it without running __init__.
        try:
            exc = cls.__new__(cls)
            exc.args = (message,)
            return exc
        except Exception:
            return None
