"""The web console at ``/console/``: server-rendered pages, a little script, SVG charts.

Everything ships inside the package (templates/, static/): nothing is fetched at run time.
"""

from __future__ import annotations

from pathlib import Path

from starlette.middleware import Middleware
from starlette.routing import Mount, Route, Router
from starlette.staticfiles import StaticFiles

from pyfaas.api.console.pages import PAGE_ROUTES, console_root, login_page, logout
from pyfaas.api.console.session import ConsoleMiddleware, create_session

STATIC_DIR = Path(__file__).parent / "static"

# Behind the API's token check.
CONSOLE_ROUTES = [
    *PAGE_ROUTES,
    Route("/console/session", create_session, methods=["POST"], include_in_schema=False),
]


def console_middleware(*, token_required: bool) -> Middleware:
    """The console's session middleware; it must wrap the API's token check."""
    public = Router(
        routes=[
            Route("/console", console_root, methods=["GET"]),
            Route("/console/login", login_page, methods=["GET"]),
            Route("/console/logout", logout, methods=["GET"]),
            Mount("/console/static", StaticFiles(directory=STATIC_DIR), name="static"),
        ]
    )
    return Middleware(ConsoleMiddleware, public=public, token_required=token_required)


__all__ = ["CONSOLE_ROUTES", "console_middleware"]
