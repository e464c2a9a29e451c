"""The Starlette application: routes, error rendering, authentication, OpenAPI."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

import pyfaas
from pyfaas.api import errors
from pyfaas.api.access import AccessMiddleware
from pyfaas.api.code import get_code
from pyfaas.api.console import CONSOLE_ROUTES, console_middleware
from pyfaas.api.events import (
    invocation_status,
    list_dead_letters,
    list_invocations,
    redrive_dead_letters,
    show_dead_letter,
)
from pyfaas.api.functions import (
    create_function,
    delete_function,
    get_function,
    list_functions,
    patch_function,
    put_function,
)
from pyfaas.api.invoke import InvokeEndpoint, invoke_batch
from pyfaas.api.isolation import isolation_report
from pyfaas.api.lambda_api import INVOKE_ROUTE as LAMBDA_INVOKE_ROUTE
from pyfaas.api.lambda_api import ROUTES as LAMBDA_ROUTES
from pyfaas.api.lambda_api import SigV4Verifier
from pyfaas.api.logs import follow_logs, function_logs
from pyfaas.api.openapi import openapi_document
from pyfaas.api.responses import JSONResponse
from pyfaas.api.rollouts import get_rollout, start_rollout
from pyfaas.api.schedules import (
    create_schedule,
    delete_schedule,
    get_schedule,
    list_schedules,
    patch_schedule,
)
from pyfaas.api.services import ApiServices
from pyfaas.api.sources import (
    create_mapping,
    delete_mapping,
    get_mapping,
    list_mappings,
    patch_mapping,
)
from pyfaas.api.tokens import (
    create_token,
    delete_secret,
    get_secret,
    list_secrets,
    list_tokens,
    put_secret,
    revoke_token,
)
from pyfaas.api.urls import URL_METHODS, create_url, delete_url, get_url, patch_url, serve_url
from pyfaas.api.usage import prometheus_metrics, usage_report
from pyfaas.api.versions import (
    delete_alias,
    delete_version,
    get_alias,
    get_version,
    list_aliases,
    list_versions,
    patch_alias,
    publish_version,
    put_alias,
)
from pyfaas.control.access import FailedAuthGuard
from pyfaas.model import PyfaasError


async def health(request: Request) -> Response:
    """Whether the server is up.
    ---
    summary: Health check
    responses:
      200: {description: "{status: ok, version}"}
    """
    ready = getattr(request.app.state, "services", None) is not None
    return JSONResponse(
        {"status": "ok" if ready else "starting", "version": pyfaas.__version__},
        status_code=200 if ready else 503,
    )


async def openapi(request: Request) -> Response:
    return JSONResponse(openapi_document(request.app.routes))


ROUTES = [
    # Starlette matches routes in order: the hot path goes first.
    Route("/v1/functions/{name}/invoke", InvokeEndpoint(), methods=["POST"]),
    Route("/v1/functions/{name}/invoke-batch", invoke_batch, methods=["POST"]),
    LAMBDA_INVOKE_ROUTE,
    Route("/v1/health", health, methods=["GET"]),
    Route("/v1/openapi.json", openapi, methods=["GET"], include_in_schema=False),
    Route("/v1/functions", list_functions, methods=["GET"]),
    Route("/v1/functions", create_function, methods=["POST"]),
    Route("/v1/functions/{name}", get_function, methods=["GET"]),
    Route("/v1/functions/{name}", put_function, methods=["PUT"]),
    Route("/v1/functions/{name}", patch_function, methods=["PATCH"]),
    Route("/v1/functions/{name}", delete_function, methods=["DELETE"]),
    Route("/v1/functions/{name}/logs", function_logs, methods=["GET"]),
    Route("/v1/invocations", list_invocations, methods=["GET"]),
    Route("/v1/invocations/{request_id}", invocation_status, methods=["GET"]),
    Route("/v1/dlq", list_dead_letters, methods=["GET"]),
    Route("/v1/dlq/redrive", redrive_dead_letters, methods=["POST"]),
    Route("/v1/dlq/{request_id}", show_dead_letter, methods=["GET"]),
    Route("/v1/functions/{name}/url", create_url, methods=["POST"]),
    Route("/v1/functions/{name}/url", get_url, methods=["GET"]),
    Route("/v1/functions/{name}/url", patch_url, methods=["PATCH"]),
    Route("/v1/functions/{name}/url", delete_url, methods=["DELETE"]),
    Route("/fn/{name}", serve_url, methods=URL_METHODS, include_in_schema=False),
    Route("/fn/{name}/{path:path}", serve_url, methods=URL_METHODS, include_in_schema=False),
    Route("/v1/functions/{name}/schedules", list_schedules, methods=["GET"]),
    Route("/v1/functions/{name}/schedules", create_schedule, methods=["POST"]),
    Route("/v1/functions/{name}/schedules/{id}", get_schedule, methods=["GET"]),
    Route("/v1/functions/{name}/schedules/{id}", patch_schedule, methods=["PATCH"]),
    Route("/v1/functions/{name}/schedules/{id}", delete_schedule, methods=["DELETE"]),
    Route("/v1/usage", usage_report, methods=["GET"]),
    Route("/metrics", prometheus_metrics, methods=["GET"]),
    Route("/v1/functions/{name}/logs/stream", follow_logs, methods=["GET"]),
    Route("/v1/event-source-mappings", list_mappings, methods=["GET"]),
    Route("/v1/event-source-mappings", create_mapping, methods=["POST"]),
    Route("/v1/event-source-mappings/{uuid}", get_mapping, methods=["GET"]),
    Route("/v1/event-source-mappings/{uuid}", patch_mapping, methods=["PATCH"]),
    Route("/v1/event-source-mappings/{uuid}", delete_mapping, methods=["DELETE"]),
    Route("/v1/functions/{name}/code", get_code, methods=["GET"]),
    Route("/v1/tokens", list_tokens, methods=["GET"]),
    Route("/v1/tokens", create_token, methods=["POST"]),
    Route("/v1/tokens/{id}", revoke_token, methods=["DELETE"]),
    Route("/v1/secrets", list_secrets, methods=["GET"]),
    Route("/v1/secrets/{name}", get_secret, methods=["GET"]),
    Route("/v1/secrets/{name}", put_secret, methods=["PUT"]),
    Route("/v1/secrets/{name}", delete_secret, methods=["DELETE"]),
    *LAMBDA_ROUTES,
    Route("/v1/functions/{name}/versions", publish_version, methods=["POST"]),
    Route("/v1/functions/{name}/versions", list_versions, methods=["GET"]),
    Route("/v1/functions/{name}/versions/{version}", get_version, methods=["GET"]),
    Route("/v1/functions/{name}/versions/{version}", delete_version, methods=["DELETE"]),
    Route("/v1/functions/{name}/aliases", list_aliases, methods=["GET"]),
    Route("/v1/functions/{name}/aliases/{alias}", put_alias, methods=["PUT"]),
    Route("/v1/functions/{name}/aliases/{alias}", get_alias, methods=["GET"]),
    Route("/v1/functions/{name}/aliases/{alias}", patch_alias, methods=["PATCH"]),
    Route("/v1/functions/{name}/aliases/{alias}", delete_alias, methods=["DELETE"]),
    Route("/v1/functions/{name}/aliases/{alias}/rollout", start_rollout, methods=["POST"]),
    Route("/v1/functions/{name}/aliases/{alias}/rollout", get_rollout, methods=["GET"]),
    Route("/v1/isolation", isolation_report, methods=["GET"]),
    *CONSOLE_ROUTES,
]


def create_app(
    *,
    token: str | None,
    lifespan: Callable[[Starlette], AbstractAsyncContextManager[None]] | None = None,
    guard: FailedAuthGuard | None = None,
    max_header_bytes: int = 16 * 1024,
    lambda_auth: SigV4Verifier | None = None,
) -> Starlette:
    """Build the ASGI app. The server puts an ApiServices on ``app.state.services``.

    The Lambda API's dated paths take SigV4 signatures checked by ``lambda_auth`` (by
    default: the access key ``pyfaas`` with the token as its secret); the rest the token."""
    middleware = [
        Middleware(
            AccessMiddleware,
            token=token,
            routes=ROUTES,
            guard=guard or FailedAuthGuard(),
            max_header_bytes=max_header_bytes,
        )
    ]
    # The console's cookie session must reach the token check as a header: outermost.
    middleware.insert(0, console_middleware(token_required=bool(token)))
    handlers: dict[Any, Any] = {
        PyfaasError: errors.pyfaas_error,
        HTTPException: errors.http_error,
        Exception: errors.unexpected_error,
    }
    app = Starlette(
        routes=ROUTES, middleware=middleware, exception_handlers=handlers, lifespan=lifespan
    )
    app.state.lambda_auth = lambda_auth or SigV4Verifier({"pyfaas": token} if token else {})
    return app


__all__ = ["ApiServices", "create_app"]
