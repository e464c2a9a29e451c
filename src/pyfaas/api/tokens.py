"""``/v1/tokens`` and ``/v1/secrets``: API tokens and secrets (admin scope)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from pyfaas.api.body import read_json_object
from pyfaas.api.responses import JSONResponse
from pyfaas.api.services import services
from pyfaas.control.access import TokenService
from pyfaas.control.secrets import SecretService
from pyfaas.model import InvalidRequest, ServiceUnavailable
from pyfaas.model.secrets import SECRET_VALUE_MAX_BYTES

_TOKEN_REQUEST_LIMIT = 64 * 1024
# The value, JSON-escaped (up to 6 bytes a character), and the object around it.
_SECRET_REQUEST_LIMIT = 6 * SECRET_VALUE_MAX_BYTES + 1024


def _tokens(request: Request) -> TokenService:
    tokens = services(request).tokens
    if tokens is None:
        raise ServiceUnavailable("this server keeps no API tokens")
    return tokens


def _secrets(request: Request) -> SecretService:
    secrets = services(request).secrets
    if secrets is None:
        raise ServiceUnavailable("this server keeps no secrets")
    return secrets


async def create_token(request: Request) -> Response:
    """Create an API token. The answer holds the token itself, shown this once.
    ---
    summary: Create an API token
    requestBody:
      content:
        application/json:
          schema:
            type: object
            required: [name, scopes]
            properties:
              name: {type: string, description: "who holds it, 1-64 characters"}
              scopes: {type: array, items: {type: string, enum: [admin, deploy, invoke, read]}}
              functions: {type: array, nullable: true, items: {type: string}}
    responses:
      201: {description: "the token's record and, under token, the token"}
      400: {description: "access_control_off, invalid_token_name, invalid_scope,
        invalid_token_functions"}
    """
    fields = await read_json_object(request, _TOKEN_REQUEST_LIMIT, "the token request")
    token, plain = await _tokens(request).create(fields)
    return JSONResponse({**token.to_dict(), "token": plain}, status_code=201)


async def list_tokens(request: Request) -> Response:
    """Every API token, revoked ones too (never the tokens themselves).
    ---
    summary: List API tokens
    responses:
      200: {description: "{tokens: [...]}"}
    """
    tokens = await _tokens(request).list()
    return JSONResponse({"tokens": [t.to_dict() for t in tokens]})


async def revoke_token(request: Request) -> Response:
    """Revoke an API token: refused at once here, within a second on other servers.
    ---
    summary: Revoke an API token
    parameters: [{name: id, in: path, required: true, schema: {type: string}}]
    responses:
      200: {description: "the token's record, with revoked_at"}
      404: {description: token_not_found}
    """
    token = await _tokens(request).revoke(request.path_params["id"])
    return JSONResponse(token.to_dict())


async def put_secret(request: Request) -> Response:
    """Set a secret's value (stored encrypted; never returned).
    ---
    summary: Set a secret
    parameters: [{name: name, in: path, required: true, schema: {type: string}}]
    requestBody:
      content:
        application/json:
          schema:
            type: object
            required: [value]
            properties:
              value: {type: string}
    responses:
      200: {description: "updated: the secret's name, times and the functions using it"}
      201: {description: created}
      400: {description: "invalid_secret_name, invalid_secret_value"}
    """
    fields = await read_json_object(request, _SECRET_REQUEST_LIMIT, "the secret")
    unknown = sorted(set(fields) - {"value"})
    if unknown:
        raise InvalidRequest(
            f"unknown field(s): {', '.join(unknown)}; a secret has only a value",
            code="unknown_field",
        )
    info, created = await _secrets(request).set(request.path_params["name"], fields.get("value"))
    return JSONResponse(info.to_dict(), status_code=201 if created else 200)


async def get_secret(request: Request) -> Response:
    """A secret's name, times and the functions using it (never its value).
    ---
    summary: Show a secret
    parameters: [{name: name, in: path, required: true, schema: {type: string}}]
    responses:
      200: {description: the secret}
      400: {description: invalid_secret_name}
      404: {description: secret_not_found}
    """
    info = await _secrets(request).get(request.path_params["name"])
    return JSONResponse(info.to_dict())


async def list_secrets(request: Request) -> Response:
    """Every secret's name, times and users (never a value).
    ---
    summary: List secrets
    responses:
      200: {description: "{secrets: [...]}"}
    """
    found = await _secrets(request).list()
    return JSONResponse({"secrets": [s.to_dict() for s in found]})


async def delete_secret(request: Request) -> Response:
    """Delete a secret no function uses.
    ---
    summary: Delete a secret
    parameters: [{name: name, in: path, required: true, schema: {type: string}}]
    responses:
      204: {description: deleted}
      400: {description: invalid_secret_name}
      404: {description: secret_not_found}
      409: {description: secret_in_use}
    """
    await _secrets(request).delete(request.path_params["name"])
    return Response(status_code=204)
