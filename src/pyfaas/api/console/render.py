"""Rendering the console's pages: Jinja2 templates shipped in the package, a strict
Content-Security-Policy (no inline script, nothing from other origins), and HTML error pages
carrying the same stable codes as the API's JSON errors."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from pyfaas.api.console.session import can_write, context
from pyfaas.model import PyfaasError

# Scripts, styles and images from this server only; SVG charts are markup, not images.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 1000:
        return f"{value / 1000:.2f} s"
    if value >= 10:
        return f"{value:.0f} ms"
    return f"{value:.2f} ms"


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


_env = jinja2.Environment(
    loader=jinja2.PackageLoader("pyfaas.api.console", "templates"),
    autoescape=True,
    trim_blocks=True,
    lstrip_blocks=True,
    undefined=jinja2.StrictUndefined,
)
_env.filters.update(when=_when, ms=_ms, percent=_percent)


def render(request: Request, template: str, status: int = 200, **values: Any) -> Response:
    """The page ``template`` with ``values``, plus what every page uses (``can_write``,
    ``token_required``)."""
    html = _env.get_template(template).render(
        can_write=can_write(request),
        token_required=context(request).token_required,
        path=request.url.path,
        **values,
    )
    return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)


Handler = Callable[[Request], Awaitable[Response]]


def html_errors(handler: Handler) -> Handler:
    """A page handler whose pyfaas errors are answered as an HTML page with the error's
    status, code and message (the API answers JSON)."""

    @functools.wraps(handler)
    async def page(request: Request) -> Response:
        try:
            return await handler(request)
        except PyfaasError as exc:
            return render(
                request, "error.html", exc.status, code=exc.code, message=exc.message, title="Error"
            )

    return page
