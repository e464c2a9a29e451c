"""The native API's OpenAPI document: each route's docstring (Starlette's SchemaGenerator)
plus what every route shares, written once here rather than in fifty docstrings: bearer
authentication, the error object, and the refusals of the access middleware."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from starlette.routing import BaseRoute
from starlette.schemas import SchemaGenerator

import pyfaas

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string", "description": "stable; see docs/errors.md"},
                "message": {"type": "string", "description": "what to fix"},
            },
        }
    },
}
_ERROR_REF = {"$ref": "#/components/schemas/Error"}
# What AccessMiddleware may answer on any route of a server that has a token.
_SHARED_REFUSALS = {
    "401": "unauthorized: no token, or one that is wrong, revoked or expired",
    "403": "insufficient_scope: the token's scopes or functions do not cover this route",
    "429": "too_many_requests: this address sent too many wrong tokens; see Retry-After",
    "431": "headers_too_large",
}
_METHODS = ("get", "put", "post", "patch", "delete")
# Parameters several routes take; a docstring names them with $ref.
_PARAMETERS: dict[str, Any] = {
    "QualifiedFunction": {
        "name": "name",
        "in": "path",
        "required": True,
        "description": "the function, or name:qualifier (a version number, an alias, $LATEST)",
        "schema": {"type": "string"},
    },
    "Qualifier": {
        "name": "qualifier",
        "in": "query",
        "description": "a version number or alias to run instead of $LATEST",
        "schema": {"type": "string"},
    },
}

_generator = SchemaGenerator(
    {
        "openapi": "3.0.3",
        "info": {
            "title": "pyfaas",
            "version": pyfaas.__version__,
            "description": "Serverless functions for Python. Errors are "
            '{"error": {"code": "...", "message": "..."}} with stable codes.',
        },
    }
)


def openapi_document(routes: Sequence[BaseRoute]) -> dict[str, Any]:
    """The document for ``routes`` (those with ``include_in_schema``): a fresh dict."""
    document: dict[str, Any] = copy.deepcopy(_generator.get_schema(routes=list(routes)))
    document["components"] = {
        "securitySchemes": {
            "bearer": {
                "type": "http",
                "scheme": "bearer",
                "description": "the server's token (PYFAAS_TOKEN) or an API token; "
                "required when the server has a token",
            }
        },
        "schemas": {"Error": ERROR_SCHEMA},
        "parameters": copy.deepcopy(_PARAMETERS),
    }
    document["security"] = [{"bearer": []}]
    for operations in document.get("paths", {}).values():
        for method in _METHODS:
            if method in operations:
                _complete(operations[method])
    return document


def _complete(operation: dict[str, Any]) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    for status, description in _SHARED_REFUSALS.items():
        responses.setdefault(status, {"description": description})
    for status, response in responses.items():
        if str(status)[0] in "45" and "content" not in response:
            response["content"] = {"application/json": {"schema": _ERROR_REF}}
