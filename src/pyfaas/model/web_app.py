"""Web apps as functions: a WSGI or ASGI application named ``module:attribute``.

A function whose config sets ``wsgi`` or ``asgi`` runs that application behind pyfaas's
adapter instead of a ``handler(event, context)``: workers load ``wsgi:module:app`` /
``asgi:module:app`` (see runtime/webapp.py), and the ``handler`` field is not used.
"""

from __future__ import annotations

import re

from pyfaas.model.errors import InvalidFunctionConfig

_IDENTIFIER = r"[A-Za-z_][A-Za-z0-9_]*"
WEB_APP_PATTERN = re.compile(rf"^{_IDENTIFIER}(\.{_IDENTIFIER})*:{_IDENTIFIER}(\.{_IDENTIFIER})*$")


def validate_web_app(wsgi: str | None, asgi: str | None) -> None:
    """Raise InvalidFunctionConfig (code invalid_web_app) unless at most one of ``wsgi`` and
    ``asgi`` is set, and as ``module:attribute``."""
    if wsgi is not None and asgi is not None:
        raise InvalidFunctionConfig(
            "a function is a WSGI app or an ASGI app, not both: set wsgi or asgi, and the "
            "other to null",
            code="invalid_web_app",
        )
    for key, spec in (("wsgi", wsgi), ("asgi", asgi)):
        if spec is not None and not WEB_APP_PATTERN.match(spec):
            raise InvalidFunctionConfig(
                f"{key} {spec!r} must look like 'module:attribute' (e.g. 'app:app' for "
                "app = Flask(__name__) in app.py, or 'main:app' for a FastAPI app in main.py)",
                code="invalid_web_app",
            )


def worker_handler(handler: str, wsgi: str | None, asgi: str | None) -> str:
    """What a function's workers load: its handler, or its web app behind an adapter."""
    if wsgi is not None:
        return f"wsgi:{wsgi}"
    if asgi is not None:
        return f"asgi:{asgi}"
    return handler
