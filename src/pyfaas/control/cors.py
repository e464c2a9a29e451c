"""CORS for function URLs, as Lambda does it: the platform answers preflight requests and
puts the configured CORS headers on every response (they win over the function's own)."""

from __future__ import annotations

from pyfaas.model.urls import CorsConfig, HttpRequest, HttpResponse


def is_preflight(request: HttpRequest) -> bool:
    """An OPTIONS request a browser sends before a cross-origin call."""
    return (
        request.method == "OPTIONS"
        and request.header("origin") is not None
        and request.header("access-control-request-method") is not None
    )


def _allowed_origin(cors: CorsConfig, origin: str | None) -> str | None:
    """The Access-Control-Allow-Origin value for ``origin``, or None if it may not call."""
    if origin is None:
        return None
    if "*" in cors.allow_origins:
        # With credentials a browser refuses '*': name the origin instead.
        return origin if cors.allow_credentials else "*"
    return origin if origin.lower() in cors.allow_origins else None


def preflight_response(cors: CorsConfig, request: HttpRequest) -> HttpResponse:
    """The answer to a preflight request. An origin or method that is not allowed gets no
    CORS headers, which the browser takes as a refusal."""
    headers: list[tuple[str, str]] = [("vary", "Origin")]
    allow_origin = _allowed_origin(cors, request.header("origin"))
    method = (request.header("access-control-request-method") or "").upper()
    if allow_origin is not None and ("*" in cors.allow_methods or method in cors.allow_methods):
        headers.append(("access-control-allow-origin", allow_origin))
        headers.append(
            (
                "access-control-allow-methods",
                method if "*" in cors.allow_methods else ", ".join(cors.allow_methods),
            )
        )
        asked = request.header("access-control-request-headers")
        if "*" in cors.allow_headers and asked:
            headers.append(("access-control-allow-headers", asked))
        elif cors.allow_headers:
            headers.append(("access-control-allow-headers", ", ".join(cors.allow_headers)))
        if cors.max_age is not None:
            headers.append(("access-control-max-age", str(cors.max_age)))
        if cors.allow_credentials:
            headers.append(("access-control-allow-credentials", "true"))
    return HttpResponse(200, headers)


def with_cors(cors: CorsConfig, request: HttpRequest, response: HttpResponse) -> HttpResponse:
    """``response`` with the configured CORS headers instead of any the function set."""
    headers = [(k, v) for k, v in response.headers if not k.startswith("access-control-")]
    allow_origin = _allowed_origin(cors, request.header("origin"))
    if allow_origin is not None:
        headers.append(("access-control-allow-origin", allow_origin))
        if cors.expose_headers:
            headers.append(("access-control-expose-headers", ", ".join(cors.expose_headers)))
        if cors.allow_credentials:
            headers.append(("access-control-allow-credentials", "true"))
    if not any(k == "vary" and "origin" in v.lower() for k, v in headers):
        headers.append(("vary", "Origin"))
    return HttpResponse(response.status, headers, response.body)
