"""Loading a web app as a worker's handler: ``wsgi:module:app`` or ``asgi:module:app``.

The app is imported like a handler module, checked to be the kind of callable its function
declared, and wrapped in pyfaas's adapter (wsgi.py or asgi.py), which turns HTTP payload
format 2.0 events into requests for it. Imported only by web-app workers.
"""

from __future__ import annotations

from pyfaas.runtime.bootstrap import InitError, import_module

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

_CO_COROUTINE = 0x80  # inspect.CO_COROUTINE, without importing inspect
_MISSING = object()


def load_web_app(spec: str) -> Callable[..., Any]:
    """The handler for ``interface:module:attribute``; raises InitError (handler_* codes for
    the import, web_app_not_found, web_app_not_callable)."""
    interface, _, target = spec.partition(":")
    module_name, _, attribute = target.partition(":")
    module = import_module(module_name, f"--{interface} '{target}'")
    app: Any = module
    for part in attribute.split("."):
        app = getattr(app, part, _MISSING)
        if app is _MISSING:
            raise InitError(
                "web_app_not_found",
                f"'{attribute}' missing on module '{module_name}' (is --{interface} "
                f"'{target}' right? It names module:attribute, e.g. app:app)",
            )
    kind = interface_of(app)
    if kind is None:
        raise InitError(
            "web_app_not_callable",
            f"'{target}' is a {type(app).__name__}, not a WSGI or ASGI application",
        )
    if kind != interface:
        raise InitError(
            "web_app_not_callable",
            f"'{target}' is an {kind.upper()} application, not {interface.upper()}: "
            f"deploy it with --{kind} {target}",
        )
    if kind == "asgi":
        from pyfaas.runtime.asgi import AsgiHandler

        return AsgiHandler(app)
    from pyfaas.runtime.wsgi import WsgiHandler

    return WsgiHandler(app)


def interface_of(app: object) -> str | None:
    """ "asgi" for a coroutine function or an object whose ``__call__`` is one (ASGI 3),
    "wsgi" for any other callable, None for what cannot be called."""
    if not callable(app):
        return None
    if _is_coroutine_function(app) or _is_coroutine_function(_call_method(app)):
        return "asgi"
    return "wsgi"


def _call_method(app: object) -> object:
    """The ``__call__`` a call of the instance ``app`` runs: looked up on its type."""
    if isinstance(app, type):
        return None  # calling a class makes an instance; that is no ASGI 3 app
    for klass in type(app).__mro__:
        if "__call__" in klass.__dict__:
            return klass.__dict__["__call__"]
    return None


def _is_coroutine_function(fn: object) -> bool:
    code = getattr(fn, "__code__", None)
    return code is not None and bool(code.co_flags & _CO_COROUTINE)
