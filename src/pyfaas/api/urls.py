"""Function URLs: ``/v1/functions/{name}/url`` manages them, ``/fn/{name}/...`` serves them."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from pyfaas.api.body import read_body, read_json_object
from pyfaas.api.errors import pyfaas_error
from pyfaas.api.responses import JSONResponse
from pyfaas.api.services import services
from pyfaas.model import PyfaasError
from pyfaas.model.urls import FunctionUrlConfig, HttpRequest

_CONFIG_LIMIT = 64 * 1024
# The methods a function URL passes on (Lambda's).
URL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def _render(request: Request, config: FunctionUrlConfig) -> dict[str, object]:
    base = str(request.base_url).rstrip("/")
    return {**config.to_dict(), "url": f"{base}{config.path}/"}


async def create_url(request: Request) -> Response:
    """Give a function an HTTP endpoint at /fn/{name}/.
    ---
    summary: Create a function URL
    parameters: [{name: name, in: path, required: true, schema: {type: string}}]
    requestBody:
      content:
        application/json:
          schema:
            type: object
            required: [auth_type]
            properties:
              auth_type: {type: string, enum: [NONE, TOKEN]}
              cors:
                type: object
                properties:
                  allow_origins: {type: array, items: {type: string}}
                  allow_methods: {type: array, items: {type: string}}
                  allow_headers: {type: array, items: {type: string}}
                  expose_headers: {type: array, items: {type: string}}
                  max_age: {type: integer}
                  allow_credentials: {type: boolean}
    responses:
      201: {description: "the URL configuration, with its url"}
      400: {description: "invalid_auth_type, invalid_cors, invalid_qualifier, unknown_field"}
      404: {description: function_not_found}
      409: {description: function_url_exists}
    """
    fields = await read_json_object(request, _CONFIG_LIMIT, "the function URL configuration")
    config = await services(request).urls.create(request.path_params["name"], fields)
    return JSONResponse(_render(request, config), status_code=201)


async def get_url(request: Request) -> Response:
    """A function's URL configuration.
    ---
    summary: Show a function URL
    parameters: [{name: name, in: path, required: true, schema: {type: string}}]
    responses:
      200: {description: "the URL configuration, with its url"}
      404: {description: "function_not_found, function_url_not_found"}
    """
    config = await services(request).urls.get(
        request.path_params["name"], request.query_params.get("qualifier")
    )
    return JSONResponse(_render(request, config))


async def patch_url(request: Request) -> Response:
    """Change a function URL's auth_type and/or cors (cors null removes CORS).
    ---
    summary: Update a function URL
    parameters: [{name: name, in: path, required: true, schema: {type: string}}]
    requestBody:
      content:
        application/json: {schema: {type: object}}
    responses:
      200: {description: "the URL configuration, with its url"}
      400: {description: "invalid_auth_type, invalid_cors, unknown_field"}
      404: {description: "function_not_found, function_url_not_found"}
    """
    fields = await read_json_object(request, _CONFIG_LIMIT, "the function URL configuration")
    config = await services(request).urls.update(request.path_params["name"], fields)
    return JSONResponse(_render(request, config))


async def delete_url(request: Request) -> Response:
    """Remove a function's URL (the function stays).
    ---
    summary: Delete a function URL
    parameters: [{name: name, in: path, required: true, schema: {type: string}}]
    responses:
      204: {description: deleted}
      404: {description: "function_not_found, function_url_not_found"}
    """
    await services(request).urls.delete(
        request.path_params["name"], request.query_params.get("qualifier")
    )
    return Response(status_code=204)


async def serve_url(request: Request) -> Response:
    """Any method on /fn/{name}[/{path}]: the function answers, given Lambda's payload
    format 2.0 event."""
    name = request.path_params["name"]
    urls = services(request).urls
    http_request = _http_request(request)
    try:
        response = await urls.handle(
            name, http_request, lambda limit: read_body(request, limit, "the request body")
        )
    except PyfaasError as exc:
        refused = await pyfaas_error(request, exc)
        _add_headers(refused, await urls.error_headers(name, http_request))
        return refused
    rendered = Response(response.body, status_code=response.status)
    if request.method == "HEAD" and response.declared_length is not None:
        rendered.headers["content-length"] = response.declared_length
    _add_headers(rendered, response.headers)
    return rendered


def _add_headers(response: Response, headers: list[tuple[str, str]]) -> None:
    response.raw_headers.extend((k.encode("latin-1"), v.encode("latin-1")) for k, v in headers)


def _http_request(request: Request) -> HttpRequest:
    scope = request.scope
    raw = scope.get("raw_path") or scope["path"].encode()
    # What follows /fn/{name}, still percent-encoded: the function routes on it.
    after_prefix = raw.decode("latin-1")[len("/fn/") :]
    slash = after_prefix.find("/")
    raw_path = after_prefix[slash:] if slash >= 0 else ""
    server = scope.get("server")
    scheme = scope.get("scheme", "http")
    return HttpRequest(
        method=request.method,
        raw_path=raw_path,
        raw_query=scope.get("query_string", b"").decode("latin-1"),
        headers=tuple((k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]),
        body=b"",
        source_ip=request.client.host if request.client else "",
        protocol=f"HTTP/{scope.get('http_version', '1.1')}",
        scheme=scheme,
        server_port=server[1] if server else (443 if scheme == "https" else 80),
    )
